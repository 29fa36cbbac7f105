"""The synthetic competitor web: S shops x P product pages, their truth file and pricemon's input files.

Everything is deterministic from (shops, products, seed), so a generated web is cached on disk in a
directory named after those three numbers and reused by every later run. The pages imitate what real
shops ship: navigation, description, reviews, and related products whose prices are decoys that are
never marked up as the page's product.
"""

from __future__ import annotations

import csv
import html
import json
import logging
import os
import random
import shutil
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

logger = logging.getLogger(__name__)

# Bump when page markup or truth semantics change, so stale caches are not reused.
GENERATOR_VERSION = 1

DEFAULT_SHOPS = 72
DEFAULT_PRODUCTS = 2400
DEFAULT_SEED = 20240611
DEFAULT_CACHE_ROOT = Path(__file__).resolve().parent / ".cache"

# How a shop marks up its product price; mixed across shops from the seed.
STYLES = ("jsonld", "jsonld_graph", "microdata", "opengraph", "plain", "plain_eu")
# Shops whose pages carry no machine-readable price need configured selectors.
SELECTOR_STYLES = frozenset({"plain", "plain_eu"})
CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}
OUT_OF_STOCK_RATE = 0.10
OWN_CURRENCY = "EUR"
CENT = Decimal("0.01")

ROBOTS_TXT = "User-agent: *\nDisallow: /checkout/\n"

_WORDS = (
    "steel aluminium compact quiet cordless ergonomic premium durable lightweight waterproof smart "
    "adjustable portable classic modern wireless rechargeable professional heavy-duty foldable "
    "stainless digital ceramic bamboo organic thermal magnetic modular reinforced vintage"
).split()
_NOUNS = (
    "kettle drill lamp backpack blender headphones chair toaster speaker monitor keyboard jacket "
    "tent grinder scale router camera thermos mixer vacuum heater fan projector charger"
).split()
_LOREM = (
    "this product is designed for everyday use and built to last with carefully selected materials "
    "every unit is tested before it leaves our warehouse and ships with a full warranty our customers "
    "appreciate the balance between performance and price the finish resists scratches and stains "
    "cleaning is simple and the compact size fits any home or office we recommend reading the manual "
    "before first use to get the most out of every feature included in the box you will find"
).split()
_CATEGORIES = (
    "Kitchen Garden Tools Audio Computing Outdoor Lighting Furniture Sports Travel Office Baby Pets "
    "Beauty Health Automotive Gaming Photo Storage Cleaning Heating Cooling Toys Books"
).split()


@dataclass(frozen=True)
class Shop:
    """One synthetic competitor: its name, markup style, currency and extraction rules."""

    name: str
    style: str
    currency: str
    old_price_shown: bool
    numeric_jsonld_price: bool

    @property
    def selectors(self) -> dict[str, str]:
        """The `[competitors.selectors]` pricemon needs for this shop (empty for structured markup)."""
        if self.style not in SELECTOR_STYLES:
            return {}
        # extract() leaves stock unknown unless a rule matches, so plain shops need both phrases.
        selectors = {
            "price": ".product-price .now",
            "currency": self.currency,
            "in_stock": "text:In stock",
            "out_of_stock": "text:Sold out",
        }
        if self.style == "plain_eu":
            selectors["decimal_separator"] = ","
        return selectors


@dataclass(frozen=True)
class Product:
    """One product of our own catalogue, listed by every shop."""

    sku: str
    name: str
    price: Decimal
    cost: Decimal
    gtin: str


@dataclass(frozen=True)
class TruthRow:
    """What a product page really says: the answer accuracy is checked against."""

    competitor: str
    sku: str
    path: str
    price: Decimal
    currency: str
    in_stock: bool


@dataclass(frozen=True)
class SyntheticWeb:
    """A generated web on disk: `shops/<name>/` document roots plus truth and catalogue files."""

    root: Path
    shops: tuple[Shop, ...]
    products: tuple[Product, ...]
    seed: int

    @property
    def page_count(self) -> int:
        return len(self.shops) * len(self.products)

    @property
    def truth_path(self) -> Path:
        return self.root / "truth.csv"

    def shop_root(self, shop: str) -> Path:
        return self.root / "shops" / shop

    def read_truth(self) -> dict[tuple[str, str], TruthRow]:
        """Truth keyed by (competitor, sku)."""
        with self.truth_path.open(newline="", encoding="utf-8") as fh:
            return {
                (row["competitor"], row["sku"]): TruthRow(
                    competitor=row["competitor"],
                    sku=row["sku"],
                    path=row["path"],
                    price=Decimal(row["price"]),
                    currency=row["currency"],
                    in_stock=row["in_stock"] == "true",
                )
                for row in csv.DictReader(fh)
            }


@dataclass(frozen=True)
class RunInputs:
    """pricemon's input files for one served web (URLs depend on the ports the server got)."""

    products_csv: Path
    listings_csv: Path
    config_path: Path


def product_path(sku: str) -> str:
    return f"/products/{sku.lower()}.html"


def plan_shops(shops: int, seed: int) -> tuple[Shop, ...]:
    """Assign every shop a style and currency: every style is used, in a seed-dependent order."""
    rng = random.Random(f"{seed}:shops")
    styles = list(STYLES)
    rng.shuffle(styles)
    planned = []
    width = max(2, len(str(shops)))
    for index in range(shops):
        style = styles[index % len(styles)]
        currency = "EUR" if style == "plain_eu" else rng.choice(("USD", "EUR", "GBP"))
        planned.append(
            Shop(
                name=f"shop-{index + 1:0{width}d}",
                style=style,
                currency=currency,
                old_price_shown=rng.random() < 0.5,
                numeric_jsonld_price=rng.random() < 0.5,
            )
        )
    return tuple(planned)


def plan_products(products: int, seed: int) -> tuple[Product, ...]:
    planned = []
    for index in range(products):
        rng = random.Random(f"{seed}:product:{index}")
        # Log-uniform so both cheap accessories and four-digit prices (thousands separators) occur.
        raw = Decimal(str(round(10 ** rng.uniform(0.7, 3.4), 0)))
        price = raw - Decimal("0.01") if raw > 1 else raw
        name = f"{rng.choice(_WORDS).title()} {rng.choice(_WORDS).title()} {rng.choice(_NOUNS).title()}"
        planned.append(
            Product(
                sku=f"SKU-{index + 1:06d}",
                name=f"{name} {index + 1}",
                price=price,
                cost=(price * Decimal("0.62")).quantize(CENT, ROUND_HALF_UP),
                gtin=f"400{rng.randrange(10**9, 10**10):010d}",
            )
        )
    return tuple(planned)


def web_directory(shops: int, products: int, seed: int, cache_root: Path = DEFAULT_CACHE_ROOT) -> Path:
    return cache_root / f"web-s{shops}-p{products}-seed{seed}-v{GENERATOR_VERSION}"


def generate_web(
    shops: int = DEFAULT_SHOPS,
    products: int = DEFAULT_PRODUCTS,
    seed: int = DEFAULT_SEED,
    *,
    cache_root: Path = DEFAULT_CACHE_ROOT,
    workers: int | None = None,
) -> SyntheticWeb:
    """Generate the web, or reuse the cached one for the same (shops, products, seed)."""
    if shops < 1 or products < 1:
        raise ValueError(f"need at least one shop and one product, got shops={shops} products={products}")
    planned_shops = plan_shops(shops, seed)
    planned_products = plan_products(products, seed)
    final = web_directory(shops, products, seed, cache_root)
    web = SyntheticWeb(root=final, shops=planned_shops, products=planned_products, seed=seed)
    if (final / "manifest.json").is_file():
        logger.info("reusing cached synthetic web %s", final)
        return web

    # Build beside the final directory and rename at the end, so an interrupted run never leaves a
    # half-written web that a later run would mistake for a complete cache.
    building = final.with_name(f"{final.name}.building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    (building / "shops").mkdir(parents=True)
    workers = workers or min(4, os.cpu_count() or 1)
    truth: list[TruthRow] = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(_write_shop, building / "shops" / shop.name, shop, planned_products, seed)
            for shop in planned_shops
        ]
        for future in futures:
            truth.extend(future.result())

    with (building / "truth.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["competitor", "sku", "path", "price", "currency", "in_stock"])
        for row in truth:
            writer.writerow(
                [row.competitor, row.sku, row.path, str(row.price), row.currency, str(row.in_stock).lower()]
            )
    manifest = {
        "generator_version": GENERATOR_VERSION,
        "shops": shops,
        "products": products,
        "seed": seed,
        "pages": shops * products,
        "styles": {shop.name: shop.style for shop in planned_shops},
    }
    (building / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    if final.exists():
        # Another process finished the same web first; theirs is identical.
        shutil.rmtree(building, ignore_errors=True)
    else:
        building.rename(final)
    return web


def write_run_inputs(
    web: SyntheticWeb,
    base_urls: Mapping[str, str],
    out_dir: Path,
    *,
    max_concurrency: int = 8,
    min_delay: str = "0s",
    database_url: str | None = None,
    scrape: Mapping[str, str | list[str]] | None = None,
) -> RunInputs:
    """Write products.csv, listings.csv and pricemon.toml pointing at the served shops (`scrape`: keys
    of its [scrape] table, e.g. the network benchmark's ca_bundle and allowed_networks)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    products_csv = out_dir / "products.csv"
    with products_csv.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["sku", "name", "price", "currency", "cost"])
        for product in web.products:
            writer.writerow([product.sku, product.name, str(product.price), OWN_CURRENCY, str(product.cost)])
    listings_csv = out_dir / "listings.csv"
    with listings_csv.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["sku", "competitor", "url"])
        for shop in web.shops:
            base = base_urls[shop.name].rstrip("/")
            for product in web.products:
                writer.writerow([product.sku, shop.name, base + product_path(product.sku)])
    lines = ["# Generated by bench/synthetic_web.py for one benchmark run; ports belong to this run only."]
    if database_url:
        lines.append(f"database_url = {_toml_string(database_url)}")
    if scrape:
        lines += ["", "[scrape]"]
        for key, value in scrape.items():
            shown = "[" + ", ".join(map(_toml_string, value)) + "]" if isinstance(value, list) else _toml_string(value)
            lines.append(f"{key} = {shown}")
    for shop in web.shops:
        lines += [
            "",
            "[[competitors]]",
            f"name = {_toml_string(shop.name)}",
            f"base_url = {_toml_string(base_urls[shop.name].rstrip('/'))}",
            'every = "15m"',
            f"max_concurrency = {max_concurrency}",
            f"min_delay = {_toml_string(min_delay)}",
        ]
        if shop.selectors:
            lines.append("[competitors.selectors]")
            lines += [f"{key} = {_toml_string(value)}" for key, value in shop.selectors.items()]
    config_path = out_dir / "pricemon.toml"
    config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return RunInputs(products_csv=products_csv, listings_csv=listings_csv, config_path=config_path)


def _toml_string(value: str) -> str:
    # JSON string escaping is a subset of TOML basic-string escaping.
    return json.dumps(value, ensure_ascii=False)


# ---------------------------------------------------------------------------------------------------
# Page rendering. Runs in worker processes; per-shop chrome and text pools are built once per shop.


def _write_shop(root: Path, shop: Shop, products: tuple[Product, ...], seed: int) -> list[TruthRow]:
    (root / "products").mkdir(parents=True)
    (root / "checkout").mkdir()
    (root / "robots.txt").write_text(ROBOTS_TXT, encoding="utf-8")
    (root / "checkout" / "index.html").write_text("<html><body>checkout</body></html>", encoding="utf-8")
    chrome = _ShopChrome(shop, seed)
    truth = []
    links = [f'<li><a href="{product_path(p.sku)}">{html.escape(p.name)}</a></li>' for p in products[:50]]
    (root / "index.html").write_text(
        chrome.head(shop.name, "") + "<main><ul>" + "".join(links) + "</ul></main>" + chrome.footer,
        encoding="utf-8",
    )
    for index, product in enumerate(products):
        rng = random.Random(f"{seed}:{shop.name}:{product.sku}")
        factor = Decimal(str(round(rng.uniform(0.82, 1.18), 3)))
        price = (product.price * factor).quantize(Decimal("1"), ROUND_HALF_UP) - Decimal(
            rng.choice(("0.01", "0.05", "0.51", "0.00"))
        )
        price = max(price, Decimal("0.99"))
        in_stock = rng.random() >= OUT_OF_STOCK_RATE
        page = chrome.render(product, price, in_stock, rng, products, index)
        path = product_path(product.sku)
        (root / path.lstrip("/")).write_text(page, encoding="utf-8")
        truth.append(TruthRow(shop.name, product.sku, path, price, shop.currency, in_stock))
    return truth


def _format_price(amount: Decimal, currency: str, european: bool) -> str:
    whole, _, cents = f"{amount:,.2f}".partition(".")
    if european:
        return f"{whole.replace(',', '.')},{cents} €"
    symbol = CURRENCY_SYMBOLS[currency]
    return f"{symbol}{whole}.{cents}"


class _ShopChrome:
    """Per-shop reusable page parts (CSS, navigation, footer, text pools) and the page template."""

    def __init__(self, shop: Shop, seed: int) -> None:
        self.shop = shop
        rng = random.Random(f"{seed}:chrome:{shop.name}")
        self.css = (
            "<style>"
            + "".join(
                f".c{i}{{margin:{rng.randrange(0, 24)}px;padding:{rng.randrange(0, 16)}px;"
                f"color:#{rng.randrange(0, 0xFFFFFF):06x};font-size:{rng.randrange(10, 22)}px}}\n"
                for i in range(60)
            )
            + "</style>"
        )
        nav = []
        for category in _CATEGORIES:
            subs = "".join(
                f'<li class="c{rng.randrange(60)}"><a href="/c/{category.lower()}/{word}">'
                f"{word.title()} {category}</a></li>"
                for word in rng.sample(_WORDS, 7)
            )
            nav.append(f'<li class="menu"><a href="/c/{category.lower()}">{category}</a><ul>{subs}</ul></li>')
        self.nav = '<nav class="main-nav"><ul>' + "".join(nav) + "</ul></nav>"
        self.footer = (
            '<footer><div class="links">'
            + "".join(f'<a href="/help/{w}">{w.title()} help</a> ' for w in _WORDS)
            + f"</div><p>&copy; 2024 {shop.name} Ltd. Prices include VAT. Free delivery over "
            + _format_price(Decimal("49.00"), shop.currency, shop.style == "plain_eu")
            + ".</p></footer></body></html>"
        )
        self.paragraphs = [
            "<p>" + " ".join(rng.choice(_LOREM) for _ in range(rng.randrange(60, 110))).capitalize() + ".</p>"
            for _ in range(120)
        ]
        self.reviews = [
            f'<div class="review"><span class="stars">{rng.randrange(1, 6)}/5</span>'
            f"<b>{rng.choice(_WORDS).title()} {rng.choice(_NOUNS)}</b><p>"
            + " ".join(rng.choice(_LOREM) for _ in range(rng.randrange(40, 90)))
            + f"</p><small>Reviewed by customer{rng.randrange(1000)} on 2024-0{rng.randrange(1, 10)}-1"
            f"{rng.randrange(10)}</small></div>"
            for _ in range(300)
        ]

    def head(self, title: str, extra_head: str) -> str:
        return (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)} | {self.shop.name}</title>"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'{extra_head}{self.css}</head><body><header><a class="logo" href="/">{self.shop.name}</a>'
            '<form action="/search"><input name="q"></form><a href="/checkout/">Basket</a></header>'
            f"{self.nav}"
        )

    def render(
        self,
        product: Product,
        price: Decimal,
        in_stock: bool,
        rng: random.Random,
        products: tuple[Product, ...],
        index: int,
    ) -> str:
        shop = self.shop
        european = shop.style == "plain_eu"
        name = html.escape(product.name)
        availability = "https://schema.org/InStock" if in_stock else "https://schema.org/OutOfStock"
        price_text = f"{price:.2f}"
        extra_head = ""
        product_attrs = ""
        price_markup = ""

        if shop.style in ("jsonld", "jsonld_graph"):
            offer_price: object = float(price_text) if shop.numeric_jsonld_price else price_text
            product_ld = {
                "@type": "Product",
                "name": product.name,
                "sku": product.sku,
                "gtin13": product.gtin,
                "image": f"/img/{product.sku}.jpg",
                "offers": {
                    "@type": "Offer",
                    "price": offer_price,
                    "priceCurrency": shop.currency,
                    "availability": availability,
                    "url": product_path(product.sku),
                },
            }
            if shop.style == "jsonld":
                document: dict[str, object] = {"@context": "https://schema.org", **product_ld}
            else:
                document = {
                    "@context": "https://schema.org",
                    "@graph": [
                        {"@type": "WebSite", "name": shop.name, "url": "/"},
                        {
                            "@type": "BreadcrumbList",
                            "itemListElement": [
                                {"@type": "ListItem", "position": 1, "name": "Home", "item": "/"},
                                {"@type": "ListItem", "position": 2, "name": product.name},
                            ],
                        },
                        product_ld,
                    ],
                }
            extra_head = f'<script type="application/ld+json">{json.dumps(document)}</script>'
        elif shop.style == "opengraph":
            extra_head = (
                f'<meta property="og:type" content="product"><meta property="og:title" content="{name}">'
                f'<meta property="product:price:amount" content="{price_text}">'
                f'<meta property="product:price:currency" content="{shop.currency}">'
                f'<meta property="product:availability" content="{"in stock" if in_stock else "out of stock"}">'
            )
        elif shop.style == "microdata":
            product_attrs = ' itemscope itemtype="https://schema.org/Product"'
            price_markup = (
                f'<div itemprop="offers" itemscope itemtype="https://schema.org/Offer">'
                f'<meta itemprop="priceCurrency" content="{shop.currency}">'
                f'<link itemprop="availability" href="{availability}">'
                f'<span itemprop="price" content="{price_text}">'
                f"{_format_price(price, shop.currency, False)}</span></div>"
            )

        shown = _format_price(price, shop.currency, european)
        old = ""
        if shop.old_price_shown and rng.random() < 0.6:
            was = (price * Decimal("1.25")).quantize(Decimal("1"), ROUND_HALF_UP) - Decimal("0.01")
            old = f'<del class="was">{_format_price(was, shop.currency, european)}</del> '
        visible_price = f'<div class="product-price">{old}<span class="now">{shown}</span></div>'
        stock = (
            '<p class="stock in">In stock, ships in 1-2 days</p>' if in_stock else '<p class="stock out">Sold out</p>'
        )

        related = []
        for offset in rng.sample(range(1, 200), 8):
            other = products[(index + offset) % len(products)]
            decoy = (other.price * Decimal(str(round(rng.uniform(0.8, 1.2), 2)))).quantize(CENT)
            related.append(
                f'<li class="card"><a href="{product_path(other.sku)}">{html.escape(other.name)}</a>'
                f'<span class="card-price">{_format_price(decoy, shop.currency, european)}</span></li>'
            )
        bundle = _format_price((price * Decimal("1.8")).quantize(CENT), shop.currency, european)
        description = "".join(rng.sample(self.paragraphs, rng.randrange(4, 8)))
        reviews = "".join(rng.sample(self.reviews, rng.randrange(8, 16)))

        return "".join(
            (
                self.head(product.name, extra_head),
                f'<main><article class="product"{product_attrs}>',
                f'<h1 itemprop="name">{name}</h1>' if product_attrs else f"<h1>{name}</h1>",
                f'<p class="sku">Item {product.sku} &middot; EAN {product.gtin}</p>',
                price_markup,
                visible_price,
                stock,
                '<form action="/checkout/add" method="post"><button>Add to basket</button></form>',
                f'<section class="description"><h2>Description</h2>{description}</section>',
                "</article>",
                f'<aside class="bundle">Buy it with a carry case for {bundle} together.</aside>',
                f'<section class="reviews"><h2>Reviews</h2>{reviews}</section>',
                f'<section class="related"><h2>Customers also bought</h2><ul>{"".join(related)}</ul></section>',
                "</main>",
                self.footer,
            )
        )
