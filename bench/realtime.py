"""Latency from a competitor's page change to our price feed: `python -m bench.realtime`.

A shop on 127.0.0.1 serves a few product pages; `pricemon run` (a real subprocess, the
competitor swept `every = "2s"`, `suggest_every` an hour so the timer cannot be what answers)
prices them with `match_lowest`, auto-approved, and sends every applied change to a webhook on
127.0.0.1. The bench changes one page's price at a time, at a random moment of the sweep
cycle, and measures the time until the webhook receives our new price for that SKU. Figures
(p50, p95, max) are printed and appended to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.runner import DEFAULT_RESULTS, _date_u, append_results, child_env, describe_machine, pricemon_executable

TARGET_P95_S = 10.0


def product_page(price: str) -> bytes:
    offer = {"@type": "Offer", "price": price, "priceCurrency": "EUR", "availability": "https://schema.org/InStock"}
    product = {"@context": "https://schema.org", "@type": "Product", "name": "Kettle", "offers": offer}
    return (f'<!doctype html><html><head><title>Kettle</title><script type="application/ld+json">'
            f"{json.dumps(product)}</script></head><body><h1>Kettle</h1></body></html>").encode()


class Shop:
    """/p/<sku> with the price in `prices[sku]`."""

    def __init__(self) -> None:
        self.prices: dict[str, str] = {}
        shop = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                price = shop.prices.get(self.path.removeprefix("/p/"))
                body, status = (product_page(price), 200) if price is not None else (b"not here", 404)
                self.send_response(status)
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

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Webhook:
    """Receives the price feed's POSTs; remembers when each (sku, price) first arrived."""

    def __init__(self) -> None:
        self.arrived: dict[tuple[str, str], float] = {}
        self.changed = threading.Condition()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                at = time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with hook.changed:
                    for change in json.loads(body).get("changes", []):
                        hook.arrived.setdefault((change["sku"], change["price"]), at)
                    hook.changed.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/feed"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, sku: str, price: str, timeout: float) -> float | None:
        """When our `price` for `sku` arrived (time.time()), or None after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while (sku, price) not in self.arrived:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.changed.wait(left)
            return self.arrived[(sku, price)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Latency:
    seconds: list[float] = field(default_factory=list)
    #: of each: page change -> the check that saw it (the sweep cadence), and that check -> the feed
    #: message (committing the batch, repricing, applying, sending)
    to_check: list[float] = field(default_factory=list)
    check_to_feed: list[float] = field(default_factory=list)
    missed: int = 0
    log: str = ""

    def percentile(self, share: float) -> float | None:
        """Nearest-rank percentile (p95 of 10 samples is the largest but none)."""
        if not self.seconds:
            return None
        ordered = sorted(self.seconds)
        return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def config_text(database: Path, shop: Shop, webhook: Webhook, every: str, reprice_on_change: bool = True) -> str:
    return f"""
database_url = "sqlite:///{database}"

[scrape]
retries = 0
timeout = "10s"
workers = 1

[scheduler]
suggest_every = "1h"
reprice_on_change = {str(reprice_on_change).lower()}
grace_period = "10s"

[pricing]
workers = 1

[pricing.default]
strategies = ["match_lowest"]
auto_approve = true
guardrails = []

[feed]
webhook_url = "{webhook.url}"
retries = 0
timeout = "5s"

[[competitors]]
name = "alpha"
base_url = "{shop.base_url}"
every = "{every}"
min_delay = "0s"
respect_robots_txt = false
"""


def measure(
    work: Path, *, changes: int = 10, products: int = 3, every: str = "2s", seed: int = 18,
    timeout: float = 60.0, reprice_on_change: bool = True,
) -> Latency:
    """Run the daemon in `work` and time `changes` page changes through to the webhook."""
    rng = random.Random(seed)
    shop, webhook = Shop(), Webhook()
    env = {k: v for k, v in child_env().items() if not k.startswith("PRICEMON_")}
    database, config = work / "pricemon.db", work / "pricemon.toml"
    skus = [f"RT-{i}" for i in range(products)]
    config.write_text(config_text(database, shop, webhook, every, reprice_on_change), encoding="utf-8")
    (work / "products.csv").write_text(
        "sku,name,price,currency\n" + "".join(f"{s},Kettle {s},20.00,EUR\n" for s in skus), encoding="utf-8")
    (work / "listings.csv").write_text(
        "sku,competitor,url\n" + "".join(f"{s},alpha,{shop.base_url}/p/{s}\n" for s in skus), encoding="utf-8")
    for sku in skus:
        shop.prices[sku] = "15.00"
    pricemon = pricemon_executable()
    for kind in ("products", "listings"):
        args = ["import", kind, str(work / f"{kind}.csv")]
        subprocess.run([pricemon, "--config", str(config), *args], env=env, check=True, capture_output=True)
    log_path = work / "daemon.log"
    result = Latency()
    with log_path.open("wb") as log:
        daemon = subprocess.Popen([pricemon, "--config", str(config), "run"], env=env, cwd=work,
                                  stdout=subprocess.DEVNULL, stderr=log)
        try:
            # The first sweep sees 15.00 everywhere: our 20.00 follows, auto-applied and sent.
            for sku in skus:
                if webhook.wait_for(sku, "15.00", timeout) is None:
                    result.missed += 1
                    result.log = log_path.read_text(encoding="utf-8", errors="replace")
                    return result
            price = 1500
            for n in range(changes):
                time.sleep(rng.uniform(0.2, 2.2))  # a random moment of the 2 s sweep cycle
                sku = skus[n % len(skus)]
                price -= 7
                text = f"{price // 100}.{price % 100:02d}"
                changed_at = time.time()
                shop.prices[sku] = text
                arrived = webhook.wait_for(sku, text, timeout)
                if arrived is None or daemon.poll() is not None:
                    result.missed += 1
                    continue
                result.seconds.append(arrived - changed_at)
                checked = _checked_at(database, sku, text)
                if checked is not None:
                    result.to_check.append(checked - changed_at)
                    result.check_to_feed.append(arrived - checked)
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
            shop.close()
            webhook.close()
    result.log = log_path.read_text(encoding="utf-8", errors="replace")
    return result


def _checked_at(database: Path, sku: str, price: str) -> float | None:
    """When the check that first read `price` for `sku` ran (its history row's observed_at)."""
    import sqlite3
    from datetime import UTC, datetime

    connection = sqlite3.connect(database, timeout=30)
    try:
        row = connection.execute(
            "SELECT min(h.observed_at) FROM price_history h JOIN listings l ON l.id = h.listing_id "
            "JOIN products p ON p.id = l.product_id WHERE p.sku = ? AND h.price = ?", (sku, float(price))
        ).fetchone()
    finally:
        connection.close()
    if not row or row[0] is None:
        return None
    when = datetime.fromisoformat(str(row[0]))
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def render(command: str, started_at: str, latency: Latency, changes: int, every: str, products: int) -> str:
    machine = describe_machine("python")
    p50, p95 = latency.percentile(0.5), latency.percentile(0.95)
    worst = max(latency.seconds, default=None)
    passed = p95 is not None and p95 <= TARGET_P95_S and latency.missed == 0

    def fmt(value: float | None) -> str:
        return f"{value:.2f}" if value is not None else "-"

    def middle(values: list[float]) -> str:
        return fmt(Latency(sorted(values)).percentile(0.5))

    return "\n".join([
        f"## {started_at} (real-time repricing: page change -> feed message)",
        "",
        f"Command: `{command}`; {changes} changes, competitor `every = \"{every}\"`, `suggest_every = \"1h\"`, "
        "match_lowest auto-approved, webhook on 127.0.0.1, SQLite.",
        "",
        f"Machine: {machine['nproc']} CPUs ({machine['cpu']}), Python {machine['python']}; git {machine['git']}.",
        "",
        "| products | changes | reached the feed | p50 s | p95 s | max s | p50 change -> check s "
        "| p50 check -> feed s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {products} | {changes} | {len(latency.seconds)} | {fmt(p50)} | {fmt(p95)} | {fmt(worst)} | "
        f"{middle(latency.to_check)} | {middle(latency.check_to_feed)} |",
        "",
        f"- **{'PASS' if passed else 'MISS'}** p95 <= {TARGET_P95_S:g} s, every change sent: p95 {fmt(p95)} s, "
        f"{latency.missed} missed",
        f"- every latency (s): {', '.join(f'{s:.2f}' for s in latency.seconds)}",
        f"- check -> feed (s): {', '.join(f'{s:.2f}' for s in latency.check_to_feed)}",
        "",
    ])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.realtime", description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=10, help="price changes to time (default 10)")
    parser.add_argument("--products", type=int, default=3, help="products the shop sells (default 3)")
    parser.add_argument("--every", default="2s", help='the competitor\'s sweep interval (default "2s")')
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="Markdown file to append to")
    parser.add_argument("--no-results", action="store_true", help="print only, append nothing")
    args = parser.parse_args(argv)
    started_at = _date_u()
    with tempfile.TemporaryDirectory(prefix="pricemon-realtime-") as tmp:
        latency = measure(Path(tmp), changes=args.changes, products=args.products, every=args.every)
    command = " ".join(["python -m bench.realtime", *(sys.argv[1:] if argv is None else argv)])
    section = render(command, started_at, latency, args.changes, args.every, args.products)
    sys.stdout.write("\n" + section)
    if not args.no_results:
        append_results(args.results, section)
    p95 = latency.percentile(0.95)
    return 0 if p95 is not None and p95 <= TARGET_P95_S and latency.missed == 0 else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
