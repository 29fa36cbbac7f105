"""Only where it should go: every connection's address is checked after DNS, so redirects and
rebinding names cannot reach link-local, cloud-metadata or unlisted private addresses.

These tests only ever connect to 127.0.0.0/8. An audit hook watches every `socket.connect` of the
test process while they run: an attempt to reach any other address is refused by the hook and
recorded, and the tests assert that none was made. Names are resolved by a resolver seam, never
by real DNS.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from monitor.scrape.addresses import AddressPolicy, parse_networks
from monitor.scrape.fetch import Fetcher, Page
from monitor.scrape.transport import AiohttpPages, HttpxPages, TransportFailure
from monitor.settings import Competitor, ScrapeSettings
from tests.scrape.conftest import Reply, Shop, jsonld_page
from tests.scrape.test_sweep import SCRAPE, by_sku, competitor_block, setup_catalog

_GUARD: dict[str, Any] = {"on": False, "attempts": []}


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "socket.connect" or not _GUARD["on"]:
        return
    address = args[1]
    if not isinstance(address, tuple):
        return  # a Unix socket
    host = str(address[0]).split("%")[0]
    ip = ipaddress.ip_address(host)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if not ip.is_loopback:
        _GUARD["attempts"].append(host)
        raise ConnectionRefusedError(f"test guard: no connection to {host} leaves this machine")


sys.addaudithook(_audit)


@pytest.fixture
def connections() -> Iterator[list[str]]:
    """Non-loopback connection attempts while the test runs (refused by the audit hook)."""
    _GUARD["attempts"] = []
    _GUARD["on"] = True
    yield _GUARD["attempts"]
    _GUARD["on"] = False


@pytest.fixture
def shop() -> Iterator[Shop]:
    server = Shop()
    yield server
    server.close()


class Names(AbstractResolver):
    """A resolver seam: each name answers the next address of its list (the last one repeats)."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        queue = self.answers[host]
        address = queue.pop(0) if len(queue) > 1 else queue[0]
        self.lookups.append(f"{host}={address}")
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": family,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        pass


HOSTILE_TARGETS = {
    "META": ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a cloud metadata address"),
    "PRIV": ("http://10.0.0.1/admin", "10.0.0.1 is a private address (10.0.0.0/8)"),
    "MAPPED": ("http://[::ffff:169.254.169.254]/", "is a cloud metadata address"),
    "LINK6": ("http://[fe80::1]/", "is a link-local address (fe80::/10)"),
    "ALIBABA": ("http://100.100.100.200/latest/meta-data/", "100.100.100.200 is a cloud metadata address"),
    "AWS6": ("http://[fd00:ec2::254]/latest/meta-data/", "is a cloud metadata address"),
    "CGNAT": ("http://100.64.1.1/", "shared address space"),
}


def test_redirects_to_metadata_and_private_addresses_are_refused_before_any_connection(
    tmp_path, shop, pricemon_cli, write_config, sqlite_url, connections
) -> None:
    for sku, (target, _) in HOSTILE_TARGETS.items():
        shop.pages[f"/p/{sku}"] = Reply(302, "", {"Location": target})
    shop.pages["/p/OK"] = jsonld_page("19.99")
    shop.pages["/p/HOP"] = Reply(302, "", {"Location": shop.url("/p/OK")})  # loopback to loopback: fine
    listings = [(sku, "acme", shop.url(f"/p/{sku}")) for sku in [*HOSTILE_TARGETS, "OK", "HOP"]]
    config = write_config(SCRAPE.replace('timeout = "1s"', 'timeout = "20s"') + competitor_block("acme", shop))
    pricemon = pricemon_cli(config, sqlite_url)
    setup_catalog(tmp_path, pricemon, listings)

    started = time.monotonic()
    summary = pricemon("scrape", "--json").json()
    elapsed = time.monotonic() - started

    assert summary["status"] == "finished"
    rows = by_sku(pricemon)
    assert rows["OK"]["last_outcome"] == "changed" and rows["HOP"]["last_outcome"] == "changed"
    for sku, (_, message) in HOSTILE_TARGETS.items():
        assert rows[sku]["last_outcome"] == "blocked_address", rows[sku]
        assert message in rows[sku]["last_error"], rows[sku]
    assert "never contacts it" in rows["META"]["last_error"]
    assert "scrape.allowed_networks" in rows["PRIV"]["last_error"]
    assert connections == []  # not one attempt: the refusals came before any connection
    assert elapsed < 15  # none of them waited for the 20 s timeout of an unreachable address


@pytest.fixture
def shop_on_127_0_0_2() -> Iterator[Shop]:
    """A second server, listening on 127.0.0.2 only."""
    server = Shop()
    handler = server.server.RequestHandlerClass
    server.close()
    server.server = ThreadingHTTPServer(("127.0.0.2", 0), handler)
    server.server.daemon_threads = True
    server.port = server.server.server_address[1]
    server.base = f"http://127.0.0.2:{server.port}"
    server.thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    server.thread.start()
    yield server
    server.close()


def test_a_hostname_shop_reaches_only_the_networks_allowed_to_it(shop, shop_on_127_0_0_2, connections) -> None:
    other = shop_on_127_0_0_2
    shop.pages["/p/away"] = Reply(302, "", {"Location": other.url("/p/there")})
    shop.pages["/p/here"] = jsonld_page("3.00")
    other.pages["/p/there"] = jsonld_page("4.00")
    base = f"http://shop.test:{shop.port}/"

    def run(allowed: list[str], robots: bool = False) -> list[Page]:
        names = Names({"shop.test": ["127.0.0.1"]})
        policy = AddressPolicy(base, parse_networks(allowed))
        transport = AiohttpPages(max_connections=4, resolver=names, policy=policy)
        competitor = Competitor(name="acme", base_url=base, min_delay="0s", respect_robots_txt=robots)  # type: ignore[arg-type]
        settings = ScrapeSettings(retries=0, timeout="20s", allowed_networks=allowed)  # type: ignore[arg-type]

        async def go() -> list[Page]:
            async with Fetcher(competitor, settings, transport=transport) as fetcher:
                return [await fetcher.fetch(f"{base}p/here"), await fetcher.fetch(f"{base}p/away")]

        return asyncio.run(go())

    # base_url is a name: its resolving to loopback does not make loopback the shop's network.
    for robots in (False, True):  # with robots.txt on, its fetch is the first one refused
        here, away = run([], robots)
        assert here.outcome == "blocked_address", here
        assert "shop.test: 127.0.0.1 is a loopback address (127.0.0.0/8)" in (here.error or "")
    assert shop.hits == {}
    # 127.0.0.1 allowed, 127.0.0.2 not: the redirect there is refused, named with its rule.
    here, away = run(["127.0.0.1/32"])
    assert here.outcome == "ok"
    assert away.outcome == "blocked_address" and "127.0.0.2 is a loopback address" in (away.error or "")
    assert "scrape.allowed_networks" in (away.error or "")
    assert other.hits["/p/there"] == 0
    # The whole loopback network allowed: the redirect is followed.
    here, away = run(["127.0.0.0/8"])
    assert (here.outcome, away.outcome) == ("ok", "ok")
    assert other.hits["/p/there"] == 1
    assert connections == []


def test_a_name_that_rebinds_to_the_metadata_address_is_refused_at_connect(shop, connections) -> None:
    shop.pages["/p/k"] = Reply(200, jsonld_page("9.00"), {"Connection": "close"})
    base = f"http://shop.test:{shop.port}/"
    names = Names({"shop.test": ["127.0.0.1", "169.254.169.254"]})
    policy = AddressPolicy(base, parse_networks(["127.0.0.0/8"]))
    transport = AiohttpPages(max_connections=4, resolver=names, policy=policy)
    competitor = Competitor(name="acme", base_url=base, min_delay="0s", respect_robots_txt=False)  # type: ignore[arg-type]
    settings = ScrapeSettings(retries=0, timeout="20s", allowed_networks=["127.0.0.0/8"])  # type: ignore[arg-type]

    async def go() -> tuple[Page, Page]:
        async with Fetcher(competitor, settings, transport=transport) as fetcher:
            first = await fetcher.fetch(f"{base}p/k")
            # A new connection needs a new lookup: the first answer is no longer cached.
            assert transport._session is not None
            transport._session.connector.clear_dns_cache()  # type: ignore[union-attr]
            return first, await fetcher.fetch(f"{base}p/k")

    first, second = asyncio.run(go())
    assert first.outcome == "ok"
    assert second.outcome == "blocked_address"
    assert "169.254.169.254 is a cloud metadata address" in (second.error or "")
    assert names.lookups == ["shop.test=127.0.0.1", "shop.test=169.254.169.254"]
    assert shop.hits["/p/k"] == 1
    assert connections == []


@pytest.mark.parametrize("kind", ["aiohttp", "httpx"])
def test_the_transports_refuse_an_address_literal_without_connecting(kind, connections) -> None:
    policy = AddressPolicy("https://shop.example/")
    transport = (
        AiohttpPages(policy=policy) if kind == "aiohttp" else HttpxPages(httpx.AsyncHTTPTransport(), policy=policy)
    )

    async def go() -> TransportFailure:
        try:
            with pytest.raises(TransportFailure) as info:
                await transport.get("http://169.254.169.254/latest/meta-data/", {}, 20.0)
            return info.value
        finally:
            await transport.aclose()

    failure = asyncio.run(go())
    assert failure.kind == "blocked" and "cloud metadata" in str(failure)
    assert connections == []


def test_allowed_networks_is_checked_by_config_check(write_config, pricemon_cli) -> None:
    bad = pricemon_cli(write_config('[scrape]\nallowed_networks = ["10.0.0.0/33"]\n'))("config", "check", expect=None)
    assert bad.exit_code != 0 and "scrape.allowed_networks" in bad.stderr and "Traceback" not in bad.stderr
    meta = pricemon_cli(write_config('[scrape]\nallowed_networks = ["169.254.0.0/16"]\n'))(
        "config", "check", expect=None
    )
    assert meta.exit_code != 0 and "never contacts" in meta.stderr
    pricemon_cli(write_config('[scrape]\nallowed_networks = ["10.20.0.0/16", "fd12::/16"]\n'))("config", "check")
