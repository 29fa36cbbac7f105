"""Per-part costs of a sweep, the figures the engine's design rests on: `python -m bench.micro`.

On a small generated web (6 shops, one of each page style, served by the same static server as
the full benchmark) it measures, in one process:

* extraction: microseconds per page for each page style (`monitor.scrape.extract.extract`);
* fetching: CPU microseconds per page through the `Fetcher` on each transport pricemon has
  (aiohttp, the default; httpx's own, used for proxied competitors) and through bare aiohttp,
  the floor any fetcher on it pays;
* storing: microseconds per check for `record_checks` on SQLite and PostgreSQL (wall time, the
  server's included), for not-modified pages and for re-read pages with the same price;
* body hashing: microseconds per page for the hash a sweep keeps to skip unchanged bodies.

Timings are the best of several rounds (extraction, storing, hashing) or CPU time (fetching),
so other load on the machine moves them less. The figures are printed and appended to
bench/RESULTS.md with the command and date.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
from sqlalchemy import select

from bench.runner import (
    DEFAULT_POSTGRES_URL,
    DEFAULT_RESULTS,
    _date_u,
    append_results,
    bench_database,
    describe_machine,
)
from bench.static_server import start_static_server
from bench.synthetic_web import DEFAULT_CACHE_ROOT, DEFAULT_SEED, SyntheticWeb, generate_web, product_path
from monitor.scrape.extract import ExtractionRules, extract
from monitor.scrape.fetch import Fetcher
from monitor.scrape.transport import AiohttpPages, HttpxPages, PageTransport
from monitor.settings import Competitor, ScrapeSettings
from monitor.store.database import open_store
from monitor.store.history import CheckResult, record_checks
from monitor.store.models import Competitor as CompetitorRow
from monitor.store.models import Listing, Product

logger = logging.getLogger(__name__)

SHOPS = 6  # the generator cycles through six page styles
ROUNDS = 5


def best_of(rounds: int, work: Callable[[], object]) -> float:
    """Fastest of `rounds` timed calls of `work`, in seconds."""
    best = float("inf")
    for _ in range(rounds):
        began = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - began)
    return best


def rules_for(selectors: dict[str, str]) -> ExtractionRules:
    return ExtractionRules(
        price=selectors.get("price"),
        currency=selectors.get("currency"),
        in_stock=selectors.get("in_stock"),
        out_of_stock=selectors.get("out_of_stock"),
        decimal_separator=selectors.get("decimal_separator"),
    )


def measure_extraction(web: SyntheticWeb) -> dict[str, float]:
    """Microseconds per page, by page style."""
    figures: dict[str, float] = {}
    for shop in web.shops:
        rules = rules_for(shop.selectors)
        bodies = [(web.shop_root(shop.name) / product_path(p.sku).lstrip("/")).read_bytes() for p in web.products]

        def run(bodies: list[bytes] = bodies, rules: ExtractionRules = rules) -> None:
            for body in bodies:
                extract(body, rules)

        figures[shop.style] = best_of(ROUNDS, run) / len(bodies) * 1e6
    return figures


async def _fetch_with(transport: Callable[[], PageTransport], urls: dict[str, list[str]], lanes: int) -> float:
    """CPU seconds to fetch every URL, with one Fetcher (and one new transport) per shop."""
    settings = ScrapeSettings(retries=0)
    fetchers = [
        Fetcher(
            Competitor(name=name, base_url=shop_urls[0], max_concurrency=8, min_delay="0s"),  # type: ignore[arg-type]
            settings,
            transport=transport(),
        )
        for name, shop_urls in urls.items()
    ]

    async def lane(fetcher: Fetcher, pending: Iterator[str]) -> None:
        for url in pending:
            page = await fetcher.fetch(url)
            if page.outcome != "ok":
                raise RuntimeError(f"{url}: {page.outcome} {page.error}")

    began = time.process_time()
    streams = {f.competitor.name: iter(urls[f.competitor.name]) for f in fetchers}
    await asyncio.gather(*(lane(f, streams[f.competitor.name]) for f in fetchers for _ in range(lanes)))
    spent = time.process_time() - began
    for fetcher in fetchers:
        await fetcher.aclose()
    return spent


async def _bare_aiohttp(urls: dict[str, list[str]], lanes: int) -> float:
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512)) as session:
        slots = {name: asyncio.Semaphore(8) for name in urls}

        async def lane(name: str, pending: Iterator[str]) -> None:
            for url in pending:
                async with slots[name], session.get(url, allow_redirects=False) as response:
                    await response.read()

        began = time.process_time()
        streams = {name: iter(shop_urls) for name, shop_urls in urls.items()}
        await asyncio.gather(*(lane(name, streams[name]) for name in urls for _ in range(lanes)))
        return time.process_time() - began


def measure_fetching(web: SyntheticWeb, base_urls: dict[str, str]) -> dict[str, float]:
    """CPU microseconds per page, by fetch path (warm connections: each path runs twice)."""
    urls = {
        shop.name: [base_urls[shop.name].rstrip("/") + product_path(p.sku) for p in web.products] for shop in web.shops
    }
    pages = sum(len(u) for u in urls.values())
    paths: dict[str, Callable[[], object]] = {
        "Fetcher on aiohttp (default)": lambda: _fetch_with(AiohttpPages, urls, 16),
        "Fetcher on httpx's transport (proxies)": lambda: _fetch_with(
            lambda: HttpxPages(httpx.AsyncHTTPTransport()), urls, 16
        ),
        "bare aiohttp (the floor)": lambda: _bare_aiohttp(urls, 16),
    }
    figures: dict[str, float] = {}
    for name, make in paths.items():
        spent = min(_run_loop(make) for _ in range(2))
        figures[name] = spent / pages * 1e6
    return figures


def _run_loop(make: Callable[[], object]) -> float:
    try:
        import uvloop

        return float(uvloop.run(make()))  # type: ignore[arg-type]
    except ImportError:
        return float(asyncio.run(make()))  # type: ignore[arg-type]


def measure_storing(backend: str, postgres_url: str, listings: int = 5000, batch: int = 500) -> dict[str, float]:
    """Microseconds per check for record_checks on a fresh database, in batches like a sweep's."""
    with tempfile.TemporaryDirectory() as tmp, bench_database(backend, Path(tmp), postgres_url, keep=False) as url:
        store = open_store(url, migrate=True)
        try:
            with store.session() as session:
                competitor = CompetitorRow(name="c", base_url="http://127.0.0.1/")
                session.add(competitor)
                products = [Product(sku=f"S{i}", name="n", price=Decimal("1"), currency="EUR") for i in range(listings)]
                session.add_all(products)
                session.flush()
                session.add_all(
                    Listing(product_id=p.id, competitor_id=competitor.id, url=f"http://127.0.0.1/{p.id}")
                    for p in products
                )
            with store.session() as session:
                ids = list(session.scalars(select(Listing.id)))
            start = datetime(2026, 1, 1, tzinfo=UTC)

            def checks(outcome: str, minute: int) -> list[CheckResult]:
                at = start + timedelta(minutes=minute)
                return [
                    CheckResult(i, outcome, at, price=Decimal("9.99"), currency="EUR", in_stock=True, etag='"e"')
                    for i in ids
                ]

            def store_all(results: list[CheckResult]) -> None:
                for offset in range(0, len(results), batch):
                    with store.session() as session:
                        record_checks(session, results[offset : offset + batch], run_id=None, interval=timedelta(1))

            store_all(checks("observed", 0))
            minutes = iter(range(1, 1000))  # every round checks at a later time
            figures = {}
            for label, outcome in (("not modified (304)", "not_modified"), ("same price read again", "observed")):

                def round_of(outcome: str = outcome) -> None:
                    store_all(checks(outcome, next(minutes)))

                figures[label] = best_of(3, round_of) / len(ids) * 1e6
            return figures
        finally:
            store.dispose()


def measure_hashing(web: SyntheticWeb) -> dict[str, float]:
    bodies = [(web.shop_root(web.shops[0].name) / product_path(p.sku).lstrip("/")).read_bytes() for p in web.products]
    figures = {}
    for name in ("sha256", "blake2b", "sha1", "md5"):
        algorithm = getattr(hashlib, name)

        def hash_all(algorithm: Callable[[bytes], object] = algorithm) -> None:
            for body in bodies:
                algorithm(body)

        figures[name] = best_of(ROUNDS, hash_all) / len(bodies) * 1e6
    return figures


def render(command: str, started_at: str, products: int, machine: dict[str, str], sections: dict) -> str:
    lines = [
        f"## {started_at} (per-part costs)",
        "",
        f"Command: `{command}`; {SHOPS} shops x {products} products, one page style each.",
        "",
        f"Machine: {machine['nproc']} CPUs ({machine['cpu']}), Python {machine['python']}; "
        f"{machine['packages']}; git {machine['git']}.",
        "",
        "| part | case | us per page or check |",
        "|---|---|---:|",
    ]
    for part, figures in sections.items():
        for case, value in figures.items():
            lines.append(f"| {part} | {case} | {value:,.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.micro", description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=400, help="pages per shop (default 400)")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_ROOT)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL, help="PostgreSQL server (no database)")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="Markdown file to append to")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    started_at = _date_u()
    web = generate_web(SHOPS, args.products, DEFAULT_SEED, cache_root=args.cache_dir)
    sections: dict[str, dict[str, float]] = {}
    sections["extraction"] = measure_extraction(web)
    with tempfile.TemporaryDirectory() as tmp:
        server = start_static_server({s.name: web.shop_root(s.name) for s in web.shops}, Path(tmp) / "server")
        try:
            sections["fetching (CPU)"] = measure_fetching(web, dict(server.base_urls))
            machine = describe_machine(server.kind)
        finally:
            server.stop()
    for backend in ("sqlite", "postgresql") if args.database == "both" else (args.database,):
        label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[backend]
        sections[f"storing ({label})"] = measure_storing(backend, args.postgres_url)
    sections["body hash"] = measure_hashing(web)
    command = " ".join(["python -m bench.micro", *(sys.argv[1:] if argv is None else argv)])
    section = render(command, started_at, args.products, machine, sections)
    sys.stdout.write("\n" + section)
    append_results(args.results, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
