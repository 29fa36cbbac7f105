"""A real `pricemon serve` in a subprocess, on a free port, over a store the real import, sweep
records and `suggest` filled, with one token of each role (and a revoked one)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.pricing.conftest import Market

SESSION_SECRET = "test-session-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_command(config: Path, database_url: str, *args: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from monitor.cli import main; main()",
        "--config",
        str(config),
        "--database-url",
        database_url,
        "serve",
        *args,
    ]


@dataclass
class Served:
    url: str
    market: Market
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, role: str | None = None, **kwargs: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, follow_redirects=False, **kwargs)  # type: ignore[arg-type]


def fill(market: Market) -> None:
    market.products(
        "sku,name,price,currency,cost,tags\n"
        "A-1,Alpha kettle,50.00,EUR,30.00,kitchen\n"
        "B-2,Beta toaster,50.00,EUR,45.00,kitchen\n"
        'C-3,"<script>alert(1)</script> lamp",50.00,EUR,,living|sale\n'
        "D-4,Delta chair,20.00,EUR,10.00,living\n"
        "E-5,Epsilon desk,100.00,EUR,60.00,office\n"
    )
    market.listings([("A-1", "acme"), ("B-2", "acme"), ("C-3", "globex"), ("D-4", "globex"), ("E-5", "acme")])
    market.observe(
        {
            ("A-1", "acme"): "40.00",
            ("B-2", "acme"): "47.50",
            ("C-3", "globex"): "30.00",
            ("D-4", "globex"): "19.00",
            ("E-5", "acme"): "90.00",
        }
    )
    market.pricemon("suggest")


def start(market: Market, tokens: dict[str, str]) -> Iterator[Served]:
    port = free_port()
    env = {**os.environ, "PRICEMON_SESSION_SECRET": SESSION_SECRET}
    process = subprocess.Popen(
        serve_command(market.config_path, market.database_url, "--port", str(port)),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            pytest.fail(f"pricemon serve exited {process.returncode}:\n{output}")
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("pricemon serve did not answer within 30 s")
        time.sleep(0.1)
    try:
        yield Served(url, market, tokens)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def make_tokens(market: Market) -> dict[str, str]:
    tokens = {}
    for role in ("viewer", "approver", "admin"):
        tokens[role] = market.pricemon("tokens", "create", f"{role}-bot", "--role", role, "--json").json()["token"]
    tokens["revoked"] = market.pricemon("tokens", "create", "gone", "--role", "admin", "--json").json()["token"]
    market.pricemon("tokens", "revoke", "gone")
    return tokens


@pytest.fixture
def served(market: Market) -> Iterator[Served]:
    """On SQLite, and on PostgreSQL when PRICEMON_TEST_POSTGRES_URL is set."""
    fill(market)
    yield from start(market, make_tokens(market))


@pytest.fixture
def served_sqlite(sqlite_market: Market) -> Iterator[Served]:
    fill(sqlite_market)
    yield from start(sqlite_market, make_tokens(sqlite_market))
