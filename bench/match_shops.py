"""A synthetic market for matching: our catalogue and competitor shops that sell parts of it
under their own titles, with sitemaps and a truth file.

Products come in families of look-alikes that differ in one attribute (colour, storage, screen
size, capacity, pack count), each with its own GTIN and MPN. Our catalogue carries most of them;
every shop sells a share of all of them (ours and look-alikes we do not carry) and writes titles
its own way: brand or model first, abbreviations, units written differently, attributes left out,
extra words; some shops publish no GTINs, some no MPNs or brands. Pages carry JSON-LD or microdata
and filler of a real shop page (navigation, description, related products).

    <dir>/products.csv                       our catalogue (sku,name,price,currency,gtin,mpn,brand)
    <dir>/truth.csv                          competitor,url_path,item,sku (sku empty: not ours)
    <dir>/shops/<shop>/robots.txt            Sitemap: line (or none: crawl from /c/all/1.html)
    <dir>/shops/<shop>/sitemap_index.xml     -> sitemap-N.xml or .xml.gz, 1,000 URLs each
    <dir>/shops/<shop>/p/<id>.html, c/all/<n>.html
"""

from __future__ import annotations

import argparse
import csv
import gzip
import html
import json
import random
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from monitor.matching.identifiers import gtin_check_digit

VERSION = 2
DEFAULT_CACHE = Path(__file__).resolve().parent / ".cache"
PER_SITEMAP = 1000
PER_CATEGORY_PAGE = 48

_CATEGORIES = {
    "headphones": (["Sony", "Bose", "JBL", "Sennheiser", "AKG", "Beyerdynamic", "Jabra"],
                   ["Wireless Noise Cancelling Headphones", "Bluetooth Over-Ear Headphones", "True Wireless Earbuds"],
                   "colour", ["Black", "White", "Silver", "Blue"]),
    "ssd": (["Samsung", "Crucial", "WD", "Kingston", "SanDisk", "Seagate"],
            ["NVMe M.2 SSD", "Portable SSD USB-C", "SATA SSD 2.5"], "storage", ["500GB", "1TB", "2TB", "4TB"]),
    "phone": (["Apple", "Samsung", "Xiaomi", "Google", "OnePlus", "Motorola"],
              ["Smartphone 5G", "Smartphone Dual SIM"], "storage", ["128GB", "256GB", "512GB"]),
    "tv": (["LG", "Sony", "Samsung", "Philips", "TCL", "Hisense"],
           ["4K UHD Smart TV", "OLED TV", "QLED Smart TV"], "size", ['43"', '50"', '55"', '65"']),
    "batteries": (["Duracell", "Energizer", "Varta", "Panasonic"],
                  ["AA Alkaline Batteries", "AAA Alkaline Batteries", "AA Rechargeable Batteries"], "pack",
                  ["4 pack", "8 pack", "12 pack", "24 pack"]),
    "kettle": (["Bosch", "Philips", "Tefal", "KitchenAid", "Russell Hobbs", "Smeg"],
               ["Electric Kettle", "Stainless Steel Kettle"], "capacity", ["1.0 l", "1.5 l", "1.7 l"]),
    "drill": (["Bosch", "Makita", "DeWalt", "Milwaukee", "Metabo", "Ryobi"],
              ["Cordless Drill Driver", "Combi Drill"], "voltage", ["12V", "18V", "36V"]),
}  # fmt: skip
_ABBREVIATIONS = {
    "Wireless": "Wrls", "Headphones": "Headph.", "Bluetooth": "BT", "Noise Cancelling": "NC",
    "Stainless Steel": "SS", "Alkaline": "Alk.", "Batteries": "Batt.", "Rechargeable": "Rechg.",
    "Smartphone": "Phone", "Cordless": "Cdl.", "Electric": "El.",
}  # fmt: skip
_EXTRA = ["(2024)", "- Free Delivery", "NEW", "| Official Retailer", "with 2-year warranty", "Bestseller"]
_BASE_PRICE = {"headphones": 180, "ssd": 90, "phone": 600, "tv": 700, "batteries": 12, "kettle": 60, "drill": 150}


@dataclass(frozen=True)
class Item:
    """One product of the market: a variant of a family."""

    id: int
    family: int
    category: str
    brand: str
    line: str
    code: str
    kind: str
    dimension: str
    variant: str
    gtin: str
    mpn: str
    price: Decimal


@dataclass(frozen=True)
class ShopStyle:
    name: str
    gtins: bool
    mpn_rate: float
    brand_field: bool
    model_first: bool
    abbreviate: bool
    spaced_units: bool
    drop_attribute: float
    drop_code: float
    extra_words: float
    microdata: bool
    sitemap: str  # "index" | "gzip" | "none" (crawl)


def _gtin(rng: random.Random, used: set[str]) -> str:
    while True:
        body = "40" + "".join(rng.choice("0123456789") for _ in range(10))
        code = body + str(gtin_check_digit(body))
        if code not in used:
            used.add(code)
            return code


def plan_items(count: int, seed: int) -> list[Item]:
    rng = random.Random(seed)
    items: list[Item] = []
    used: set[str] = set()
    family = 0
    codes: set[str] = set()
    while len(items) < count:
        category = rng.choice(sorted(_CATEGORIES))
        brands, kinds, dimension, variants = _CATEGORIES[category]
        brand = rng.choice(brands)
        while True:
            code = f"{rng.choice('ABCDEFGHKLMPRSTVWXZ')}{rng.choice('ABCDEFGHKLMPRSTVWXZ')}-{rng.randint(100, 9999)}"
            if code not in codes:
                codes.add(code)
                break
        line = rng.choice(["Pro", "Max", "Air", "Elite", "Plus", "Studio", "Go", "Ultra", "Core", "Sport"])
        kind = rng.choice(kinds)
        chosen = rng.sample(variants, k=rng.randint(2, len(variants)))
        base = Decimal(_BASE_PRICE[category]) * Decimal(rng.uniform(0.5, 1.8))
        for index, variant in enumerate(sorted(chosen, key=variants.index)):
            price = (base * Decimal(1 + 0.25 * index)).quantize(Decimal("0.01"))
            suffix = "".join(ch for ch in variant.upper() if ch.isalnum())[:4]
            mpn = f"{code.replace('-', '')}{suffix}"
            items.append(
                Item(len(items), family, category, brand, line, code, kind, dimension, variant, _gtin(rng, used),
                     mpn, price)
            )  # fmt: skip
        family += 1
    return items[:count]


def our_name(item: Item) -> str:
    return f"{item.brand} {item.line} {item.code} {item.kind} {item.variant}"


def plan_styles(shops: int, seed: int) -> list[ShopStyle]:
    rng = random.Random(seed + 1)
    styles = []
    for index in range(shops):
        styles.append(
            ShopStyle(
                name=f"shop{index:02d}",
                gtins=index % 4 != 1,  # a quarter of the shops publish no GTINs
                mpn_rate=rng.choice([0.0, 0.5, 0.9]),
                brand_field=rng.random() < 0.8,
                model_first=rng.random() < 0.4,
                abbreviate=rng.random() < 0.5,
                spaced_units=rng.random() < 0.5,
                drop_attribute=rng.choice([0.0, 0.1, 0.2]),
                drop_code=rng.choice([0.0, 0.2, 0.5]),
                extra_words=rng.choice([0.0, 0.3]),
                microdata=index % 3 == 2,
                sitemap=("index", "gzip", "index", "none")[index % 4] if shops > 1 else "index",
            )
        )
    return styles


def _unit(variant: str, spaced: bool) -> str:
    if variant.endswith("TB") and spaced:
        return variant[:-2] + " TB"
    if variant.endswith("GB") and spaced:
        return variant[:-2] + " GB"
    if variant.endswith('"'):
        return variant[:-1] + (" inch" if spaced else '"')
    if variant.endswith(" pack") and spaced:
        return "Pack of " + variant.split()[0]
    if variant.endswith(" l") and not spaced:
        return variant.replace(" l", "L")
    return variant


def shop_title(item: Item, style: ShopStyle, rng: random.Random) -> str:
    kind = item.kind
    if style.abbreviate:
        for word, short in _ABBREVIATIONS.items():
            kind = kind.replace(word, short)
    variant = "" if rng.random() < style.drop_attribute else _unit(item.variant, style.spaced_units)
    code = "" if rng.random() < style.drop_code else item.code
    brand = item.brand.upper() if rng.random() < 0.2 else item.brand
    if style.model_first:
        parts = [brand, item.line, code, variant, "-", kind]
    else:
        parts = [brand, kind, item.line, code, variant]
    if rng.random() < style.extra_words:
        parts.append(rng.choice(_EXTRA))
    return " ".join(p for p in parts if p).replace(" - ", " - ").strip(" -")


_FILLER = (
    "Free delivery on orders over 50. Returns within 30 days. Our customer service team answers "
    "questions Monday to Saturday. Secure payment with all major cards. "
)


def _page(item: Item, title: str, style: ShopStyle, price: Decimal, related: Sequence[tuple[str, str]], gtin: bool,
          mpn: bool) -> str:  # fmt: skip
    escaped = html.escape(title)
    cards = "".join(
        f'<li class="card"><a href="/p/{rid}.html">{html.escape(rtitle)}</a><span>see price</span></li>'
        for rid, rtitle in related
    )
    nav = "".join(f'<a href="/c/all/{n}.html">Category {n}</a> ' for n in range(1, 9))
    description = html.escape(f"{title}. ") + _FILLER * 80
    if style.microdata:
        extra = (f'<meta itemprop="gtin13" content="{item.gtin}">' if gtin else "") + (
            f'<meta itemprop="mpn" content="{item.mpn}">' if mpn else ""
        )
        brand = (
            f'<div itemprop="brand" itemscope itemtype="https://schema.org/Brand"><meta itemprop="name" '
            f'content="{html.escape(item.brand)}"></div>'
            if style.brand_field
            else ""
        )
        product = (
            f'<div itemscope itemtype="https://schema.org/Product"><h1 itemprop="name">{escaped}</h1>{brand}{extra}'
            f'<meta itemprop="sku" content="{style.name}-{item.id}"><img itemprop="image" src="/img/{item.id}.jpg">'
            f'<div itemprop="offers" itemscope itemtype="https://schema.org/Offer"><span itemprop="price" '
            f'content="{price}">{price} EUR</span><meta itemprop="priceCurrency" content="EUR">'
            f'<link itemprop="availability" href="https://schema.org/InStock"></div></div>'
        )
        head = ""
    else:
        data: dict[str, object] = {
            "@context": "https://schema.org",
            "@type": "Product",
            "name": title,
            "sku": f"{style.name}-{item.id}",
            "image": f"/img/{item.id}.jpg",
            "offers": {"@type": "Offer", "price": str(price), "priceCurrency": "EUR",
                       "availability": "https://schema.org/InStock"},
        }  # fmt: skip
        if style.brand_field:
            data["brand"] = {"@type": "Brand", "name": item.brand}
        if gtin:
            data["gtin13"] = item.gtin
        if mpn:
            data["mpn"] = item.mpn
        head = f'<script type="application/ld+json">{json.dumps(data)}</script>'
        product = f'<h1>{escaped}</h1><p class="price">{price} EUR</p>'
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escaped} | {style.name}</title>{head}</head>"
        f"<body><header><nav>{nav}</nav></header><main>{product}<section class='description'><p>{description}"
        f"</p></section></main><aside class='related'><h2>Customers also viewed</h2><ul>{cards}</ul></aside>"
        f"<footer>{_FILLER}</footer></body></html>"
    )


def _urlset(paths: Sequence[str], base: str) -> bytes:
    entries = "".join(f"<url><loc>{base}{p}</loc></url>" for p in paths)
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"{entries}</urlset>"
    ).encode()


def generate(out: Path, *, shops: int, pages: int, seed: int = 1) -> Path:
    """Write the market into `out` (reused when it exists and is complete)."""
    if (out / "done").exists():
        return out
    if out.exists():
        shutil.rmtree(out)
    (out / "shops").mkdir(parents=True)
    # Shops sell 70% of the market each; we carry 80% of it.
    universe = plan_items(max(int(pages / 0.7) + 1, 10), seed)
    rng = random.Random(seed + 2)
    ours = {item.id for item in universe if rng.random() < 0.8}
    with (out / "products.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sku", "name", "price", "currency", "gtin", "mpn", "brand"])
        for item in universe:
            if item.id in ours:
                writer.writerow(
                    [
                        f"SKU-{item.id}",
                        our_name(item),
                        item.price,
                        "EUR",
                        item.gtin if rng.random() < 0.85 else "",
                        item.mpn if rng.random() < 0.7 else "",
                        item.brand,
                    ]
                )
    truth_rows: list[list[str]] = []
    for style in plan_styles(shops, seed):
        shop_rng = random.Random(f"{seed}-{style.name}")
        root = out / "shops" / style.name
        (root / "p").mkdir(parents=True)
        (root / "c" / "all").mkdir(parents=True)
        sold = shop_rng.sample(universe, k=min(pages, len(universe)))
        titles = {item.id: shop_title(item, style, shop_rng) for item in sold}
        paths = []
        for item in sold:
            related = [(r.id, titles[r.id]) for r in shop_rng.sample(sold, k=min(4, len(sold)))]
            price = (item.price * Decimal(shop_rng.uniform(0.85, 1.15))).quantize(Decimal("0.01"))
            body = _page(item, titles[item.id], style, price, related, style.gtins,
                         shop_rng.random() < style.mpn_rate)  # fmt: skip
            path = f"/p/{item.id}.html"
            (root / "p" / f"{item.id}.html").write_text(body, encoding="utf-8")
            paths.append(path)
            truth_rows.append([style.name, path, str(item.id), f"SKU-{item.id}" if item.id in ours else ""])
        # Category pages: product links and rel=next pagination.
        chunks = [paths[i : i + PER_CATEGORY_PAGE] for i in range(0, len(paths), PER_CATEGORY_PAGE)]
        for number, chunk in enumerate(chunks, start=1):
            links = "".join(f'<li><a href="{p}">{html.escape(titles[int(p[3:-5])])}</a></li>' for p in chunk)
            nav = f'<a rel="next" href="/c/all/{number + 1}.html">Next</a>' if number < len(chunks) else ""
            (root / "c" / "all" / f"{number}.html").write_text(
                f"<html><body><h1>All products, page {number}</h1><ul>{links}</ul><nav>{nav}</nav>"
                "<a href='/checkout/cart.html'>Cart</a></body></html>",
                encoding="utf-8",
            )
        (root / "index.html").write_text(
            "<html><body><h1>Welcome</h1><a href='/c/all/1.html'>All products</a></body></html>", encoding="utf-8"
        )
        robots = "User-agent: *\nDisallow: /checkout/\n"
        if style.sitemap != "none":
            names = []
            for index in range(0, len(paths), PER_SITEMAP):
                data = _urlset(paths[index : index + PER_SITEMAP], "")
                if style.sitemap == "gzip":
                    name = f"sitemap-{index // PER_SITEMAP + 1}.xml.gz"
                    (root / name).write_bytes(gzip.compress(data))
                else:
                    name = f"sitemap-{index // PER_SITEMAP + 1}.xml"
                    (root / name).write_bytes(data)
                names.append(name)
            entries = "".join(f"<sitemap><loc>/{n}</loc></sitemap>" for n in names)
            (root / "sitemap_index.xml").write_text(
                '<?xml version="1.0" encoding="UTF-8"?><sitemapindex '
                f'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</sitemapindex>',
                encoding="utf-8",
            )
            robots += "Sitemap: /sitemap_index.xml\n"
        (root / "robots.txt").write_text(robots, encoding="utf-8")
    with (out / "truth.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["competitor", "url_path", "item", "sku"])
        writer.writerows(truth_rows)
    (out / "done").write_text(json.dumps({"shops": shops, "pages": pages, "seed": seed, "version": VERSION}))
    return out


def market_directory(shops: int, pages: int, seed: int, cache: Path = DEFAULT_CACHE) -> Path:
    return cache / f"match-s{shops}-p{pages}-seed{seed}-v{VERSION}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shops", type=int, default=72)
    parser.add_argument("--pages", type=int, default=2400, help="product pages per shop")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    out = generate(args.out or market_directory(args.shops, args.pages, args.seed), shops=args.shops,
                   pages=args.pages, seed=args.seed)  # fmt: skip
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
