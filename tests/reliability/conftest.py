"""The world of the reliability tests: a shop on 127.0.0.1 that counts what it is asked, real
`pricemon` processes, and checks of the stored history that work on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

PRICEMON = str(Path(sys.executable).with_name("pricemon"))


def product_page(price: str) -> bytes:
    product = {
        "@context": "https://schema.org",
        "@type": "Product",
        "name": "Kettle",
        "offers": {"@type": "Offer", "price": price, "priceCurrency": "EUR", "availability": "https://schema.org/InStock"},
    }
    return (
        f'<!doctype html><html><head><script type="application/ld+json">{json.dumps(product)}</script>'
        "</head><body><h1>Kettle</h1></body></html>"
    ).encode()


class CountingShop:
    """Serves /p/<sku> at `price`, each answer `delay` seconds late, and counts every request."""

    def __init__(self) -> None:
        self.price = "10.00"
        self.delay = 0.0
        self.requests: Counter[str] = Counter()
        self.times: list[float] = []
        self._lock = threading.Lock()
        shop = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                with shop._lock:
                    shop.requests[self.path] += 1
                    shop.times.append(time.monotonic())
                if shop.delay:
                    time.sleep(shop.delay)
                body = product_page(shop.price)
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.requests.values())

    def requests_since(self, moment: float) -> int:
        with self._lock:
            return sum(1 for t in self.times if t > moment)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def shop() -> Iterator[CountingShop]:
    server = CountingShop()
    yield server
    server.close()


def write_world(
    tmp_path: Path,
    database_url: str,
    shop: CountingShop,
    listings: dict[str, int],
    *,
    scrape: str = "",
    scheduler: str = "",
    every: str = "1h",
    concurrency: int = 4,
) -> Path:
    """A config with one competitor per key of `listings` (that many listings each, all on `shop`),
    its products and listings imported; returns the config file."""
    blocks = "".join(
        f'\n[[competitors]]\nname = "{name}"\nbase_url = "{shop.base_url}"\nevery = "{every}"\n'
        f'min_delay = "0s"\nrespect_robots_txt = false\nmax_concurrency = {concurrency}\n'
        for name in listings
    )
    config = tmp_path / "pricemon.toml"
    if "workers" not in scrape:
        scrape += "\nworkers = 1"
    config.write_text(
        f'database_url = "{database_url}"\n\n[scrape]\nretries = 0\ntimeout = "10s"\n{scrape}\n'
        f'[scheduler]\ngrace_period = "10s"\ndatabase_retry_max = "1s"\n{scheduler}\n{blocks}',
        encoding="utf-8",
    )
    total = max(listings.values())
    products = tmp_path / "products.csv"
    products.write_text("sku,name,price,currency\n" + "".join(f"S{i:04d},Kettle,10.00,EUR\n" for i in range(total)))
    rows = tmp_path / "listings.csv"
    rows.write_text(
        "sku,competitor,url\n"
        + "".join(f"S{i:04d},{name},{shop.base_url}/p/{name}/{i}\n" for name, n in listings.items() for i in range(n))
    )
    for args in (["db", "upgrade"], ["import", "products", str(products)], ["import", "listings", str(rows)]):
        result = pricemon(config, *args, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    return config


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PRICEMON_")}


def pricemon(config: Path, *args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PRICEMON, "--config", str(config), *args], cwd=cwd, env=clean_env(), capture_output=True, text=True,
        timeout=timeout,
    )


def start_pricemon(config: Path, *args: str, cwd: Path, log: Path | None = None) -> subprocess.Popen[str]:
    """`pricemon --config CONFIG ARGS...` in the background; stderr to `log` when given."""
    return subprocess.Popen(
        [PRICEMON, "--config", str(config), *args],
        cwd=cwd,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=log.open("w") if log is not None else subprocess.PIPE,
        text=True,
    )


def sql(database_url: str, statement: str, **params: Any) -> list[Any]:
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            result = connection.execute(text(statement), params)
            return list(result.all()) if result.returns_rows else []
    finally:
        engine.dispose()


def history_problems(database_url: str) -> list[str]:
    """What is wrong with the stored history: consecutive rows of a listing with the same state, a
    listing not pointing at its newest row, or a last success older than its newest state."""
    problems: list[str] = []
    rows = sql(
        database_url,
        "SELECT listing_id, id, price, currency, in_stock, observed_at FROM price_history "
        "ORDER BY listing_id, observed_at, id",
    )
    newest: dict[int, Any] = {}
    previous: Any = None
    for row in rows:
        if previous is not None and previous[0] == row[0] and tuple(previous[2:5]) == tuple(row[2:5]):
            problems.append(f"listing {row[0]}: rows {previous[1]} and {row[1]} hold the same state")
        newest[row[0]] = row
        previous = row
    for listing_id, latest_id, last_success in sql(
        database_url, "SELECT id, latest_history_id, last_success_at FROM listings"
    ):
        row = newest.get(listing_id)
        if row is None:
            continue
        if latest_id != row[1]:
            problems.append(f"listing {listing_id}: points at row {latest_id}, its newest is {row[1]}")
        if last_success is None or str(last_success) < str(row[5]):
            problems.append(f"listing {listing_id}: last success {last_success} before its newest state {row[5]}")
    return problems


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)
