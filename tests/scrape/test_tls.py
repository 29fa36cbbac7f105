"""HTTPS against a real TLS server on 127.0.0.1 whose certificate a CA made by the test signed:
untrusted, the check fails with outcome tls_error and says why; trusted through `scrape.ca_bundle`,
the page is read, on both transports and through the CLI."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from bench.local_ca import LocalCA
from monitor.errors import ConfigError
from monitor.scrape.fetch import Fetcher, Page
from monitor.scrape.transport import HttpxPages, PageTransport, ssl_context
from monitor.settings import Competitor, ScrapeSettings, load_settings
from tests.scrape.conftest import jsonld_page


class TLSShop:
    def __init__(self, ca: LocalCA) -> None:
        served = ca.issue("shop", hosts=["127.0.0.1", "localhost"])
        page = jsonld_page("42.50").encode()
        self.hits = 0
        shop = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                shop.hits += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, format: str, *args: object) -> None:
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(served.cert_path, served.key_path)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.base = f"https://127.0.0.1:{self.port}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def ca(tmp_path: Path) -> LocalCA:
    return LocalCA(tmp_path / "ca")


@pytest.fixture
def tls_shop(ca: LocalCA) -> Iterator[TLSShop]:
    shop = TLSShop(ca)
    yield shop
    shop.close()


def fetch(shop: TLSShop, ca_bundle: Path | None, kind: str) -> Page:
    competitor = Competitor(name="acme", base_url=shop.base, min_delay="0s", respect_robots_txt=False)  # type: ignore[arg-type]
    settings = ScrapeSettings(retries=2, backoff_base="0s", ca_bundle=ca_bundle)  # type: ignore[arg-type]
    transport: PageTransport | None = None  # aiohttp: the transport the Fetcher builds from the settings
    if kind == "httpx":  # what a proxied competitor gets, built the same way
        bundle = str(ca_bundle) if ca_bundle else None
        transport = HttpxPages(httpx.AsyncHTTPTransport(verify=ssl_context(bundle)))

    async def run() -> Page:
        async with Fetcher(competitor, settings, transport=transport) as fetcher:
            return await fetcher.fetch(f"{shop.base}p/1")

    return asyncio.run(run())


@pytest.mark.parametrize("kind", ["aiohttp", "httpx"])
def test_a_private_ca_is_refused_until_scrape_ca_bundle_names_it(tls_shop: TLSShop, ca: LocalCA, kind: str) -> None:
    refused = fetch(tls_shop, None, kind)
    assert refused.outcome == "tls_error", refused
    assert f"TLS handshake failed with 127.0.0.1:{tls_shop.port}" in (refused.error or "")
    assert "certificate" in (refused.error or "") and "scrape.ca_bundle" in (refused.error or "")
    assert not refused.retryable
    assert tls_shop.hits == 0  # nothing was sent over a connection that was not trusted

    trusted = fetch(tls_shop, ca.cert_path, kind)
    assert trusted.outcome == "ok", trusted
    assert b'"price": "42.50"' in trusted.body
    assert tls_shop.hits == 1


def test_another_ca_in_the_bundle_does_not_make_the_shop_trusted(tls_shop: TLSShop, tmp_path: Path) -> None:
    other = LocalCA(tmp_path / "other", name="someone else's CA")
    page = fetch(tls_shop, other.cert_path, "aiohttp")
    assert page.outcome == "tls_error" and tls_shop.hits == 0


def test_a_sweep_through_the_cli_trusts_the_bundle(
    tls_shop: TLSShop, ca: LocalCA, write_config, pricemon_cli, tmp_path
) -> None:
    products = tmp_path / "products.csv"
    products.write_text("sku,name,price,currency\nK-1,Kettle,40.00,EUR\n", encoding="utf-8")
    listings = tmp_path / "listings.csv"
    listings.write_text(f"sku,competitor,url\nK-1,acme,{tls_shop.base}p/1\n", encoding="utf-8")

    def sweep(bundle_line: str) -> dict:
        config = write_config(
            f'database_url = "sqlite:///{tmp_path / "db.sqlite"}"\n[scrape]\nretries = 0\n{bundle_line}\n'
            f'[[competitors]]\nname = "acme"\nbase_url = "{tls_shop.base}"\nmin_delay = "0s"\n'
            "respect_robots_txt = false\n"
        )
        cli = pricemon_cli(config)
        cli("db", "upgrade")
        cli("import", "products", str(products))
        cli("import", "listings", str(listings))
        cli("scrape", "--json")
        return {row["sku"]: row for row in json.loads(cli("listings", "--json").stdout)}

    untrusted = sweep("")
    assert untrusted["K-1"]["last_outcome"] == "tls_error", untrusted
    trusted = sweep(f'ca_bundle = "{ca.cert_path}"')
    assert trusted["K-1"]["last_outcome"] == "changed", trusted


@pytest.mark.parametrize(
    ("content", "expected"),
    [(None, "no such file"), (b"not a certificate\n", "holds no PEM certificate")],
)
def test_a_bad_ca_bundle_is_a_config_error_naming_the_key(write_config, tmp_path: Path, content, expected) -> None:
    bundle = tmp_path / "extra-ca.pem"
    if content is not None:
        bundle.write_bytes(content)
    config = write_config(f'[scrape]\nca_bundle = "{bundle}"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(config, environ={})
    assert "scrape.ca_bundle" in str(info.value) and expected in str(info.value) and str(bundle) in str(info.value)
