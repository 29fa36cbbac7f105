"""What a product page says it is: identifiers, brand, name, the shop's SKU, price and image.

Read from the page's structured data (JSON-LD, microdata, OpenGraph product tags) about its own
product, the `h1` when they name none; the price and currency are `monitor.scrape.extract`'s,
so a page whose price is ambiguous to a sweep has no price here either. Products in lists,
carousels and "related" blocks are not the page's product.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode

from monitor.matching.identifiers import normalize_gtin

# The JSON-LD reading rules are the scraper's (key and type spellings, tolerant JSON): one
# reading of a page's structured data, not two that drift apart.
from monitor.scrape.evidence import in_listing, same_page
from monitor.scrape.extract import (
    _GTIN_KEYS,
    _PRODUCT_TYPES,
    Extraction,
    ExtractionRules,
    _as_list,
    _canon,
    _load_jsonld,
    _types,
    _utf8_or_decoded,
    extract,
)

_MICRODATA_GTIN = ("gtin", "gtin8", "gtin12", "gtin13", "gtin14", "ean", "isbn", "productID")
_SKIP_LINK_SUFFIXES = (
    ".jpg", ".jpeg", ".png", ".gif", ".webp", ".svg", ".ico", ".css", ".js", ".pdf", ".zip", ".mp4", ".woff", ".woff2",
)  # fmt: skip


@dataclass(slots=True)
class PageIdentity:
    """One page's product, as the page states it; `is_product` is False for other pages."""

    is_product: bool
    name: str | None = None
    brand: str | None = None
    mpn: str | None = None
    gtin: str | None = None  # GTIN-14, check digit verified
    gtin_raw: str | None = None  # what the page said, when it is no valid GTIN
    shop_sku: str | None = None
    price: Decimal | None = None
    currency: str | None = None
    image_url: str | None = None
    price_status: str = "not_found"  # extract()'s status
    links: list[str] = field(default_factory=list)

    def fingerprint(self) -> str:
        """What makes the page this product: when it changes, the page shows another product."""
        key = "|".join(
            [self.gtin or "", (self.mpn or "").upper(), (self.brand or "").casefold(), (self.name or "").casefold()]
        )
        return hashlib.sha256(key.encode()).hexdigest()[:32]


def _text(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("name") or value.get("@value") or value.get("url")
    if isinstance(value, list):
        value = next((v for v in value if isinstance(v, str | int) and str(v).strip()), None)
    if isinstance(value, str | int) and not isinstance(value, bool):
        text = " ".join(str(value).split())
        return text[:500] or None
    return None


def _image(value: Any) -> str | None:
    for item in _as_list(value):
        if isinstance(item, str) and item.strip():
            return item.strip()
        if isinstance(item, dict):
            url = item.get("url") or item.get("contentUrl")
            if isinstance(url, str) and url.strip():
                return url.strip()
    return None


@dataclass(slots=True)
class _Product:
    names: list[str]
    urls: list[str]
    fields: dict[str, str]
    gtins: list[str]


def _jsonld_products(tree: LexborHTMLParser) -> list[_Product]:
    found: list[_Product] = []
    for script in tree.css('script[type="application/ld+json"]'):
        if in_listing(script):
            continue
        for block in _load_jsonld(script.text(deep=True) or ""):
            roots: list[dict[str, Any]] = []
            for item in _as_list(block):
                if not isinstance(item, dict):
                    continue
                item = _canon(item)
                graph = item.get("@graph")
                roots.extend(_canon(g) for g in _as_list(graph) if isinstance(g, dict))
                roots.append(item)
            for node in roots:
                if not _types(node) & _PRODUCT_TYPES:
                    entity = node.get("mainEntity")
                    node = _canon(entity) if isinstance(entity, dict) else {}
                    if not _types(node) & _PRODUCT_TYPES:
                        continue
                fields: dict[str, str] = {}
                for key, name in (("name", "name"), ("brand", "brand"), ("mpn", "mpn"), ("sku", "sku")):
                    value = _text(node.get(key))
                    if value:
                        fields[name] = value
                if "brand" not in fields:
                    maker = _text(node.get("manufacturer"))
                    if maker:
                        fields["brand"] = maker
                image = _image(node.get("image"))
                if image:
                    fields["image"] = image
                gtins = [str(node[k]) for k in _GTIN_KEYS if _text(node.get(k))]
                for offer in _as_list(node.get("offers")):
                    if isinstance(offer, dict):
                        gtins += [str(offer[k]) for k in _GTIN_KEYS if _text(offer.get(k))]
                urls = [u for u in (node.get("url"), node.get("@id")) if isinstance(u, str)]
                found.append(_Product([fields["name"]] if "name" in fields else [], urls, fields, gtins))
    return found


def _itemprop(item: LexborNode, name: str) -> str | None:
    for node in item.css(f'[itemprop="{name}"]'):
        attrs = node.attributes
        value = attrs.get("content") or attrs.get("href") or attrs.get("src") or node.text(deep=True)
        text = _text(value)
        if text:
            return text
    return None


def _microdata_products(tree: LexborHTMLParser) -> list[_Product]:
    found: list[_Product] = []
    for item in tree.css("[itemscope][itemtype]"):
        kind = (item.attributes.get("itemtype") or "").rsplit("/", 1)[-1]
        if kind not in _PRODUCT_TYPES or in_listing(item) or "itemprop" in item.attributes:
            continue
        fields = {k: v for k in ("name", "mpn", "sku") if (v := _itemprop(item, k))}
        brand_node = item.css_first('[itemprop="brand"]')
        if brand_node is not None:
            inner = brand_node.css_first('[itemprop="name"]')
            brand = _text((inner or brand_node).attributes.get("content") or (inner or brand_node).text(deep=True))
            if brand:
                fields["brand"] = brand
        image_node = item.css_first('[itemprop="image"]')
        if image_node is not None:
            image = image_node.attributes.get("src") or image_node.attributes.get("content")
            if image:
                fields["image"] = image
        gtins = [g for k in _MICRODATA_GTIN if (g := _itemprop(item, k))]
        url = _itemprop(item, "url")
        found.append(_Product([fields["name"]] if "name" in fields else [], [url] if url else [], fields, gtins))
    return found


def _meta(tree: LexborHTMLParser) -> dict[str, str]:
    metas: dict[str, str] = {}
    for node in tree.css("meta[property], meta[name]"):
        key = (node.attributes.get("property") or node.attributes.get("name") or "").strip().lower()
        content = node.attributes.get("content")
        if key and content and key not in metas:
            metas[key] = content.strip()
    return metas


def _own_product(products: list[_Product], url: str | None, heading: str | None) -> _Product | None:
    if len(products) <= 1:
        return products[0] if products else None
    if url:
        own = [p for p in products if any(same_page(u, url) for u in p.urls if u)]
        if len(own) == 1:
            return own[0]
    if heading:
        own = [p for p in products if any(n.casefold() == heading.casefold() for n in p.names)]
        if len(own) == 1:
            return own[0]
    # Several sources about one product (JSON-LD and microdata): their identifiers must agree.
    gtins = {normalize_gtin(g) for p in products for g in p.gtins} - {None}
    names = {n.casefold() for p in products for n in p.names}
    if len(gtins) <= 1 and len(names) <= 1:
        merged = _Product([], [], {}, [])
        for p in products:
            merged.names += p.names
            merged.gtins += p.gtins
            for key, value in p.fields.items():
                merged.fields.setdefault(key, value)
        return merged
    return None


def page_links(tree: LexborHTMLParser, url: str) -> list[str]:
    """Links of the page to other pages of its host (fragments dropped), in page order."""
    host = urlsplit(url).netloc
    links: dict[str, None] = {}
    for node in tree.css("a[href]"):
        href = (node.attributes.get("href") or "").strip()
        if not href or href.startswith(("#", "mailto:", "tel:", "javascript:")):
            continue
        if "nofollow" in (node.attributes.get("rel") or "").lower():
            continue
        try:
            target = urldefrag(urljoin(url, href))[0]
            parts = urlsplit(target)
        except ValueError:
            continue
        if parts.scheme not in ("http", "https") or parts.netloc != host:
            continue
        if parts.path.lower().endswith(_SKIP_LINK_SUFFIXES):
            continue
        links[target] = None
    return list(links)


def read_identity(
    body: bytes, url: str, *, encoding: str | None = None, rules: ExtractionRules | None = None, links: bool = False
) -> PageIdentity:
    """The identity of the product `body` (the page at `url`) shows; its links too when asked."""
    html = _utf8_or_decoded(body, encoding)
    tree = LexborHTMLParser(html)
    found_links = page_links(tree, url) if links else []
    h1 = tree.css_first("h1")
    heading = _text(h1.text(deep=True)) if h1 is not None else None
    metas = _meta(tree)
    product = _own_product(_jsonld_products(tree) + _microdata_products(tree), url, heading)
    is_product = product is not None or metas.get("og:type", "").lower() in ("product", "og:product")
    if not is_product:
        return PageIdentity(False, links=found_links)
    fields = product.fields if product else {}
    gtins = list(product.gtins) if product else []
    if metas.get("product:ean") or metas.get("product:upc") or metas.get("product:isbn"):
        gtins.append(metas.get("product:ean") or metas.get("product:upc") or metas.get("product:isbn") or "")
    valid = sorted({g for g in (normalize_gtin(x) for x in gtins) if g})
    # The same tree gives the price: read last, as extract may strip the tree's scripts.
    extraction: Extraction = extract(body, rules or ExtractionRules(), encoding=encoding, url=url, tree=tree)
    image = fields.get("image") or metas.get("og:image")
    return PageIdentity(
        True,
        name=fields.get("name") or metas.get("og:title") or heading,
        brand=fields.get("brand") or metas.get("product:brand") or metas.get("og:brand"),
        mpn=fields.get("mpn"),
        # Two different valid GTINs for one product is no identity at all.
        gtin=valid[0] if len(valid) == 1 else None,
        gtin_raw=(gtins[0][:40] if gtins and len(valid) != 1 else None),
        shop_sku=fields.get("sku") or metas.get("product:retailer_item_id"),
        price=extraction.price if extraction.status == "ok" else None,
        currency=extraction.currency if extraction.status == "ok" else None,
        image_url=urljoin(url, image)[:2048] if image else None,
        price_status=extraction.status,
        links=found_links,
    )
