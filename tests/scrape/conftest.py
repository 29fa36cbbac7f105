"""A real competitor web for the scraping tests: HTTP servers on 127.0.0.1 with ephemeral ports,
serving product pages in several styles and the misbehaviours a scraper meets."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

ROBOTS = "User-agent: *\nDisallow: /private/\n"


def jsonld_page(price: str, currency: str = "EUR", *, gtin: str | None = None, stock: str = "InStock") -> str:
    product: dict[str, object] = {
        "@context": "https://schema.org",
        "@type": "Product",
        "name": "Kettle",
        "offers": {
            "@type": "Offer",
            "price": price,
            "priceCurrency": currency,
            "availability": f"https://schema.org/{stock}",
        },
    }
    if gtin:
        product["gtin13"] = gtin
    return (
        "<!doctype html><html><head><title>Kettle</title>"
        f'<script type="application/ld+json">{json.dumps(product)}</script></head>'
        "<body><h1>Kettle</h1></body></html>"
    )


def microdata_page(price: str, currency: str = "EUR") -> str:
    return (
        '<html><body><div itemscope itemtype="https://schema.org/Product"><h1 itemprop="name">Kettle</h1>'
        '<div itemprop="offers" itemscope itemtype="https://schema.org/Offer">'
        f'<span itemprop="price" content="{price}">{price}</span>'
        f'<meta itemprop="priceCurrency" content="{currency}">'
        '<link itemprop="availability" href="https://schema.org/InStock"></div></div></body></html>'
    )


def plain_page(price_text: str) -> str:
    return (
        '<html><body><div class="product-price"><del>99,00 €</del> '
        f'<span class="now">{price_text}</span></div><p>In stock</p>'
        '<div class="related">Other kettle 12,00 €</div></body></html>'
    )


@dataclass
class Reply:
    status: int = 200
    body: bytes | str = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before the body is sent (slow answers)


Route = Callable[[BaseHTTPRequestHandler], Reply]


class Shop:
    """One HTTP server. `pages[path]` is a Reply or a callable(handler) -> Reply; pages that are a
    plain str get an ETag and answer If-None-Match with 304. It also answers as a forward proxy:
    a request for an absolute URL (`GET http://any.host/path`) is served from `pages[path]` and
    counted in `proxied`."""

    def __init__(self) -> None:
        self.pages: dict[str, Reply | str | Route] = {
            "/robots.txt": Reply(body=ROBOTS, headers={"Content-Type": "text/plain"})
        }
        self.hits: Counter[str] = Counter()
        self.user_agents: list[str] = []
        self.proxied: list[str] = []
        self.lock = threading.Lock()
        shop = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path.startswith(("http://", "https://")):
                    with shop.lock:
                        shop.proxied.append(path)
                    path = "/" + path.split("://", 1)[1].partition("/")[2]
                with shop.lock:
                    shop.hits[path] += 1
                    shop.user_agents.append(self.headers.get("User-Agent", ""))
                page = shop.pages.get(path)
                if page is None:
                    reply = Reply(404, "not here")
                elif isinstance(page, str):
                    etag = '"' + hashlib.sha1(page.encode()).hexdigest()[:16] + '"'
                    if self.headers.get("If-None-Match") == etag:
                        reply = Reply(304, b"", {"ETag": etag})
                    else:
                        reply = Reply(200, page, {"ETag": etag})
                elif isinstance(page, Reply):
                    reply = page
                else:
                    reply = page(self)
                body = reply.body.encode() if isinstance(reply.body, str) else reply.body
                headers = {"Content-Type": "text/html; charset=utf-8", **reply.headers}
                try:
                    self.send_response(reply.status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    if reply.status != 304:
                        self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if reply.delay:
                        time.sleep(reply.delay)
                    if reply.status != 304:
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return self.base + path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def fail_first(times: int, reply: Reply, then: Reply | str) -> Route:
    """A page that answers `reply` the first `times` requests, then `then`."""
    seen = {"n": 0}

    def route(_handler: BaseHTTPRequestHandler) -> Reply:
        seen["n"] += 1
        if seen["n"] <= times:
            return reply
        return then if isinstance(then, Reply) else Reply(200, then)

    return route


@pytest.fixture
def shop() -> Iterator[Shop]:
    server = Shop()
    yield server
    server.close()


@pytest.fixture
def other_shop() -> Iterator[Shop]:
    server = Shop()
    yield server
    server.close()
