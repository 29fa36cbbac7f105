"""Finding a competitor's product pages: its sitemaps (from robots.txt `Sitemap:` lines, the
config or the command line; indexes and .xml.gz too) or a crawl from category pages, following
links within the shop. Every request goes through the competitor's `Fetcher`: its robots.txt,
request slot and delays, address rules, timeout, size cap and proxy.

Found pages are stored in `discovered_pages`; a page that went away (404/410) or shows another
product has its accepted match proposed for re-matching; then the competitor is matched.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urljoin, urlsplit

from protego import Protego
from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from monitor.errors import ConfigError
from monitor.matching.identity import PageIdentity, read_identity
from monitor.matching.match import MatchSummary, lock_competitor, match_competitor
from monitor.matching.review import flag_rematch
from monitor.matching.sitemaps import SitemapError, parse_sitemap
from monitor.redact import redact_text
from monitor.scrape.fetch import PAGE_TYPES, Fetcher, Page, extraction_rules
from monitor.scrape.sweep import WORKER_GC_THRESHOLDS, new_loop_runner
from monitor.scrape.transport import PageTransport
from monitor.settings import Competitor, Settings
from monitor.store.catalog import sync_competitors
from monitor.store.database import Store, begin_write
from monitor.store.models import DiscoveredPage, utcnow

logger = logging.getLogger(__name__)

#: what a gzipped sitemap may be served as
SITEMAP_TYPES = ("application/gzip", "application/x-gzip", "application/octet-stream", "application/x-xml")
MAX_SITEMAPS = 2000
MAX_INDEX_DEPTH = 4
BATCH = 500


@dataclass(slots=True)
class Found:
    url: str
    via: str  # sitemap | crawl | known
    outcome: str  # the fetch's outcome: ok, gone, blocked_by_robots, ...
    http_status: int | None = None
    error: str | None = None
    identity: PageIdentity | None = None


@dataclass
class DiscoverySummary:
    competitor: str
    sitemaps: int = 0
    urls: int = 0
    fetched: int = 0
    products: int = 0
    new: int = 0
    changed: int = 0
    gone: int = 0
    rematch: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    match: MatchSummary | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "competitor": self.competitor,
            "sitemaps": self.sitemaps,
            "urls": self.urls,
            "fetched": self.fetched,
            "products": self.products,
            "new": self.new,
            "changed": self.changed,
            "gone": self.gone,
            "rematch": self.rematch,
            "outcomes": dict(self.outcomes),
            "problems": self.problems[:50],
            "match": self.match.as_dict() if self.match else None,
            "seconds": round(self.seconds, 3),
        }


def _same_shop(url: str, hosts: set[str]) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and parts.netloc.lower() in hosts


class Discoverer:
    """One discovery of one competitor's shop, through its fetcher."""

    def __init__(self, competitor: Competitor, settings: Settings, *, transport: PageTransport | None = None) -> None:
        self.competitor = competitor
        self.settings = settings
        self.fetcher = Fetcher(competitor, settings.scrape, transport=transport)
        self.fetcher.page_types = (*PAGE_TYPES, *SITEMAP_TYPES)
        self.rules = extraction_rules(competitor)
        base = urlsplit(str(competitor.base_url))
        self.hosts = {base.netloc.lower()}
        self.summary = DiscoverySummary(competitor.name)
        self.workers = max(2, competitor.max_concurrency * 2)

    async def aclose(self) -> None:
        await self.fetcher.aclose()

    # -- sitemaps --------------------------------------------------------------------------------

    async def robots_sitemaps(self) -> list[str]:
        base = urlsplit(str(self.competitor.base_url))
        page = await self.fetcher.get(f"{base.scheme}://{base.netloc}/robots.txt")
        if page.outcome != "ok":
            return []
        text = page.body.decode("utf-8", errors="replace")
        try:
            return [urljoin(page.url, s) for s in Protego.parse(text).sitemaps]
        except Exception:  # a garbled robots.txt names no sitemap we can trust
            return []

    async def sitemap_urls(self, roots: Sequence[str], limit: int) -> list[str]:
        """Page URLs of the shop listed by `roots` and the sitemaps they index, at most `limit`."""
        queue: deque[tuple[str, int]] = deque((r, 0) for r in roots)
        seen: set[str] = set()
        pages: dict[str, None] = {}
        while queue and len(pages) < limit and len(seen) < MAX_SITEMAPS:
            url, depth = queue.popleft()
            if url in seen:
                continue
            seen.add(url)
            page = await self.fetcher.get(url)
            self.summary.sitemaps += 1
            if page.outcome != "ok":
                self.summary.problems.append(redact_text(f"sitemap {url}: {page.outcome}: {page.error or ''}".strip()))
                continue
            try:
                sitemap = parse_sitemap(page.body, self.settings.scrape.max_body_bytes * 10)
            except SitemapError as exc:
                self.summary.problems.append(redact_text(f"sitemap {url}: {exc}"))
                continue
            if sitemap.kind == "sitemapindex":
                if depth < MAX_INDEX_DEPTH:
                    queue.extend((urljoin(url, loc), depth + 1) for loc in sitemap.locations)
                continue
            for loc in sitemap.locations:
                target = urljoin(url, loc)
                if _same_shop(target, self.hosts):
                    pages[target] = None
                    if len(pages) >= limit:
                        break
                else:
                    self.summary.outcomes["off_site"] += 1
        return list(pages)

    # -- pages -----------------------------------------------------------------------------------

    async def read(self, url: str, via: str, *, links: bool = False) -> Found:
        page: Page = await self.fetcher.get(url)
        self.summary.fetched += 1
        self.summary.outcomes[page.outcome] += 1
        if page.outcome != "ok":
            return Found(url, via, page.outcome, page.status_code, page.error)
        try:
            identity = read_identity(page.body, page.url, encoding=page.encoding, rules=self.rules, links=links)
        except Exception as exc:  # a parser bug costs one page, not the discovery
            logger.exception("reading %s failed", url)
            return Found(url, via, "invalid_content", page.status_code, f"reading failed: {type(exc).__name__}")
        return Found(url, via, "ok", page.status_code, None, identity)

    async def read_all(self, urls: Sequence[str], via: str) -> list[Found]:
        results: list[Found] = []
        queue = deque(urls)

        async def work() -> None:
            while queue:
                results.append(await self.read(queue.popleft(), via))

        await asyncio.gather(*(work() for _ in range(min(self.workers, max(len(urls), 1)))))
        return results

    async def crawl(self, starts: Sequence[str], limit: int) -> list[Found]:
        """Breadth-first from `starts` over the shop's links, until `limit` product pages or
        `matching.crawl_max_pages` fetches."""
        cap = self.settings.matching.crawl_max_pages
        frontier: deque[str] = deque(u for u in starts if _same_shop(u, self.hosts))
        seen: set[str] = set(frontier)
        results: list[Found] = []
        products = 0
        active = 0
        fetched = 0
        wake = asyncio.Event()

        async def work() -> None:
            nonlocal products, active, fetched
            while True:
                while not frontier:
                    if active == 0 or products >= limit:
                        wake.set()
                        return
                    wake.clear()
                    await wake.wait()
                if products >= limit or fetched >= cap:
                    frontier.clear()
                    continue
                url = frontier.popleft()
                active += 1
                fetched += 1
                try:
                    found = await self.read(url, "crawl", links=True)
                finally:
                    active -= 1
                if found.identity is not None:
                    if found.identity.is_product and products < limit:
                        products += 1
                        results.append(found)
                    for link in found.identity.links:
                        if link not in seen:
                            seen.add(link)
                            frontier.append(link)
                    found.identity.links = []
                wake.set()

        await asyncio.gather(*(work() for _ in range(self.workers)))
        return results


async def _run(
    discoverer: Discoverer, sitemaps: Sequence[str], starts: Sequence[str], limit: int, known: Sequence[str]
) -> list[Found]:
    competitor = discoverer.competitor
    try:
        roots = list(sitemaps) or [str(u) for u in competitor.sitemaps]
        if not roots and not starts:
            roots = await discoverer.robots_sitemaps()
        results: list[Found] = []
        if roots:
            urls = await discoverer.sitemap_urls(roots, limit)
            discoverer.summary.urls = len(urls)
            results = await discoverer.read_all(urls, "sitemap")
        if starts or not roots:
            crawl_from = list(starts) or [str(u) for u in competitor.start_urls] or [str(competitor.base_url)]
            results += await discoverer.crawl(crawl_from, limit)
        seen = {f.url for f in results}
        # Pages found before and not listed now are checked again: gone, or another product?
        again = [u for u in known if u not in seen]
        if again:
            results += await discoverer.read_all(again, "known")
        return results
    finally:
        await discoverer.aclose()


#: the columns of a discovered page that a discovery writes (all but id, competitor, url, first_seen_at, found_via)
_WRITTEN = (
    "status", "http_status", "error", "name", "brand", "mpn", "gtin", "shop_sku", "price", "currency", "image_url",
    "fingerprint", "needs_matching", "checked_at", "changed_at",
)  # fmt: skip
_PAGES = cast(Table, DiscoveredPage.__table__)
_UPDATE_PAGE = update(_PAGES).where(_PAGES.c.id == bindparam("b_id")).values({c: bindparam(f"b_{c}") for c in _WRITTEN})


def _store(session: Session, competitor_id: int, results: Sequence[Found], summary: DiscoverySummary) -> None:
    """Write what `results` found into the competitor's discovered pages: bulk inserts and updates,
    read and written under the competitor's lock."""
    lock_competitor(session, competitor_id)
    now = utcnow()
    urls = list(dict.fromkeys(f.url for f in results))
    existing: dict[str, dict[str, Any]] = {}
    for start in range(0, len(urls), 900):
        for row in session.execute(
            select(_PAGES.c.id, _PAGES.c.url, *(_PAGES.c[c] for c in _WRITTEN)).where(
                _PAGES.c.competitor_id == competitor_id, _PAGES.c.url.in_(urls[start : start + 900])
            )
        ):
            existing[row.url] = dict(row._mapping)
    new: dict[str, dict[str, Any]] = {}
    dirty: dict[str, dict[str, Any]] = {}
    for found in results:
        page = existing.get(found.url)
        identity = found.identity
        if found.outcome == "ok" and identity is not None and identity.is_product:
            summary.products += 1
            fingerprint = identity.fingerprint()
            if page is None:
                page = {
                    "competitor_id": competitor_id, "url": found.url[:2048], "found_via": found.via,
                    "first_seen_at": now, "needs_matching": True, "changed_at": None, "status": None,
                }  # fmt: skip
                existing[found.url] = new[found.url] = page
                summary.new += 1
            elif page["status"] == "product" and page["fingerprint"] != fingerprint:
                summary.changed += 1
                summary.rematch += _flag(
                    session, page, f"page now shows another product: was {page['name']!r}, now {identity.name!r}"
                )
                page["needs_matching"] = True
                page["changed_at"] = now
            elif page["status"] != "product":
                page["needs_matching"] = True
                page["changed_at"] = now
            page.update(
                status="product",
                fingerprint=fingerprint,
                name=identity.name and identity.name[:500],
                brand=identity.brand and identity.brand[:200],
                mpn=identity.mpn and identity.mpn[:100],
                gtin=identity.gtin,
                shop_sku=(identity.shop_sku or None) and identity.shop_sku[:100],
                price=identity.price,
                currency=identity.currency,
                image_url=identity.image_url,
                error=None if identity.price_status == "ok" else f"price: {identity.price_status}",
            )
        elif found.outcome == "gone" or (found.outcome == "ok" and identity is not None):
            if page is None:
                continue  # never a product page of ours (or not a product page): nothing to remember
            reason = (
                f"page gone (HTTP {found.http_status})" if found.outcome == "gone" else "page no longer shows a product"
            )
            if page["status"] == "product":
                summary.gone += found.outcome == "gone"
                summary.rematch += _flag(session, page, reason)
                page["changed_at"] = now
            page["status"] = "gone" if found.outcome == "gone" else "other"
            page["needs_matching"] = False
            page["error"] = reason
        else:
            if page is None:
                continue
            page["error"] = f"{found.outcome}: {found.error or ''}"[:500]  # what it showed before is kept
        page["http_status"] = found.http_status
        page["checked_at"] = now
        if "id" in page:
            dirty[found.url] = page
    if new:
        session.execute(insert(_PAGES), list(new.values()))
    if dirty:
        session.execute(_UPDATE_PAGE, [{"b_id": p["id"], **{f"b_{c}": p[c] for c in _WRITTEN}} for p in dirty.values()])
    session.flush()  # what flag_rematch changed


def _flag(session: Session, page: dict[str, Any], reason: str) -> int:
    # a page found twice in one discovery (sitemap and crawl) is not stored yet: it has no match
    return flag_rematch(session, page["id"], reason) if "id" in page else 0


def _competitor_id(store: Store, settings: Settings, name: str) -> int:
    """The competitor's row, mirrored from the config; two discoveries starting at once on a new
    database both try to add it, and the one that loses reads the winner's."""
    for attempt in range(2):
        try:
            with store.session() as session:
                begin_write(session)
                return sync_competitors(session, settings.competitors)[name]
        except IntegrityError:
            if attempt:
                raise
    raise AssertionError("unreachable")


@contextmanager
def _lean_gc() -> Iterator[None]:
    """Run the cyclic garbage collector less often during a discovery, as a sweep's workers do
    (`monitor.scrape.sweep._tune_gc`): its garbage is freed by reference counting, and with
    CPython's defaults the collector took ~8% of a discovery's CPU re-walking what is loaded."""
    thresholds = gc.get_threshold()
    gc.set_threshold(*WORKER_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


def discover_competitor(
    store: Store,
    settings: Settings,
    name: str,
    *,
    sitemaps: Sequence[str] = (),
    starts: Sequence[str] = (),
    limit: int | None = None,
    transport: PageTransport | None = None,
) -> DiscoverySummary:
    """Discover competitor `name`'s product pages, store them, then match them (auto-accepting)."""
    competitor = settings.competitor(name)
    if competitor is None:
        known = ", ".join(c.name for c in settings.competitors) or "none configured"
        raise ConfigError(f"unknown competitor {name!r} (config has: {known})")
    with _lean_gc(), new_loop_runner() as runner:
        clock = time.monotonic()
        competitor_id = _competitor_id(store, settings, name)
        with store.session() as session:
            known_urls: list[str] = []
            if limit is None and not starts and not sitemaps:
                known_urls = list(
                    session.scalars(
                        select(DiscoveredPage.url).where(
                            DiscoveredPage.competitor_id == competitor_id, DiscoveredPage.status == "product"
                        )
                    )
                )
        discoverer = Discoverer(competitor, settings, transport=transport)
        results = runner.run(_run(discoverer, sitemaps, starts, limit or settings.matching.discover_limit, known_urls))
        summary = discoverer.summary
        # Pages first, in their own transaction (what was found is kept even if matching fails),
        # then matching, which writes only after it has scored.
        with store.session() as session:
            for start in range(0, len(results), BATCH * 10):
                _store(session, competitor_id, results[start : start + BATCH * 10], summary)
        with store.session() as session:
            summary.match = match_competitor(session, name, settings.matching, competitors=settings.competitors)
        summary.seconds = time.monotonic() - clock
        logger.info(
            "discovered %s: %d product pages (%d new, %d changed, %d gone) in %.1fs",
            name, summary.products, summary.new, summary.changed, summary.gone, summary.seconds,
        )  # fmt: skip
        return summary
