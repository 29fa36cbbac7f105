"""Reading one page on demand (`pricemon extract`): how users debug their selectors.

A URL goes through the same fetcher as a sweep (robots.txt, redirects, size cap, and the
politeness and headers of `--competitor` when given); a local file is read as it is.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import ValidationError

from monitor.errors import ConfigError, FetchError, NotFoundError
from monitor.redact import redact_url
from monitor.scrape.extract import Extraction, ExtractionRules
from monitor.scrape.fetch import Fetcher, Page, extraction_rules, read_page
from monitor.settings import Competitor, Selectors, Settings, check_currency, check_http_url


@dataclasses.dataclass(frozen=True)
class Source:
    """One page to read, as a sweep would see it: fetched (and rendered) for a URL, or a file."""

    page: Page
    shop: Competitor
    settings: Settings

    def read(self, rules: ExtractionRules) -> Extraction:
        return read_page(self.shop, rules, self.page)


def load_source(settings: Settings, source: str, *, competitor: str | None = None, render: bool = False) -> Source:
    """Fetch `source` (an http(s) URL, through the competitor's fetcher and renderer) or read it
    (a local file). Raises FetchError/NotFoundError when there is no page to read."""
    if "://" in source:
        try:
            check_http_url(source)
        except ValueError as exc:
            raise FetchError(f"{redact_url(source)}: {exc}") from None
    shop = _competitor(settings, source, competitor)
    if render:
        shop = shop.model_copy(update={"render": "browser"})
    if urlsplit(source).scheme in ("http", "https"):
        if shop.render == "browser":
            from monitor.scrape.render import check_browser

            check_browser(settings.scrape.browser_executable)
        page = asyncio.run(_fetch(shop, settings, source))
        if page.outcome != "ok":
            raise FetchError(f"{source}: {page.outcome}: {page.error or page.outcome}")
        return Source(page, shop, settings)
    if "://" in source:
        raise FetchError(f"{source}: only http(s) URLs and local files can be read")
    if render:
        raise ConfigError("--render needs an http(s) URL: a local file has no origin to run its scripts against")
    path = Path(source)
    try:
        body = path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"{source}: no such file") from None
    except OSError as exc:
        raise NotFoundError(f"{source}: cannot read: {exc.strerror}") from None
    return Source(Page("ok", path.resolve().as_uri(), body=body), shop, settings)


def probe_source(
    settings: Settings,
    source: str,
    *,
    selector: str | None = None,
    currency: str | None = None,
    decimal_separator: str | None = None,
    competitor: str | None = None,
    in_stock: str | None = None,
    out_of_stock: str | None = None,
    render: bool = False,
    loaded: Source | None = None,
) -> Extraction:
    """Extract from `source` (an http(s) URL or a local file) with the competitor's rules, overridden
    by the given options. Raises FetchError/NotFoundError when there is no page to read."""
    loaded = loaded or load_source(settings, source, competitor=competitor, render=render)
    return loaded.read(
        override_rules(
            extraction_rules(loaded.shop),
            selector=selector,
            currency=currency,
            decimal_separator=decimal_separator,
            in_stock=in_stock,
            out_of_stock=out_of_stock,
        )
    )


def override_rules(
    rules: ExtractionRules,
    *,
    selector: str | None = None,
    currency: str | None = None,
    decimal_separator: str | None = None,
    in_stock: str | None = None,
    out_of_stock: str | None = None,
) -> ExtractionRules:
    """The rules with the command line's options in place of the config's; the options are
    checked as the config's keys are."""
    overrides: dict[str, str] = {}
    if selector is not None:
        overrides["price"] = selector
    if currency is not None:
        try:
            overrides["currency"] = check_currency(currency)
        except ValueError as exc:
            raise ConfigError(f"--currency: {exc}") from None
    if decimal_separator is not None:
        overrides["decimal_separator"] = decimal_separator
    for option, key, value in (("--in-stock", "in_stock", in_stock), ("--out-of-stock", "out_of_stock", out_of_stock)):
        if value is not None:
            try:
                Selectors.model_validate({key: value})  # the same syntax as the config's stock rules
            except ValidationError as exc:
                problem = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
                raise ConfigError(f"{option}: {problem}") from None
            overrides[key] = value
    return dataclasses.replace(rules, **overrides)


def _competitor(settings: Settings, source: str, name: str | None) -> Competitor:
    if name is not None:
        found = settings.competitor(name)
        if found is None:
            known = ", ".join(c.name for c in settings.competitors) or "none configured"
            raise ConfigError(f"unknown competitor {name!r} (known: {known})")
        return found
    base = source if urlsplit(source).scheme in ("http", "https") else "http://localhost/"
    # One page, fetched once: no spacing needed, robots.txt still obeyed.
    return Competitor(name="extract", base_url=base, min_delay=0)


async def _fetch(shop: Competitor, settings: Settings, url: str) -> Page:
    renderer = None
    if shop.render == "browser":
        from monitor.scrape.render import BrowserPool

        renderer = BrowserPool(1, settings.scrape.browser_executable)
    try:
        async with Fetcher(shop, settings.scrape, renderer=renderer) as fetcher:
            return await fetcher.fetch(url)
    finally:
        if renderer is not None:
            await renderer.aclose()
