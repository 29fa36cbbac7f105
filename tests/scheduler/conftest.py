"""The daemon's world for its tests: a competitor shop on 127.0.0.1 whose prices and speed the test
changes, the real `pricemon run` as a subprocess, and read-only looks into its SQLite file."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest


def product_page(price: str, currency: str = "EUR") -> bytes:
    product = {
        "@context": "https://schema.org",
        "@type": "Product",
        "name": "Kettle",
        "offers": {
            "@type": "Offer",
            "price": price,
            "priceCurrency": currency,
            "availability": "https://schema.org/InStock",
        },
    }
    return (
        "<!doctype html><html><head><title>Kettle</title>"
        f'<script type="application/ld+json">{json.dumps(product)}</script></head>'
        "<body><h1>Kettle</h1></body></html>"
    ).encode()


class PriceShop:
    """A shop serving /p/<sku> with the price in `prices[sku]`; unknown SKUs are 404.

    `delay` slows every product page down, so a sweep is still in flight when the test acts.
    """

    def __init__(self) -> None:
        self.prices: dict[str, str] = {}
        self.delay = 0.0
        shop = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                sku = self.path.removeprefix("/p/")
                price = shop.prices.get(sku) if self.path.startswith("/p/") else None
                if price is None:
                    body, status = b"not here", 404
                else:
                    if shop.delay:
                        time.sleep(shop.delay)
                    body, status = product_page(price), 200
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, sku: str) -> str:
        return f"{self.base_url}/p/{sku}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def shop() -> Iterator[PriceShop]:
    server = PriceShop()
    yield server
    server.close()


def competitor_block(name: str, shop: PriceShop, *, every: str = "1s", extra: str = "") -> str:
    return f"""
[[competitors]]
name = "{name}"
base_url = "{shop.base_url}"
every = "{every}"
min_delay = "0s"
respect_robots_txt = false
{extra}
"""


def config_text(
    db: Path | str, *competitors: str, scheduler: str = "", scrape: str = "", grace_period: str = "20s"
) -> str:
    """A daemon config; `db` is an SQLite file or a database URL."""
    url = db if isinstance(db, str) else f"sqlite:///{db}"
    return f"""
database_url = "{url}"

[scrape]
retries = 0
timeout = "10s"
workers = 1
{scrape}

[scheduler]
grace_period = "{grace_period}"
database_retry_max = "1s"
{scheduler}
""" + "".join(competitors)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Daemon:
    """`pricemon --config CONFIG run` as a real process; its stderr goes to a file the test reads."""

    def __init__(self, config: Path, cwd: Path, *args: str) -> None:
        exe = Path(sys.executable).with_name("pricemon")
        self.log_path = cwd / f"daemon-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PRICEMON_")}
        self.process = subprocess.Popen(
            [str(exe), "--config", str(config), "run", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM and wait for the exit code."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)
        self._log.close()


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def start(config: Path, *args: str) -> Daemon:
        daemon = Daemon(config, tmp_path, *args)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        if daemon.alive():
            daemon.kill()


def wait_for(condition: Callable[[], Any], what: str, *, timeout: float = 30, daemon: Daemon | None = None) -> Any:
    """Poll `condition` until it returns something truthy; fail with the daemon's log otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if daemon is not None and not daemon.alive():
            pytest.fail(f"daemon exited ({daemon.process.returncode}) while waiting for {what}:\n{daemon.log}")
        if time.monotonic() > deadline:
            log = daemon.log if daemon is not None else ""
            pytest.fail(f"timed out waiting for {what}\n{log}")
        time.sleep(0.1)


def query(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read the daemon's database from outside, as another process would."""
    connection = sqlite3.connect(db, timeout=30)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


@pytest.fixture
def outage_postgres_url() -> Iterator[str]:
    """A PostgreSQL database of its own, which the test may close to connections (an outage)."""
    base = os.environ.get("PRICEMON_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("PRICEMON_TEST_POSTGRES_URL is not set")
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"pricemon_outage_{os.getpid()}_{time.monotonic_ns() % 10**8}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(base).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def set_database_open(url: str, open_: bool) -> None:
    """Close a PostgreSQL database to new connections and drop the existing ones, or reopen it:
    to pricemon this is the server going away and coming back."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(open_).lower()}'))
            if not open_:
                connection.execute(
                    text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                    {"name": name},
                )
    finally:
        admin.dispose()
