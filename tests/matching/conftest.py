"""A real shop on 127.0.0.1 for discovery and matching: robots.txt, sitemaps (an index, a plain
one and a gzipped one), product pages with JSON-LD or microdata, and paginated category pages."""

from __future__ import annotations

import gzip
import html
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Pricemon
from tests.scrape.conftest import Reply, Shop


@dataclass(frozen=True)
class Item:
    slug: str
    name: str
    brand: str
    price: str
    gtin: str | None = None
    mpn: str | None = None
    microdata: bool = False


# Ours (products.csv) and what the shop sells; the shop's titles differ from ours.
ITEMS = [
    Item("sony-xm4-black", "Sony WH-1000XM4 Wireless Noise Cancelling Headphones, Black", "Sony", "279.00",
         gtin="4548736112100", mpn="WH1000XM4/B"),
    Item("sony-xm4-silver", "Sony WH-1000XM4 Wireless Noise Cancelling Headphones, Silver", "Sony", "279.00",
         gtin="4548736112117", mpn="WH1000XM4/S"),
    Item("bosch-drill", "Bosch Professional GSR 18V-55 cordless drill", "Bosch", "149.00", mpn="06019H5200",
         microdata=True),
    Item("ssd-1tb", "Samsung 980 PRO 1TB NVMe SSD", "Samsung", "99.90"),
    Item("ssd-2tb", "Samsung 980 PRO 2TB NVMe SSD", "Samsung", "169.90"),
]  # fmt: skip

PRODUCTS_CSV = """sku,name,price,currency,gtin,mpn,brand
XM4-B,Sony WH-1000XM4 Headphones Black,289.00,EUR,4548736112100,WH-1000XM4/B,Sony
XM4-S,Sony WH-1000XM4 Headphones Silver,289.00,EUR,04548736112117,WH-1000XM4/S,Sony
DRILL,Bosch GSR 18V-55 Professional Cordless Drill,155.00,EUR,,06019H5200,Bosch
SSD-1,Samsung SSD 980 PRO 1 TB NVMe M.2,105.00,EUR,,,Samsung
"""


def product_page(item: Item, related: Item | None = None) -> str:
    if item.microdata:
        return f"""<!doctype html><html><head><title>{html.escape(item.name)}</title></head><body>
<main><div itemscope itemtype="https://schema.org/Product">
<h1 itemprop="name">{html.escape(item.name)}</h1>
<div itemprop="brand" itemscope itemtype="https://schema.org/Brand"><span itemprop="name">{item.brand}</span></div>
<meta itemprop="mpn" content="{item.mpn}"><meta itemprop="sku" content="shop-{item.slug}">
<img itemprop="image" src="/img/{item.slug}.jpg">
<div itemprop="offers" itemscope itemtype="https://schema.org/Offer">
<span itemprop="price" content="{item.price}">{item.price} EUR</span><meta itemprop="priceCurrency" content="EUR">
</div></div></main></body></html>"""
    data: dict[str, object] = {
        "@context": "https://schema.org",
        "@type": "Product",
        "name": item.name,
        "brand": {"@type": "Brand", "name": item.brand},
        "sku": f"shop-{item.slug}",
        "image": [f"/img/{item.slug}.jpg"],
        "offers": {"@type": "Offer", "price": item.price, "priceCurrency": "EUR", "availability": "InStock"},
    }
    if item.gtin:
        data["gtin13"] = item.gtin
    if item.mpn:
        data["mpn"] = item.mpn
    aside = ""
    if related is not None:  # a "related products" block must not be read as the page's product
        rel = json.dumps(
            {"@context": "https://schema.org", "@type": "Product", "name": related.name, "gtin13": related.gtin}
        )
        aside = f'<aside class="related"><script type="application/ld+json">{rel}</script></aside>'
    return f"""<!doctype html><html><head><title>{html.escape(item.name)}</title>
<script type="application/ld+json">{json.dumps(data)}</script></head>
<body><main><h1>{html.escape(item.name)}</h1><p class="price">{item.price} EUR</p></main>{aside}</body></html>"""


def urlset(urls: list[str]) -> str:
    entries = "".join(f"<url><loc>{u}</loc></url>" for u in urls)
    return f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</urlset>'


def build_shop(shop: Shop, *, sitemaps: bool = True) -> None:
    """Products at /p/<slug>; a secret product under /private/ (robots.txt disallows it)."""
    for index, item in enumerate(ITEMS):
        related = ITEMS[(index + 1) % len(ITEMS)]
        shop.pages[f"/p/{item.slug}"] = product_page(item, related)
    shop.pages["/private/p/secret"] = product_page(Item("secret", "Secret Sony WH-1000XM4", "Sony", "1.00"))
    robots = "User-agent: *\nDisallow: /private/\n"
    if sitemaps:
        robots += f"Sitemap: {shop.url('/sitemap_index.xml')}\n"
        shop.pages["/sitemap_index.xml"] = Reply(
            body=(
                '<?xml version="1.0" encoding="UTF-8"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
                f"<sitemap><loc>{shop.url('/sitemap-1.xml')}</loc></sitemap>"
                "<sitemap><loc>/sitemap-2.xml.gz</loc></sitemap></sitemapindex>"
            ),
            headers={"Content-Type": "application/xml"},
        )
        first = [shop.url(f"/p/{i.slug}") for i in ITEMS[:3]] + [
            shop.url("/private/p/secret"),
            "http://elsewhere.test/p/x",
        ]
        shop.pages["/sitemap-1.xml"] = Reply(body=urlset(first), headers={"Content-Type": "application/xml"})
        second = [shop.url(f"/p/{i.slug}") for i in ITEMS[3:]]
        shop.pages["/sitemap-2.xml.gz"] = Reply(
            body=gzip.compress(urlset(second).encode()), headers={"Content-Type": "application/gzip"}
        )
    shop.pages["/robots.txt"] = Reply(body=robots, headers={"Content-Type": "text/plain"})
    # Category pages, two per page, paginated with rel=next; links to the cart and a disallowed page too.
    pages = [ITEMS[i : i + 2] for i in range(0, len(ITEMS), 2)]
    for number, chunk in enumerate(pages, start=1):
        links = "".join(f'<li><a href="/p/{i.slug}">{html.escape(i.name)}</a></li>' for i in chunk)
        nav = f'<a rel="next" href="/c/audio/{number + 1}">next</a>' if number < len(pages) else ""
        body = (
            f"<html><body><h1>Audio, page {number}</h1><ul class='products'>{links}</ul>"
            f"<a href='/private/p/secret'>secret</a><a href='/cart' rel='nofollow'>cart</a>"
            f"<nav>{nav}</nav></body></html>"
        )
        shop.pages[f"/c/audio/{number}"] = body
    shop.pages["/"] = "<html><body><a href='/c/audio/1'>Audio</a></body></html>"


@pytest.fixture
def matching_shop() -> Iterator[Shop]:
    server = Shop()
    build_shop(server)
    yield server
    server.close()


@pytest.fixture
def setup(tmp_path: Path, matching_shop: Shop):
    """A config with the shop as competitor `acme`, our products imported: (pricemon, shop, tmp_path)."""
    config = tmp_path / "pricemon.toml"
    config.write_text(
        f"""
database_url = "sqlite:///{tmp_path / "pricemon.db"}"
[scrape]
retries = 0
[[competitors]]
name = "acme"
base_url = "{matching_shop.base}"
min_delay = "0s"
max_concurrency = 4
""",
        encoding="utf-8",
    )
    (tmp_path / "products.csv").write_text(PRODUCTS_CSV, encoding="utf-8")
    pricemon = Pricemon(config=config)
    pricemon("import", "products", str(tmp_path / "products.csv"))
    return pricemon, matching_shop, tmp_path
