"""The two page transports against a real HTTP server on 127.0.0.1: aiohttp (the default) and any
httpx transport (proxies). The fetcher must see the same pages, statuses and failures through both."""

from __future__ import annotations

import asyncio
import gzip
import socket

import httpx
import pytest

from monitor.scrape.fetch import Fetcher, Page
from monitor.scrape.transport import AiohttpPages, HttpxPages, PageTransport
from monitor.settings import Competitor, ScrapeSettings
from tests.scrape.conftest import Reply, Shop, jsonld_page

TRANSPORTS = {
    "aiohttp": lambda: AiohttpPages(max_connections=8),
    "httpx": lambda: HttpxPages(httpx.AsyncHTTPTransport()),
}


def fetch_all(shop: Shop, kind: str, *requests: tuple[str, dict[str, str]], **scrape: object) -> list[Page]:
    """Fetch `(url or path, validators)` in order through one fetcher on transport `kind`."""
    competitor = Competitor(name="acme", base_url=shop.base, min_delay="0s", respect_robots_txt=False)
    settings = ScrapeSettings(retries=0, **scrape)  # type: ignore[arg-type]
    transport: PageTransport = TRANSPORTS[kind]()

    async def run() -> list[Page]:
        async with Fetcher(competitor, settings, transport=transport) as fetcher:
            return [
                await fetcher.fetch(target if "://" in target else shop.url(target), **validators)
                for target, validators in requests
            ]

    return asyncio.run(run())


@pytest.fixture(params=sorted(TRANSPORTS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_page_then_not_modified_with_its_etag(shop: Shop, kind: str) -> None:
    shop.pages["/p/1"] = jsonld_page("19.99")
    (first,) = fetch_all(shop, kind, ("/p/1", {}))
    assert first.outcome == "ok" and first.status_code == 200
    assert b'"price": "19.99"' in first.body and first.encoding == "utf-8"
    (second,) = fetch_all(shop, kind, ("/p/1", {"etag": first.etag or ""}))
    assert first.etag and second.outcome == "not_modified" and second.etag == first.etag
    assert all(ua.startswith("pricemon/") for ua in shop.user_agents)


def test_gzip_bodies_are_decoded_and_capped_after_decoding(shop: Shop, kind: str) -> None:
    page = jsonld_page("7.50")
    shop.pages["/zipped"] = Reply(200, gzip.compress(page.encode()), {"Content-Encoding": "gzip"})
    # 200 KB of HTML that compresses to a few hundred bytes: only the decoded size tells.
    bomb = gzip.compress(b"<p>" + b"x" * 200_000 + b"</p>")
    shop.pages["/bomb"] = Reply(200, bomb, {"Content-Encoding": "gzip"})
    shop.pages["/broken"] = Reply(200, b"\x1f\x8b\x08\x00garbage-not-gzip" * 20, {"Content-Encoding": "gzip"})
    zipped, capped, broken = fetch_all(
        shop, kind, ("/zipped", {}), ("/bomb", {}), ("/broken", {}), max_body_bytes=100_000
    )
    assert zipped.outcome == "ok" and zipped.body == page.encode()
    assert len(bomb) < 100_000 and capped.outcome == "invalid_content"
    assert capped.error == "body exceeds 100000 bytes"
    assert broken.outcome == "invalid_content" and "undecodable" in (broken.error or "")


def test_statuses_redirects_and_types(shop: Shop, kind: str) -> None:
    shop.pages.update(
        {
            "/moved": Reply(301, "", {"Location": "/p/1"}),
            "/p/1": jsonld_page("1.00"),
            "/gone": Reply(410, "gone"),
            "/busy": Reply(429, "slow down", {"Retry-After": "7"}),
            "/image": Reply(200, b"\x89PNG", {"Content-Type": "image/png"}),
            "/big": Reply(200, "x" * 5000),
        }
    )
    # the 429 last: its Retry-After spaces out whatever this competitor asks next
    moved, gone, image, big, busy = fetch_all(
        shop, kind, ("/moved", {}), ("/gone", {}), ("/image", {}), ("/big", {}), ("/busy", {}), max_body_bytes=4096
    )
    assert moved.outcome == "ok" and moved.url == shop.url("/p/1")
    assert gone.outcome == "gone" and gone.status_code == 410
    assert busy.outcome == "http_error" and busy.retryable and busy.retry_after == 7
    assert image.outcome == "invalid_content" and "image/png" in (image.error or "")
    assert big.outcome == "invalid_content" and big.error == "body of 5000 bytes exceeds 4096 bytes"


def test_refused_connections_and_slow_answers_are_retryable_failures(shop: Shop, kind: str) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    shop.pages["/slow"] = Reply(200, jsonld_page("2.00"), delay=3)
    slow, refused = fetch_all(shop, kind, ("/slow", {}), (f"http://127.0.0.1:{closed_port}/p", {}), timeout="1s")
    assert slow.outcome == "timeout" and slow.retryable and "within 1s" in (slow.error or "")
    assert refused.outcome == "http_error" and refused.retryable
    assert "connection failed" in (refused.error or "")


def test_a_competitor_behind_a_proxy_is_fetched_through_it(shop: Shop) -> None:
    # The shop's host name does not resolve: only the proxy (the test server) can answer for it.
    shop.pages["/p/1"] = jsonld_page("3.30")
    competitor = Competitor(name="acme", base_url="http://shop.invalid/", proxy=shop.base, min_delay="0s")

    async def run() -> Page:
        async with Fetcher(competitor, ScrapeSettings(retries=0)) as fetcher:
            assert isinstance(fetcher.transport, HttpxPages)
            return await fetcher.fetch("http://shop.invalid/p/1")

    page = asyncio.run(run())
    assert page.outcome == "ok" and b'"price": "3.30"' in page.body
    assert shop.proxied == ["http://shop.invalid/robots.txt", "http://shop.invalid/p/1"]
