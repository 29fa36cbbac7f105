"""Fetching one competitor's pages politely and turning each into a `CheckResult`; the request
itself goes through a `PageTransport` (aiohttp, or httpx for proxied competitors).

Redirects are followed here, hop by hop, so that every hop is checked (http/https only, robots.txt,
the hop limit, the addresses of monitor.scrape.addresses); bodies are streamed with a size cap;
conditional requests and a body hash spare parsing pages that did not change. Nothing here raises
for what a page or a server does: every such thing becomes an outcome with a short message.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from tenacity import AsyncRetrying, RetryCallState, retry_if_result, stop_after_attempt, wait_random_exponential

from monitor.redact import redact_text
from monitor.scrape.addresses import AddressPolicy, parse_networks
from monitor.scrape.extract import EXTRACTOR_VERSION, Extraction, ExtractionRules, extract
from monitor.scrape.politeness import RobotsRules, RobotsUnreachable, Slot, parse_retry_after
from monitor.scrape.shopify import JSON_TYPES, product_json_url, read_product_json
from monitor.scrape.transport import PageResponse, PageTransport, TransportFailure, default_transport
from monitor.settings import Competitor, ScrapeSettings
from monitor.store.history import CheckResult
from monitor.store.models import utcnow

if TYPE_CHECKING:
    from monitor.scrape.render import BrowserPool

logger = logging.getLogger(__name__)

REDIRECTS = frozenset({301, 302, 303, 307, 308})
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# What a product page may be; a missing Content-Type is let through to the parser, which
# recognises binary bodies by itself.
PAGE_TYPES = ("text/html", "application/xhtml+xml", "text/plain", "application/xml", "text/xml")
#: RFC 9309 2.5: crawlers must parse at least the first 500 KiB of a robots.txt, whatever its size.
ROBOTS_MAX_BYTES = 500 * 1024


def extraction_rules(competitor: Competitor) -> ExtractionRules:
    s = competitor.selectors
    return ExtractionRules(
        price=s.price,
        currency=s.currency,
        in_stock=s.in_stock,
        out_of_stock=s.out_of_stock,
        decimal_separator=s.decimal_separator,
        json_script=s.json_script,
        json_price=s.json_price,
        json_currency=s.json_currency,
        json_in_stock=s.json_in_stock,
    )


@dataclass(slots=True)
class Page:
    """What fetching one URL gave: `outcome` is "ok", "not_modified" or a failure outcome."""

    outcome: str
    url: str
    status_code: int | None = None
    body: bytes = b""
    encoding: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    error: str | None = None
    retryable: bool = False
    retry_after: float | None = None
    listing_url: str | None = None  # the listing's own URL when another one was fetched for it
    content_type: str = ""


def _charset(content_type: str) -> str | None:
    for part in content_type.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip("\"'")
    return None


def _short(exc: BaseException) -> str:
    text = redact_text(str(exc).strip()) or type(exc).__name__
    return text[:200]


class Fetcher:
    """Fetches pages of one competitor: its transport (headers, user agent, proxy), its slot and its
    robots.txt rules. One per competitor per worker; close it with `aclose()`."""

    def __init__(
        self,
        competitor: Competitor,
        scrape: ScrapeSettings,
        *,
        transport: PageTransport | None = None,
        renderer: BrowserPool | None = None,
    ) -> None:
        self.competitor = competitor
        self.scrape = scrape
        self.user_agent = competitor.user_agent or scrape.user_agent
        self.timeout = (competitor.timeout or scrape.timeout).total_seconds()
        headers = {
            "User-Agent": self.user_agent,
            "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5",
            "Accept-Encoding": "gzip, deflate",
        }
        headers.update(competitor.headers)
        self.headers = headers
        # Redirects are followed here, hop by hop, and pricemon keeps no cookies: a transport only
        # sends one GET (monitor.scrape.transport says why it is not an httpx client).
        self.addresses = AddressPolicy(str(competitor.base_url), parse_networks(scrape.allowed_networks))
        ca_bundle = str(scrape.ca_bundle) if scrape.ca_bundle is not None else None
        self.transport = transport or default_transport(
            competitor.proxy, scrape.max_connections, self.addresses, ca_bundle=ca_bundle
        )
        self.slot = Slot(
            competitor.name,
            max_concurrency=competitor.max_concurrency,
            min_delay=competitor.min_delay.total_seconds(),
            max_delay=competitor.max_delay.total_seconds(),
            slow=scrape.slow_response.total_seconds(),
        )
        self.robots = RobotsRules(self.user_agent, self._load_robots) if competitor.respect_robots_txt else None
        self._blocked_robots: dict[str, str] = {}  # robots.txt URL -> why its address was refused
        self.rules = extraction_rules(competitor)
        # Part of the body hash: the same page read with other selectors is not "unchanged".
        reading = (self.rules, competitor.platform, competitor.render)
        self._rules_fingerprint = f"{EXTRACTOR_VERSION}:{reading!r}".encode()
        self.shopify = competitor.platform == "shopify"
        # render = "browser": pages are rendered in the sweep's shared headless Chromium, which
        # also gets the scripts and JSON they load through this fetcher
        self.renderer = renderer if competitor.render == "browser" else None
        self.page_types = PAGE_TYPES + JSON_TYPES if self.shopify or competitor.render == "browser" else PAGE_TYPES

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- fetching ------------------------------------------------------------------------------

    async def fetch(self, url: str, *, etag: str | None = None, last_modified: str | None = None) -> Page:
        """Fetch the listing at `url` as this competitor needs it read: its page (rendered in the
        browser for render = "browser") or, for a Shopify shop, its product's `.js` endpoint."""
        if self.shopify:
            json_url = product_json_url(url)
            if json_url is None:
                return Page("not_found", url, error="not a Shopify product URL (no /products/<handle>)")
            page = await self.get(json_url, etag=etag, last_modified=last_modified)
            page.listing_url = url
            return page
        if self.renderer is not None:
            # No validators: the document may be unchanged while what its scripts load is not.
            page = await self.get(url)
            return await self.renderer.render(self, page) if page.outcome == "ok" else page
        return await self.get(url, etag=etag, last_modified=last_modified)

    async def get(self, url: str, *, etag: str | None = None, last_modified: str | None = None) -> Page:
        """Fetch `url` with retries (exponential backoff with jitter) on transient failures."""
        page = await self._fetch_once(url, etag, last_modified)
        if not page.retryable or not self.scrape.retries:
            return page  # the common case stays off the retry machinery (~50 µs a call)
        first: list[Page] = [page]

        async def attempt() -> Page:
            # Attempt 1 is the failure already in hand; the policy's wait comes before attempt 2.
            return first.pop() if first else await self._fetch_once(url, etag, last_modified)

        retried: Page = await self._retrying()(attempt)
        return retried

    def _retrying(self) -> AsyncRetrying:
        """Retries of one request: transient failures only, backing off exponentially with full
        jitter, and never sooner than the server's Retry-After (within the slot's max_delay).
        When the retries are used up, the last page is the result."""
        backoff = wait_random_exponential(
            multiplier=self.scrape.backoff_base.total_seconds(), max=self.scrape.backoff_max.total_seconds()
        )

        def wait(state: RetryCallState) -> float:
            page: Page = state.outcome.result()  # type: ignore[union-attr]
            delay = backoff(state)
            if page.retry_after:
                delay = max(delay, min(page.retry_after, self.slot.max_delay))
            logger.debug("retry %d of %s in %.2fs: %s", state.attempt_number, page.url, delay, page.error)
            return delay

        return AsyncRetrying(
            stop=stop_after_attempt(self.scrape.retries + 1),
            wait=wait,
            retry=retry_if_result(lambda page: page.retryable),
            retry_error_callback=lambda state: state.outcome.result(),  # type: ignore[union-attr]
        )

    async def _fetch_once(self, url: str, etag: str | None, last_modified: str | None) -> Page:
        current = url
        for hop in range(self.scrape.max_redirects + 1):
            try:
                parts = urlsplit(current)
                parts.port  # noqa: B018 - a malformed host or port raises ValueError
            except ValueError:
                return Page("http_error", current, error=f"refusing to fetch {current[:200]!r}: not a valid URL")
            if parts.scheme not in ("http", "https") or not parts.netloc:
                return Page("http_error", current, error=f"refusing to fetch {current[:200]!r}: only http/https")
            refusal = self.addresses.refusal_for_host(parts.hostname or "")
            if refusal is not None:  # before robots.txt, which would be fetched from there
                return Page("blocked_address", current, error=refusal)
            if self.robots is not None:
                try:
                    allowed, why = await self.robots.allowed(current)
                except RobotsUnreachable as unreachable:
                    return Page(unreachable.outcome, current, error=unreachable.message)
                if not allowed:
                    blocked = self._blocked_robots.get(f"{parts.scheme}://{parts.netloc}/robots.txt")
                    if blocked is not None:  # its name resolved to a refused address
                        return Page("blocked_address", current, error=blocked)
                    return Page("blocked_by_robots", current, error=why)
            headers: dict[str, str] = {}
            if hop == 0:  # validators belong to the listing's own URL, not to where it redirects
                if etag:
                    headers["If-None-Match"] = etag
                if last_modified:
                    headers["If-Modified-Since"] = last_modified
            page = await self._request(current, headers)
            if page.outcome != "redirect":
                return page
            current = page.url
        return Page("http_error", current, error=f"more than {self.scrape.max_redirects} redirects")

    async def _request(self, url: str, headers: dict[str, str], *, robots: bool = False) -> Page:
        # An address in the URL is refused before any connection (names: by the transport, after DNS).
        refusal = self.addresses.refusal_for_host(urlsplit(url).hostname or "")
        if refusal is not None:
            return Page("blocked_address", url, error=refusal)
        loop = asyncio.get_running_loop()
        async with self.slot:
            started = loop.time()
            status: int | None = None
            retry_after: float | None = None
            try:
                # The transport bounds connecting and each read; this bounds the whole answer,
                # so a body that trickles in cannot hold a slot for ever.
                async with asyncio.timeout(self.timeout):
                    response = await self.transport.get(
                        url, {**self.headers, **headers} if headers else self.headers, self.timeout
                    )
                    try:
                        status = response.status
                        retry_after = parse_retry_after(response.header("Retry-After"))
                        return await self._read(url, response, retry_after, robots)
                    finally:
                        await response.aclose()
            except TimeoutError:
                return Page("timeout", url, status, error=f"no answer within {self.timeout:g}s", retryable=True)
            except TransportFailure as failure:
                if failure.kind == "timeout":
                    message = f"no answer within {self.timeout:g}s ({redact_text(str(failure))})"
                    return Page("timeout", url, status, error=message, retryable=True)
                outcome = {"body": "invalid_content", "blocked": "blocked_address", "tls": "tls_error"}.get(
                    failure.kind, "http_error"
                )
                # stored and shown: a proxy URL in a transport's message must not carry its password
                error = redact_text(str(failure))
                return Page(outcome, url, status, error=error, retryable=failure.retryable)
            except Exception as exc:  # a transport bug must cost one page, not the sweep
                logger.exception("fetching %s failed", url)
                return Page("http_error", url, status, error=f"request failed: {type(exc).__name__}: {_short(exc)}")
            finally:
                self.slot.observe(status, loop.time() - started, retry_after)

    async def _read(self, url: str, response: PageResponse, retry_after: float | None, robots: bool = False) -> Page:
        status = response.status
        etag = response.header("ETag")
        last_modified = response.header("Last-Modified")
        if status in REDIRECTS:
            location = response.header("Location")
            if not location:
                return Page("http_error", url, status, error=f"HTTP {status} redirect without Location")
            try:
                target = urljoin(url, location.strip())
                urlsplit(target).port  # noqa: B018 - a malformed host or port raises ValueError
            except ValueError:
                error = f"HTTP {status} redirect to an invalid URL {location[:200]!r}"
                return Page("http_error", url, status, error=error)
            return Page("redirect", target, status)
        if status == 304:
            return Page("not_modified", url, status, etag=etag, last_modified=last_modified)
        if status in (404, 410):
            return Page("gone", url, status, error=f"HTTP {status}")
        if status != 200:
            message = f"HTTP {status}"
            return Page(
                "http_error",
                url,
                status,
                error=message,
                retryable=status in RETRY_STATUSES or status >= 500,
                retry_after=retry_after,
            )
        content_type = response.header("Content-Type") or ""
        media = content_type.split(";")[0].strip().lower()
        if media and media not in self.page_types:
            return Page("invalid_content", url, status, error=f"not a web page: Content-Type {media[:80]}")
        if robots:
            # Its first 500 KiB, up to the last whole line: a line cut short could allow too much.
            rules = await response.read(ROBOTS_MAX_BYTES, truncate=True) or b""
            if len(rules) >= ROBOTS_MAX_BYTES:
                rules = rules[: rules.rfind(b"\n") + 1]
            return Page("ok", url, status, body=rules, encoding=_charset(content_type))
        cap = self.scrape.max_body_bytes
        declared = response.header("Content-Length") or ""
        if declared.isdigit() and int(declared) > cap:
            return Page("invalid_content", url, status, error=f"body of {declared} bytes exceeds {cap} bytes")
        body = await response.read(cap)
        if body is None:
            return Page("invalid_content", url, status, error=f"body exceeds {cap} bytes")
        return Page(
            "ok",
            url,
            status,
            body=body,
            encoding=_charset(content_type),
            content_type=media,
            etag=etag,
            last_modified=last_modified,
        )

    async def _load_robots(self, url: str) -> tuple[int | None, str]:
        page = await self._fetch_robots(url)
        if page.outcome == "blocked_address":
            self._blocked_robots[url] = page.error or "address refused"
        elif page.status_code is None and page.retryable:  # no answer at all, even after the retries
            raise RobotsUnreachable(page.outcome, f"{page.error} (fetching {url})")
        if page.outcome == "ok":
            return 200, page.body.decode("utf-8", errors="replace")
        if page.outcome == "gone":
            return 404, ""
        return page.status_code, ""

    async def _fetch_robots(self, url: str) -> Page:
        # robots.txt itself is fetched without robots rules, with retries, following redirects.
        page: Page = await self._retrying()(self._fetch_robots_once, url)
        if page.outcome == "http_error" and page.status_code and page.status_code < 500:
            return Page("gone", url, page.status_code)  # any 4xx: "no robots.txt"
        return page

    async def _fetch_robots_once(self, url: str) -> Page:
        page: Page = await self._request(url, {}, robots=True)
        for _ in range(self.scrape.max_redirects):
            if page.outcome != "redirect":
                break
            if urlsplit(page.url).scheme not in ("http", "https"):
                return Page("http_error", page.url, error="robots.txt redirected off http")
            page = await self._request(page.url, {}, robots=True)
        return page

    # -- checking a listing ----------------------------------------------------------------------

    async def check(
        self,
        listing_id: int,
        url: str,
        *,
        product_gtin: str | None,
        product_currency: str,
        etag: str | None = None,
        last_modified: str | None = None,
        body_hash: str | None = None,
    ) -> CheckResult:
        """Fetch and read one listing; every failure is an outcome, never an exception."""
        page = await self.fetch(url, etag=etag, last_modified=last_modified)
        return self.judge(
            listing_id, page, product_gtin=product_gtin, product_currency=product_currency, body_hash=body_hash
        )

    def read(self, page: Page) -> Extraction:
        return read_page(self.competitor, self.rules, page)

    def judge(
        self,
        listing_id: int,
        page: Page,
        *,
        product_gtin: str | None,
        product_currency: str,
        body_hash: str | None = None,
    ) -> CheckResult:
        now = utcnow()
        if page.outcome == "not_modified":
            return CheckResult(listing_id, "not_modified", now, etag=page.etag, last_modified=page.last_modified)
        if page.outcome != "ok":
            return CheckResult(listing_id, page.outcome, now, error=page.error)
        # SHA-256 runs in hardware on current CPUs: 22 us on a 30 KB page where BLAKE2b took 50.
        digest = hashlib.sha256(page.body)
        digest.update(self._rules_fingerprint)
        new_hash = digest.hexdigest()[:32]
        if body_hash is not None and new_hash == body_hash:
            return CheckResult(
                listing_id, "unchanged", now, etag=page.etag, last_modified=page.last_modified, body_hash=new_hash
            )
        try:
            extraction = self.read(page)
        except Exception as exc:  # a parser bug must cost one listing, not the sweep
            logger.exception("extraction crashed on %s", page.url)
            return CheckResult(listing_id, "invalid_content", now, error=f"extraction failed: {_short(exc)}")
        return result_from_extraction(
            listing_id,
            extraction,
            now=now,
            page=page,
            body_hash=new_hash,
            product_gtin=product_gtin,
            product_currency=product_currency,
        )


def read_page(competitor: Competitor, rules: ExtractionRules, page: Page) -> Extraction:
    """What a fetched page says: its HTML read by `extract`, or a Shopify product's JSON."""
    if competitor.platform == "shopify":
        return read_product_json(page.body, page.listing_url or page.url, rules.currency)
    return extract(page.body, rules, encoding=page.encoding, url=page.url)


def _gtin_key(value: str) -> str:
    return value.strip().lstrip("0")


def result_from_extraction(
    listing_id: int,
    extraction: Extraction,
    *,
    now: Any,
    page: Page,
    body_hash: str | None,
    product_gtin: str | None,
    product_currency: str,
) -> CheckResult:
    """The check result for a page that was read: a price, or why there is none."""
    if extraction.status != "ok" or extraction.price is None:
        return CheckResult(listing_id, extraction.status, now, error=extraction.message[:500])
    if extraction.gtin and product_gtin and _gtin_key(extraction.gtin) != _gtin_key(product_gtin):
        return CheckResult(
            listing_id,
            "mismatch",
            now,
            error=f"page shows GTIN {extraction.gtin[:40]}, the product's is {product_gtin}",
        )
    # A page that never names its currency is taken to be in the product's; one that names
    # another is stored as found and flagged.
    currency = extraction.currency or product_currency
    return CheckResult(
        listing_id,
        "observed",
        now,
        price=extraction.price,
        currency=currency,
        in_stock=extraction.in_stock,
        currency_mismatch=currency != product_currency,
        etag=page.etag,
        last_modified=page.last_modified,
        body_hash=body_hash,
    )
