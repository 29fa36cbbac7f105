"""The bundled demo web: a few competitor shops on 127.0.0.1, each in its own page style.

Each shop is a small threaded HTTP server on an ephemeral port. Prices live in memory so the
demo can move them between two sweeps. The styles cover what real shops do: JSON-LD (with
ETags, so the second sweep can get 304s), microdata, plain HTML read with CSS selectors,
a European price format, an item out of stock, and a shop that fails.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Item:
    sku: str
    name: str
    gtin: str | None
    price: Decimal
    in_stock: bool = True


@dataclass(slots=True)
class Shop:
    """One competitor: its page style, the config it needs, and what it sells."""

    name: str
    style: str  # "jsonld" | "microdata" | "plain" | "european" | "broken"
    #: the [competitors.selectors] this shop needs (empty: structured data is enough)
    selectors: dict[str, str] = field(default_factory=dict)
    items: dict[str, Item] = field(default_factory=dict)
    server: ThreadingHTTPServer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        if self.server is None:
            raise RuntimeError(f"demo shop {self.name} is not running")
        port = self.server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def url(self, sku: str) -> str:
        return f"{self.base_url}/product/{sku}"

    def set_price(self, sku: str, price: Decimal | str, *, in_stock: bool | None = None) -> None:
        with self.lock:
            item = self.items[sku]
            item.price = Decimal(price)
            if in_stock is not None:
                item.in_stock = in_stock

    def page(self, sku: str) -> tuple[int, str]:
        """(status, body) of one product page."""
        with self.lock:
            item = self.items.get(sku)
            if item is None:
                return 404, "<html><body><h1>Not found</h1></body></html>"
            return render_page(self.style, item)


def _euro(amount: Decimal) -> str:
    """1299.99 -> '1.299,99' (German format)."""
    whole, _, cents = f"{amount:,.2f}".partition(".")
    return f"{whole.replace(',', '.')},{cents}"


def render_page(style: str, item: Item) -> tuple[int, str]:
    name = html.escape(item.name)
    price = f"{item.price:.2f}"
    availability = "https://schema.org/InStock" if item.in_stock else "https://schema.org/OutOfStock"
    if style == "jsonld":
        data: dict[str, Any] = {
            "@context": "https://schema.org",
            "@type": "Product",
            "name": item.name,
            "sku": item.sku,
            "offers": {"@type": "Offer", "price": price, "priceCurrency": "EUR", "availability": availability},
        }
        if item.gtin:
            data["gtin13"] = item.gtin
        ld = json.dumps(data).replace("<", "\\u003c")
        return 200, (
            f"<!DOCTYPE html><html><head><title>{name} | JSON Mart</title>"
            f'<script type="application/ld+json">{ld}</script></head>'
            f"<body><h1>{name}</h1><p>Free delivery over 50 EUR. Was 999.00, now even better.</p></body></html>"
        )
    if style == "microdata":
        return 200, (
            f"<!DOCTYPE html><html><head><title>{name} - Micro Store</title></head><body>"
            f'<div itemscope itemtype="https://schema.org/Product"><h1 itemprop="name">{name}</h1>'
            f'<div itemprop="offers" itemscope itemtype="https://schema.org/Offer">'
            f'<span itemprop="price" content="{price}">{price} EUR</span>'
            f'<meta itemprop="priceCurrency" content="EUR"><link itemprop="availability" href="{availability}">'
            f"</div></div></body></html>"
        )
    if style == "plain":
        stock = '<p class="stock in">In stock</p>' if item.in_stock else '<p class="stock out">Sold out</p>'
        return 200, (
            f"<!DOCTYPE html><html><head><title>{name}</title></head><body><h1>{name}</h1>"
            f'<div class="box"><span class="was">RRP € {item.price * 2:.2f}</span>'
            f'<span class="amount">€ {price}</span></div>{stock}'
            f'<aside class="related"><span class="amount-other">€ 1.00</span></aside></body></html>'
        )
    if style == "european":
        stock = "<p>Sofort lieferbar</p>" if item.in_stock else "<p>Leider ausverkauft</p>"
        return 200, (
            f'<!DOCTYPE html><html lang="de"><head><title>{name} kaufen</title></head><body><h1>{name}</h1>'
            f'<div class="preis">{_euro(item.price)} €</div>{stock}</body></html>'
        )
    if style == "broken":
        # Half the pages are server errors, the other half lost their price in a redesign.
        if int(hashlib.sha1(item.sku.encode()).hexdigest(), 16) % 2:
            return 500, "<html><body>Internal Server Error</body></html>"
        return 200, f"<html><body><h1>{name}</h1><p>Call us for a quote.</p></body></html>"
    raise ValueError(f"unknown shop style {style!r}")


class _Handler(BaseHTTPRequestHandler):
    shop: Shop  # set on the per-shop subclass
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/robots.txt":
            self._send(200, "User-agent: *\nAllow: /\n", "text/plain")
            return
        if path.startswith("/product/"):
            status, body = self.shop.page(path.removeprefix("/product/"))
            self._send(status, body, "text/html; charset=utf-8", etag=self.shop.style == "jsonld")
            return
        self._send(404, "not found", "text/plain")

    def _send(self, status: int, body: str, content_type: str, *, etag: bool = False) -> None:
        data = body.encode("utf-8")
        tag = f'"{hashlib.sha1(data).hexdigest()[:16]}"' if etag and status == 200 else None
        if tag is not None and self.headers.get("If-None-Match") == tag:
            self.send_response(304)
            self.send_header("ETag", tag)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if tag is not None:
            self.send_header("ETag", tag)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("demo shop %s: " + format, self.shop.name, *args)


class DemoWeb:
    """Start the shops on 127.0.0.1 (ephemeral ports) and stop them; usable as a context manager."""

    def __init__(self, shops: list[Shop]) -> None:
        self.shops = {shop.name: shop for shop in shops}
        self._threads: list[threading.Thread] = []

    def start(self) -> DemoWeb:
        for shop in self.shops.values():
            handler = type(f"Handler_{shop.style}", (_Handler,), {"shop": shop})
            shop.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
            shop.server.daemon_threads = True
            thread = threading.Thread(target=shop.server.serve_forever, name=f"demo-{shop.name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for shop in self.shops.values():
            if shop.server is not None:
                shop.server.shutdown()
                shop.server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> DemoWeb:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
