"""Reading one page on demand (`pricemon extract`): how users debug their selectors.

A URL goes through the same fetcher as a sweep (robots.txt, redirects, size cap, and the
politeness and headers of `--competitor` when given); a local file is read as it is.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from urllib.parse import urlsplit

from monitor.errors import ConfigError, FetchError, NotFoundError
from monitor.scrape.extract import Extraction, extract
from monitor.scrape.fetch import Fetcher, Page, extraction_rules
from monitor.settings import Competitor, Settings, check_currency


def probe_source(
    settings: Settings,
    source: str,
    *,
    selector: str | None = None,
    currency: str | None = None,
    decimal_separator: str | None = None,
    competitor: str | None = None,
) -> Extraction:
    """Extract from `source` (an http(s) URL or a local file) with the competitor's rules, overridden
    by the given options. Raises FetchError/NotFoundError when there is no page to read."""
    shop = _competitor(settings, source, competitor)
    rules = extraction_rules(shop)
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
    rules = dataclasses.replace(rules, **overrides)
    if urlsplit(source).scheme in ("http", "https"):
        page = asyncio.run(_fetch(shop, settings, source))
        if page.outcome != "ok":
            raise FetchError(f"{source}: {page.outcome}: {page.error or page.outcome}")
        return extract(page.body, rules, encoding=page.encoding, url=page.url)
    if "://" in source:
        raise FetchError(f"{source}: only http(s) URLs and local files can be read")
    path = Path(source)
    try:
        body = path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"{source}: no such file") from None
    except OSError as exc:
        raise NotFoundError(f"{source}: cannot read: {exc.strerror}") from None
    return extract(body, rules)


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
    async with Fetcher(shop, settings.scrape) as fetcher:
        return await fetcher.fetch(url)
