"""The Scrapy baseline: the same listings, the same extraction and the same politeness as pricemon.

Run as its own process (`python -m bench.scrapy_baseline --config ... --listings ... --out ...`), so
Twisted's reactor and Scrapy's memory stay out of the runner. Every shop gets its own download slot
(keyed by host:port, because Scrapy keys slots by host alone and all shops share 127.0.0.1) with the
competitor's max_concurrency and min_delay, robots.txt is obeyed and AutoThrottle is off. Each
response goes through `monitor.scrape.extract.extract`, exactly as pricemon's sweep does. The last
stdout line is a JSON summary.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import time
import tomllib
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class CompetitorLimits:
    """What the baseline takes from one `[[competitors]]` table."""

    name: str
    netloc: str
    max_concurrency: int
    min_delay_s: float
    selectors: dict[str, str]


def parse_seconds(value: str | float) -> float:
    """Read the config's simple durations ("0s", "250ms", "1.5s", "2m") as seconds."""
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    for unit in sorted(_DURATION_UNITS, key=len, reverse=True):
        if text.endswith(unit) and text[: -len(unit)].replace(".", "", 1).isdigit():
            return float(text[: -len(unit)]) * _DURATION_UNITS[unit]
    raise ValueError(f"unsupported duration {value!r} (expected e.g. '0s', '250ms', '2m')")


def read_competitors(config_path: Path) -> dict[str, CompetitorLimits]:
    with config_path.open("rb") as fh:
        config = tomllib.load(fh)
    competitors = {}
    for table in config.get("competitors", []):
        competitors[table["name"]] = CompetitorLimits(
            name=table["name"],
            netloc=urlsplit(table["base_url"]).netloc,
            # Same defaults as monitor.settings.Competitor.
            max_concurrency=int(table.get("max_concurrency", 4)),
            min_delay_s=parse_seconds(table.get("min_delay", "0.5s")),
            selectors=dict(table.get("selectors", {})),
        )
    return competitors


def read_listings(listings_csv: Path) -> Iterator[dict[str, str]]:
    with listings_csv.open(newline="", encoding="utf-8") as fh:
        yield from csv.DictReader(fh)


def scrapy_settings(competitors: dict[str, CompetitorLimits], out_path: Path) -> dict[str, Any]:
    """Scrapy settings mirroring pricemon's per-competitor limits."""
    slots = {
        c.netloc: {"concurrency": c.max_concurrency, "delay": c.min_delay_s, "jitter": 0} for c in competitors.values()
    }
    limits = list(competitors.values())
    return {
        "ROBOTSTXT_OBEY": True,
        "AUTOTHROTTLE_ENABLED": False,
        # The global cap must not be the bottleneck: the per-shop slots are the limits being compared.
        "CONCURRENT_REQUESTS": max(16, sum(c.max_concurrency for c in limits)),
        "CONCURRENT_REQUESTS_PER_DOMAIN": max((c.max_concurrency for c in limits), default=8),
        "DOWNLOAD_DELAY": max((c.min_delay_s for c in limits), default=0.0),
        "DOWNLOAD_DELAY_JITTER": 0,
        "DOWNLOAD_SLOTS": slots,
        "TELNETCONSOLE_ENABLED": False,
        "LOG_LEVEL": "WARNING",
        "LOG_INSTALL_ROOT_HANDLER": True,
        "USER_AGENT": "pricemon-bench-scrapy (+https://scrapy.org)",
        "FEEDS": {str(out_path): {"format": "jsonlines", "overwrite": True}},
    }


def run_baseline(config_path: Path, listings_csv: Path, out_path: Path) -> dict[str, Any]:
    """Crawl every listing with Scrapy in this process; returns the summary (counts and seconds)."""
    import scrapy
    from scrapy.crawler import CrawlerProcess

    from monitor.scrape.extract import ExtractionRules, extract

    competitors = read_competitors(config_path)
    rules = {name: ExtractionRules(**c.selectors) for name, c in competitors.items()}

    class BaselineSpider(scrapy.Spider):
        name = "pricemon_baseline"

        async def start(self) -> AsyncIterator[scrapy.Request]:
            for listing in read_listings(listings_csv):
                competitor = competitors[listing["competitor"]]
                yield scrapy.Request(
                    listing["url"],
                    callback=self.parse,
                    dont_filter=True,
                    meta={
                        "download_slot": competitor.netloc,
                        "competitor": competitor.name,
                        "sku": listing["sku"],
                    },
                )

        def parse(self, response: scrapy.http.Response) -> Iterator[dict[str, Any]]:
            competitor = response.meta["competitor"]
            result = extract(response.body, rules[competitor])
            yield {
                "competitor": competitor,
                "sku": response.meta["sku"],
                "url": response.url,
                "status": str(result.status),
                "price": None if result.price is None else str(result.price),
                "currency": result.currency,
                "in_stock": result.in_stock,
            }

    process = CrawlerProcess(scrapy_settings(competitors, out_path))
    crawler = process.create_crawler(BaselineSpider)
    started = time.perf_counter()
    process.crawl(crawler)
    process.start()
    seconds = time.perf_counter() - started
    stats = crawler.stats.get_stats() if crawler.stats else {}
    return {
        "seconds": seconds,
        "responses": int(stats.get("response_received_count", 0)),
        "items": int(stats.get("item_scraped_count", 0)),
        "status_200": int(stats.get("downloader/response_status_count/200", 0)),
        "errors": int(stats.get("log_count/ERROR", 0)),
        "robots_requests": int(stats.get("robotstxt/request_count", 0)),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scrapy_baseline", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="the generated pricemon.toml")
    parser.add_argument("--listings", type=Path, required=True, help="the generated listings.csv")
    parser.add_argument("--out", type=Path, required=True, help="JSON-lines file of extracted items")
    args = parser.parse_args(argv)
    summary = run_baseline(args.config, args.listings, args.out)
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
