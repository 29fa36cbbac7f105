"""Find the one current price, its currency, stock state and product identifiers in a product page.

Pure functions over an HTML body: the competitor's configured selectors win; otherwise the page's
structured data (JSON-LD, microdata, OpenGraph product tags) is read. Plain text is never scanned
for prices without a selector, and when several different prices remain the answer is
``ambiguous`` rather than a guess, because a wrong price that looks right is the worst output a
price monitor can give.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import json
import logging
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from html import unescape as unescape_html
from typing import Any

import chompjs
from selectolax.lexbor import LexborHTMLParser, LexborNode, SelectolaxError

from monitor.money import MoneyRangeError, check_money, is_money
from monitor.scrape.evidence import (
    PageHints,
    Shown,
    in_listing,
    inside_struck_text,
    is_ignored_element,
    price_text,
    same_page,
    shown_prices,
    struck_amounts_may_include,
    variant_ids,
)
from monitor.scrape.islands import read_island
from monitor.scrape.price import normalize_currency, parse_price_detail

logger = logging.getLogger(__name__)

__all__ = ["EXTRACTOR_VERSION", "Candidate", "Extraction", "ExtractionRules", "extract", "validate_selector"]

#: Changes when the same page and rules may read differently, so that pages a sweep skipped as
#: unchanged are read again by the new code (a price the old one got wrong is not kept forever).
EXTRACTOR_VERSION = "2"

OK = "ok"
NOT_FOUND = "not_found"
AMBIGUOUS = "ambiguous"
INVALID_CONTENT = "invalid_content"
INVALID_PRICE = "invalid_price"


@dataclass(frozen=True, slots=True)
class ExtractionRules:
    """Per-competitor extraction settings, built by the caller from config; all optional.

    ``in_stock`` / ``out_of_stock`` are a CSS selector (an element matching it means that state)
    or ``"text:<pattern>"``, a case-insensitive substring of the page's visible body text.
    """

    price: str | None = None  # CSS selector
    currency: str | None = None  # ISO code used when the page does not say
    in_stock: str | None = None  # CSS selector or "text:..." pattern
    out_of_stock: str | None = None
    decimal_separator: str | None = None  # "." or ","
    json_script: str | None = None  # CSS selector of a script element holding JSON (or a JS object)
    json_price: str | None = None  # JMESPath expressions into it
    json_currency: str | None = None
    json_in_stock: str | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    price: Decimal
    currency: str | None
    method: str  # selector / json / jsonld / microdata / opengraph / page (shown, never chosen)
    source: str  # short human description, e.g. 'JSON-LD Product.offers[0]' or 'selector ".price" #2'


@dataclass(frozen=True, slots=True)
class Extraction:
    status: str  # "ok" | "not_found" | "ambiguous" | "invalid_content" | "invalid_price"
    price: Decimal | None
    currency: str | None
    in_stock: bool | None
    method: str | None
    candidates: tuple[Candidate, ...]
    gtin: str | None
    sku: str | None
    message: str  # human reason, esp. for not ok


def validate_selector(selector: str) -> str | None:
    """Return an error message if ``selector`` is not a CSS selector lexbor can run, else None."""
    if not selector or not selector.strip():
        return "empty CSS selector"
    try:
        _PROBE_DOCUMENT.css(selector)
    except SelectolaxError as exc:
        return f"invalid CSS selector {selector!r}: {exc}"
    return None


_PROBE_DOCUMENT = LexborHTMLParser("<html><body><p class='probe'>probe</p></body></html>")

# --------------------------------------------------------------------------------------------
# Decoding

_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]{1,40})""", re.I)
# WHATWG: pages labelled latin-1 or ASCII are decoded as windows-1252, which is what they really are.
_LABEL_ALIASES = {
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin-1": "cp1252",
    "latin1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
}


def _utf8_or_decoded(body: bytes, encoding: str | None) -> bytes | str:
    """The page as lexbor should get it: its own bytes when they are (meant to be) UTF-8, which
    lexbor reads directly (invalid sequences become U+FFFD, as a decode with "replace" would),
    else the text decoded from the charset the page declares."""
    if body.startswith(codecs.BOM_UTF8):
        return body[3:]
    if body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return body.decode("utf-16", errors="replace")
    labels: list[str] = []
    if encoding:
        labels.append(encoding)
    sniffed = _META_CHARSET.search(body, 0, 4096)
    if sniffed:
        labels.append(sniffed.group(1).decode("ascii"))
    for label in labels:
        label = _LABEL_ALIASES.get(label.strip().lower(), label.strip())
        try:
            name = codecs.lookup(label).name
        except LookupError:
            continue
        return body if name == "utf-8" else body.decode(label, errors="replace")
    return body


# --------------------------------------------------------------------------------------------
# What extraction collects before deciding

PAGE_GROUP = -1  # OpenGraph tags and selectors describe the page, not one of its products


@dataclass(slots=True)
class _Found:
    amount: Decimal
    currency: str | None
    explicit: bool  # the page itself named the currency (not the configured default)
    method: str
    source: str
    group: int = PAGE_GROUP  # which product of the page this belongs to (see _Structured.groups)
    offer_url: str | None = None  # the offer's (or its variant's) own url and sku, to find the selected variant
    offer_sku: str | None = None
    offer_in_stock: bool | None = None


@dataclass(slots=True)
class _Group:
    """One product described by the page's structured data: the page's own, or a related one."""

    method: str
    names: list[str]
    urls: list[str]
    sku: str | None = None
    listed: bool = False  # sits inside a list, carousel or "related products" block
    node: LexborNode | None = None  # the microdata item's element


@dataclass(slots=True)
class _Structured:
    """Everything the structured data of one page says about its own product."""

    found: list[_Found]
    availability: list[bool]
    gtins: list[str]
    skus: list[str]
    unsettled: list[tuple[int, str]]  # (group, reason) that makes the price ambiguous even with one candidate
    groups: dict[int, _Group]


def _new_structured() -> _Structured:
    return _Structured(found=[], availability=[], gtins=[], skus=[], unsettled=[], groups={})


# schema.org availability -> in stock. PreOrder, PreSale and BackOrder count as *not* in stock:
# the shopper cannot get the item now, so it is not a competing offer today.
_AVAILABILITY: dict[str, bool] = {
    "instock": True,
    "instoreonly": True,
    "onlineonly": True,
    "limitedavailability": True,
    "outofstock": False,
    "soldout": False,
    "discontinued": False,
    "preorder": False,
    "presale": False,
    "backorder": False,
    # OpenGraph / Facebook catalog spellings
    "in stock": True,
    "available for order": True,
    "out of stock": False,
    "oos": False,
    "sold out": False,
    "pending": False,
    "available": True,
}


def _parse_availability(value: object) -> bool | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    # "https://schema.org/InStock", "http://schema.org/OutOfStock", "schema:SoldOut", "InStock"
    tail = value.rsplit("/", 1)[-1].rsplit(":", 1)[-1] if "/" in value or value.startswith("schema:") else value
    return _AVAILABILITY.get(tail.strip().lower())


_MACHINE_NUMBER = re.compile(r"\s*-?\d+(?:\.\d+)?\s*")


def _structured_amount(value: object, decimal_separator: str | None) -> Decimal | None:
    """Amount from a machine-readable field (JSON-LD ``price``, microdata ``content``).

    schema.org says these use a dot as decimal separator, so ``"1.299"`` is 1.299 there; other
    spellings ("1,299.00", "19,99 €") are common in the wild and go through the text parser.
    A number that is not an amount pricemon keeps (``1e308``, 400 digits, ``"1e5"``) raises
    MoneyRangeError: the page states a price, just not one to trust.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal | int):
        amount = Decimal(value)
        if amount.is_finite() and amount.as_tuple().exponent > 0:  # type: ignore[operator]
            raise MoneyRangeError(f"price in exponent notation is not an amount: {value}")
        return check_money(amount, what="price") if amount.is_finite() and amount >= 0 else None
    if isinstance(value, float):
        return _structured_amount(repr(value), None)
    if not isinstance(value, str):
        return None
    if _MACHINE_NUMBER.fullmatch(value):
        try:
            amount = Decimal(value.strip())
        except InvalidOperation:
            return None
        return check_money(amount, what="price") if amount >= 0 else None
    detail = parse_price_detail(value, decimal_separator=decimal_separator)
    return detail[0] if detail else None


# --------------------------------------------------------------------------------------------
# JSON-LD

_PRODUCT_TYPES = frozenset(
    {
        "Product",
        "ProductModel",
        "IndividualProduct",
        "SomeProducts",
        "ProductGroup",
        "Vehicle",
        "Car",
        "Motorcycle",
        "Book",
    }
)
_OFFER_TYPES = frozenset({"Offer", "AggregateOffer"})
_PAGE_TYPES = frozenset({"WebPage", "ItemPage", "ProductPage", "CollectionPage"})
# Pages write types in any case ("product", "offer"): one lookup from the folded spelling.
_TYPE_NAMES = {t.casefold(): t for t in _PRODUCT_TYPES | _OFFER_TYPES | _PAGE_TYPES}
_CANONICAL_TYPES = frozenset(_TYPE_NAMES.values())
# price specifications that describe a former or recommended price, not what the shopper pays now
_NOT_CURRENT_PRICE_TYPES = ("listprice", "strikethroughprice", "msrp", "srp", "invoiceprice", "minimumadvertisedprice")
# price specifications that are not the item's price at all
_NOT_ITEM_PRICE_SPECS = frozenset({"DeliveryChargeSpecification", "PaymentChargeSpecification"})
_GTIN_KEYS = ("gtin", "gtin13", "gtin12", "gtin14", "gtin8", "ean", "isbn")
# Keys read from JSON-LD, so that "Offers", "Price" or "PRICECURRENCY" are read too.
_KNOWN_KEYS = frozenset(
    {
        "@type", "@id", "@graph", "offers", "price", "priceCurrency", "availability", "lowPrice", "highPrice",
        "offerCount", "priceSpecification", "priceType", "priceComponent", "hasVariant", "mainEntity", "about",
        "sku", "url", "name", "itemOffered", "referenceQuantity", "value", "unitCode", "currency", "amount",
        *_GTIN_KEYS,
    }
)  # fmt: skip
_KEY_NAMES = {k.casefold(): k for k in _KNOWN_KEYS}
# keys pages use that pricemon does not read: known to need no case folding
_FINE_KEYS = _KNOWN_KEYS | {
    "@context", "image", "description", "brand", "aggregateRating", "review", "mpn", "color", "size", "seller",
    "itemListElement", "position", "item", "priceValidUntil", "itemCondition", "shippingDetails",
    "hasMerchantReturnPolicy", "productGroupID", "variesBy", "category", "logo", "potentialAction", "isPartOf",
}  # fmt: skip


def _canon(node: dict[str, Any]) -> dict[str, Any]:
    """``node`` with the keys pricemon reads in their schema.org spelling (most pages already are)."""
    for key in node:
        if key not in _FINE_KEYS and key.casefold() in _KEY_NAMES:
            break
    else:
        return node
    fixed: dict[str, Any] = {}
    for key, value in node.items():
        fixed.setdefault(_KEY_NAMES.get(key.casefold(), key) if isinstance(key, str) else key, value)
    return fixed


_TOLERANT_JSON = {"parse_float": Decimal, "strict": False}


def _load_jsonld(raw: str) -> list[Any]:
    try:
        return [json.loads(raw, parse_float=Decimal, strict=False)]
    except ValueError:
        pass
    # Hand-written blocks carry HTML comments, CDATA wrappers, trailing commas, JavaScript comments
    # or several objects in one script: chompjs reads them as a browser's JavaScript engine would.
    blocks: list[Any] = []
    with contextlib.suppress(Exception):  # chompjs raises several types for hopeless input
        blocks = list(chompjs.parse_js_objects(raw, loader_kwargs=_TOLERANT_JSON))
    if not blocks and "&quot;" in raw:
        # some CMSs HTML-escape the script's text: {&quot;@type&quot;: &quot;Product&quot;, ...}
        return _load_jsonld(unescape_html(raw))
    return blocks


def _types(node: dict[str, Any]) -> set[str]:
    raw = node.get("@type")
    values = raw if isinstance(raw, list) else [raw]
    found = set()
    for value in values:
        if isinstance(value, str):
            name = value.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
            found.add(name if name in _CANONICAL_TYPES else _TYPE_NAMES.get(name.casefold(), name))
    return found


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _identifier(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | Decimal | str):
        text = str(value).strip()
        return text or None
    return None


def _is_zero(amount: Decimal) -> bool:
    return amount == 0


# an offer's own url, sku and availability
_Where = tuple[str | None, str | None, bool | None]


class _JsonLdReader:
    def __init__(self, out: _Structured, rules: ExtractionRules) -> None:
        self.out = out
        self.rules = rules
        self.ids: dict[str, dict[str, Any]] = {}
        # what the offer being read belongs to: its group and the variant's url/sku
        self.group = PAGE_GROUP
        self.variant_url: str | None = None
        self.variant_sku: str | None = None
        self.listed = False  # the script being read sits in a block of other products

    def read_block(self, data: Any) -> None:
        roots: list[dict[str, Any]] = []
        for item in _as_list(data):
            if not isinstance(item, dict):
                continue
            item = _canon(item)
            graph = item.get("@graph")
            if isinstance(graph, list | dict):
                roots.extend(_canon(g) for g in _as_list(graph) if isinstance(g, dict))
                if "@type" in item:
                    roots.append(item)
            else:
                roots.append(item)
        for node in roots:
            node_id = node.get("@id")
            if isinstance(node_id, str):
                self.ids.setdefault(node_id, node)
        for node in roots:
            self.read_root(node)

    def resolve(self, value: Any) -> Any:
        # {"@id": "#offer"} references another node of the same @graph
        if isinstance(value, dict):
            if len(value) == 1 and isinstance(value.get("@id"), str):
                return self.ids.get(value["@id"], value)
            return _canon(value)
        return value

    def read_root(self, node: dict[str, Any], depth: int = 0) -> None:
        types = _types(node)
        if types & _PRODUCT_TYPES:
            group = len(self.out.groups)  # numbered in reading order, microdata items too
            names = [n.strip() for n in _as_list(node.get("name")) if isinstance(n, str) and n.strip()]
            urls = [u for u in (node.get("url"), node.get("@id")) if isinstance(u, str) and u.strip()]
            self.out.groups[group] = _Group("jsonld", names, urls, _identifier(node.get("sku")), self.listed)
            self.group = group
            self.read_product(node, _first(types & _PRODUCT_TYPES))
            self.group = PAGE_GROUP
        elif types & _OFFER_TYPES:
            self.read_offer(node, f"JSON-LD {_first(types & _OFFER_TYPES)}")
        elif types & _PAGE_TYPES and depth < 2:
            # the page's own product hangs off the page as mainEntity; related items do not
            for key in ("mainEntity", "about"):
                for child in _as_list(node.get(key)):
                    child = self.resolve(child)
                    if isinstance(child, dict):
                        self.read_root(child, depth + 1)

    def read_product(self, node: dict[str, Any], label: str, depth: int = 0) -> None:
        for key in _GTIN_KEYS:
            gtin = _identifier(node.get(key))
            if gtin:
                self.out.gtins.append(gtin)
        sku = _identifier(node.get("sku"))
        if sku and depth == 0:
            self.out.skus.append(sku)
        if depth:
            url = node.get("url")
            self.variant_url = url if isinstance(url, str) else None
            self.variant_sku = sku
        offers = [self.resolve(o) for o in _as_list(node.get("offers"))]
        for index, offer in enumerate(offers):
            if isinstance(offer, dict):
                suffix = f"[{index}]" if len(offers) > 1 or isinstance(node.get("offers"), list) else ""
                self.read_offer(offer, f"JSON-LD {label}.offers{suffix}")
        self.variant_url = self.variant_sku = None
        if depth < 1:
            for index, variant in enumerate(_as_list(node.get("hasVariant"))):
                variant = self.resolve(variant)
                if isinstance(variant, dict):
                    self.read_product(variant, f"{label}.hasVariant[{index}]", depth + 1)

    def read_offer(self, offer: dict[str, Any], source: str) -> None:
        available = _parse_availability(offer.get("availability"))
        if available is not None:
            self.out.availability.append(available)
        for key in _GTIN_KEYS:
            gtin = _identifier(offer.get(key))
            if gtin:
                self.out.gtins.append(gtin)
        currency = normalize_currency(_text_value(offer.get("priceCurrency")))
        if "AggregateOffer" in _types(offer):
            self.read_aggregate(offer, source, currency)
            return
        url = offer.get("url")
        where = (
            url if isinstance(url, str) else self.variant_url,
            _identifier(offer.get("sku")) or self.variant_sku,
            available,
        )
        price = offer.get("price")
        if price is None or price == "":
            self.read_price_specification(offer, source, currency, where)
            return
        self.add(price, currency, source, where)

    def read_aggregate(self, offer: dict[str, Any], source: str, currency: str | None) -> None:
        inner = [self.resolve(o) for o in _as_list(offer.get("offers"))]
        inner = [o for o in inner if isinstance(o, dict)]
        if inner:
            for index, child in enumerate(inner):
                self.read_offer(child, f"{source}.offers[{index}]")
            return
        low = _structured_amount(offer.get("lowPrice", offer.get("price")), self.rules.decimal_separator)
        high = _structured_amount(offer.get("highPrice"), self.rules.decimal_separator)
        count = offer.get("offerCount")
        single = (low is not None and high is not None and low == high) or str(count).strip() == "1"
        where = (None, None, _parse_availability(offer.get("availability")))
        if low is not None:
            self.add(low, currency, f"{source}.lowPrice", where)
        if high is not None and high != low:
            self.add(high, currency, f"{source}.highPrice", where)
        if low is not None and not single:
            self.out.unsettled.append((self.group, f"{source} gives a price range (lowPrice {low}, highPrice {high})"))

    def read_price_specification(self, offer: dict[str, Any], source: str, currency: str | None, where: _Where) -> None:
        specs = [self.resolve(s) for s in _as_list(offer.get("priceSpecification"))]
        for index, spec in enumerate(specs):
            if not isinstance(spec, dict) or _types(spec) & _NOT_ITEM_PRICE_SPECS:
                continue
            price_type = spec.get("priceType")
            if isinstance(price_type, str) and price_type.casefold().endswith(_NOT_CURRENT_PRICE_TYPES):
                continue
            if _is_unit_price(spec.get("referenceQuantity")):
                continue  # "9.96 per kg" is not what the item costs
            spec_currency = normalize_currency(_text_value(spec.get("priceCurrency"))) or currency
            if spec.get("price") is not None:
                self.add(spec["price"], spec_currency, f"{source}.priceSpecification[{index}]", where)
            elif spec.get("priceComponent") is not None and len(specs) == 1:
                # CompoundPriceSpecification: its components, with the same rules
                self.read_price_specification(
                    {"priceSpecification": spec["priceComponent"]}, f"{source}.priceSpecification", spec_currency, where
                )

    def add(self, value: Any, currency: str | None, source: str, where: _Where) -> None:
        if isinstance(value, dict):
            # "price": {"value": 12.5, "currency": "EUR"} and similar nested objects
            value = _canon(value)
            inner = next((value[k] for k in ("value", "amount", "price") if value.get(k) is not None), None)
            code = value.get("currency", value.get("priceCurrency"))
            currency = normalize_currency(_text_value(code)) or currency
            if inner is None or isinstance(inner, dict | list):
                return
            value = inner
        amount = _structured_amount(value, self.rules.decimal_separator)
        if amount is None:
            return
        if _is_zero(amount) and where[2] is False:
            return  # a 0 beside OutOfStock is a placeholder, not a price; the stock state stays recorded
        found = _found(amount, currency, self.rules, "jsonld", source)
        found.group = self.group
        found.offer_url, found.offer_sku, found.offer_in_stock = where
        self.out.found.append(found)


def _is_unit_price(quantity: Any) -> bool:
    if not isinstance(quantity, dict):
        return False
    value = quantity.get("value", quantity.get("Value"))
    unit = quantity.get("unitCode", quantity.get("unitText"))
    try:
        one = Decimal(str(value)) == 1 if value is not None else True
    except InvalidOperation:
        one = False
    return not one or (isinstance(unit, str) and unit.strip().upper() not in ("C62", "EA", "H87", "PCE", "XPP", ""))


def _first(values: set[str]) -> str:
    return sorted(values)[0]


def _text_value(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _found(amount: Decimal, currency: str | None, rules: ExtractionRules, method: str, source: str) -> _Found:
    if currency is not None:
        return _Found(amount, currency, True, method, source)
    return _Found(amount, normalize_currency(rules.currency), False, method, source)


def _read_jsonld(scripts: list[LexborNode], out: _Structured, rules: ExtractionRules) -> None:
    reader = _JsonLdReader(out, rules)
    for script in scripts:
        raw = script.text(deep=True)
        if not raw or not raw.strip():
            continue
        blocks = _load_jsonld(raw)
        if not blocks:
            logger.debug("skipping unparseable JSON-LD block (%d chars)", len(raw))
            continue
        reader.listed = len(scripts) > 1 and in_listing(script)
        for data in blocks:
            reader.read_block(data)


# --------------------------------------------------------------------------------------------
# Microdata

# Properties through which an item still describes the page's own product. An item reached through
# any other property (isRelatedTo, isSimilarTo, itemListElement, review...) is somebody else's.
_OWN_ITEM_PROPS = frozenset({"offers", "mainEntity", "about", "hasVariant", "itemOffered"})
_MICRODATA_PROPS = (
    "price",
    "lowPrice",
    "highPrice",
    "offerCount",
    "priceCurrency",
    "availability",
    "sku",
    "gtin",
    "gtin8",
    "gtin12",
    "gtin13",
    "gtin14",
)
# Few broad attribute tests are much cheaper for lexbor than one test per property name;
# the exact names are checked when the values are read.
_MICRODATA_QUERY = (
    '[itemprop*="rice"], [itemprop*="gtin"], [itemprop~="sku"], [itemprop~="availability"], [itemprop~="offerCount"]'
)
_MICRODATA_PROP_SET = frozenset(_MICRODATA_PROPS)


@dataclass(slots=True)
class _Item:
    types: set[str]
    own: bool  # the page's product or an offer of it
    props: dict[str, list[tuple[str | None, str | None]]]  # name -> [(machine value, text)]
    group: int = PAGE_GROUP


def _item_types(node: LexborNode) -> set[str]:
    itemtype = node.attributes.get("itemtype") or ""
    names = (t.rstrip("/").rsplit("/", 1)[-1] for t in itemtype.split())
    return {_TYPE_NAMES.get(n.casefold(), n) for n in names}


def _owner(node: LexborNode, scopes: set[int]) -> LexborNode | None:
    parent = node.parent
    while parent is not None:
        if parent.mem_id in scopes:
            return parent
        parent = parent.parent
    return None


class _MicrodataScopes:
    """Decides lazily which items describe the page's own product.

    Only the items that own a price-like property are ever looked at, so reviews and
    navigation markup cost nothing; each item's verdict is remembered for its siblings.
    """

    def __init__(self, scopes: list[LexborNode]) -> None:
        self.scopes = {n.mem_id for n in scopes}
        self.own: dict[int, bool] = {}

    def is_own(self, item: LexborNode) -> bool:
        known = self.own.get(item.mem_id)
        if known is not None:
            return known
        owner = _owner(item, self.scopes)
        props = (item.attributes.get("itemprop") or "").split()
        # an item without itemprop is a top-level item by the microdata spec, wherever it sits
        own = owner is None or not props or (bool(_OWN_ITEM_PROPS.intersection(props)) and self.is_own(owner))
        self.own[item.mem_id] = own
        return own

    def top(self, item: LexborNode) -> LexborNode:
        """The outermost item that ``item`` (an own item) belongs to: the product it describes."""
        while True:
            owner = _owner(item, self.scopes)
            if owner is None or not self.is_own(owner):
                return item
            item = owner


def _read_microdata(
    tree: LexborHTMLParser, item_scopes: list[LexborNode], out: _Structured, rules: ExtractionRules
) -> None:
    nodes = tree.css(_MICRODATA_QUERY)
    if not nodes:
        return
    scopes = _MicrodataScopes(item_scopes)
    items: dict[int, _Item] = {}
    groups: dict[int, int] = {}  # top item's mem_id -> group
    for node in nodes:
        owner = _owner(node, scopes.scopes)
        if owner is None or not scopes.is_own(owner):
            continue
        item = items.get(owner.mem_id)
        if item is None:
            top = scopes.top(owner)
            group = groups.get(top.mem_id)
            if group is None:
                group = groups[top.mem_id] = len(out.groups)
                out.groups[group] = _Group("microdata", [], [], node=top, listed=in_listing(top))
            item = items[owner.mem_id] = _Item(types=_item_types(owner), own=True, props={}, group=group)
        attrs = node.attributes
        machine = attrs.get("content")
        if machine is None:
            machine = attrs.get("href") or attrs.get("value") or attrs.get("datetime")
        text = None if machine is not None else node.text(deep=True, separator=" ", strip=True)
        for name in (attrs.get("itemprop") or "").split():
            if name in _MICRODATA_PROP_SET:
                item.props.setdefault(name, []).append((machine, text))
    for item in items.values():
        _read_microdata_item(item, out, rules)


def _read_microdata_item(item: _Item, out: _Structured, rules: ExtractionRules) -> None:
    label = (
        _first(item.types & (_PRODUCT_TYPES | _OFFER_TYPES)) if item.types & (_PRODUCT_TYPES | _OFFER_TYPES) else "item"
    )
    for name in ("gtin", "gtin8", "gtin12", "gtin13", "gtin14"):
        for machine, text in item.props.get(name, []):
            value = (machine or text or "").strip()
            if value:
                out.gtins.append(value)
    for machine, text in item.props.get("sku", []):
        value = (machine or text or "").strip()
        if value:
            out.skus.append(value)
    item_stock: bool | None = None
    for machine, text in item.props.get("availability", []):
        available = _parse_availability(machine if machine is not None else text)
        if available is not None:
            out.availability.append(available)
            item_stock = available
    currencies = [normalize_currency(m or t) for m, t in item.props.get("priceCurrency", [])]
    currency = next((c for c in currencies if c), None)

    def add(name: str) -> list[Decimal]:
        amounts = []
        for machine, text in item.props.get(name, []):
            source = f"microdata {label}.{name}"
            if machine is not None:
                amount = _structured_amount(machine, rules.decimal_separator)
                if amount is not None and not (_is_zero(amount) and item_stock is False):
                    found = _found(amount, currency, rules, "microdata", source)
                    found.group, found.offer_in_stock = item.group, item_stock
                    out.found.append(found)
                    amounts.append(amount)
            elif text:
                detail = parse_price_detail(
                    text, decimal_separator=rules.decimal_separator, default_currency=rules.currency
                )
                if detail is not None and not (_is_zero(detail[0]) and item_stock is False):
                    # the item's priceCurrency outranks a symbol guessed from the visible text
                    explicit = currency is not None or detail[2]
                    found = _Found(detail[0], currency or detail[1], explicit, "microdata", source, item.group)
                    found.offer_in_stock = item_stock
                    out.found.append(found)
                    amounts.append(detail[0])
        return amounts

    prices = add("price")
    if "AggregateOffer" in item.types or not prices:
        lows = add("lowPrice")
        highs = [h for h in add("highPrice") if h not in lows]
        counts = [(m or t or "").strip() for m, t in item.props.get("offerCount", [])]
        if lows and highs and counts != ["1"]:
            out.unsettled.append(
                (item.group, f"microdata {label} gives a price range (lowPrice {lows[0]}, highPrice {highs[0]})")
            )
        elif lows and not highs and counts != ["1"] and not prices:
            out.unsettled.append((item.group, f"microdata {label} gives only a lowPrice ({lows[0]})"))


# --------------------------------------------------------------------------------------------
# OpenGraph / product meta tags

_META_QUERY = 'meta[property^="product:"], meta[property^="og:"], meta[name^="product:"]'
_JSONLD_QUERY = 'script[type="application/ld+json" i]'
# Every element that can start structured data, in one walk of the tree: each walk costs about as
# much (~50 us on a 30 KB page) as six substring searches of the raw page would.
_STRUCTURED_QUERY = f"{_JSONLD_QUERY}, [itemscope], {_META_QUERY}"


def _read_structured(tree: LexborHTMLParser, out: _Structured, rules: ExtractionRules) -> None:
    """JSON-LD, microdata and OpenGraph: whatever the page has of them."""
    scripts: list[LexborNode] = []
    scopes: list[LexborNode] = []
    metas: list[LexborNode] = []
    for node in tree.css(_STRUCTURED_QUERY):
        if "itemscope" in node.attributes:
            scopes.append(node)
        tag = node.tag
        if tag == "script":
            scripts.append(node)
        elif tag == "meta":
            metas.append(node)
    if scripts:
        _read_jsonld(scripts, out, rules)
    if scopes:
        _read_microdata(tree, scopes, out, rules)
    if metas:
        _read_opengraph(metas, out, rules)


def _read_opengraph(metas: list[LexborNode], out: _Structured, rules: ExtractionRules) -> None:
    tags: dict[str, list[str]] = {}
    for node in metas:
        attrs = node.attributes
        key = (attrs.get("property") or attrs.get("name") or "").strip().lower()
        content = attrs.get("content")
        if content is not None and content.strip():
            tags.setdefault(key, []).append(content.strip())
    # a sale price is what the shopper pays now; product:price then holds the regular price
    stock = {_parse_availability(v) for key in ("product:availability", "og:availability") for v in tags.get(key, [])}
    for prefix in ("product:sale_price", "og:sale_price", "product:price", "og:price"):
        amounts = tags.get(f"{prefix}:amount")
        if not amounts:
            continue
        currencies = [normalize_currency(c) for c in tags.get(f"{prefix}:currency", [])]
        for index, raw in enumerate(amounts):
            amount = _structured_amount(raw, rules.decimal_separator)
            # 0 beside out of stock (its own tag, else what JSON-LD and microdata said) is no price
            out_of_stock = stock == {False} or (not stock and bool(out.availability) and not any(out.availability))
            if amount is None or (_is_zero(amount) and out_of_stock):
                continue
            currency = currencies[index] if index < len(currencies) else (currencies[0] if currencies else None)
            out.found.append(_found(amount, currency, rules, "opengraph", f"OpenGraph {prefix}:amount"))
        if prefix.endswith("sale_price"):
            break
    for key in ("product:availability", "og:availability"):
        for value in tags.get(key, []):
            available = _parse_availability(value)
            if available is not None:
                out.availability.append(available)
    for key in ("product:gtin", "product:ean", "product:upc", "product:isbn"):
        out.gtins.extend(tags.get(key, []))
    out.skus.extend(tags.get("product:retailer_item_id", []))


# --------------------------------------------------------------------------------------------
# Configured selectors


def _read_selector(tree: LexborHTMLParser, rules: ExtractionRules) -> tuple[list[_Found], str]:
    """Candidates from the configured price selector, and what happened, for the message."""
    selector = rules.price or ""
    try:
        nodes = tree.css(selector)
    except SelectolaxError:
        return [], f"price selector {selector!r} is not a valid CSS selector"
    if not nodes:
        return [], f"price selector {selector!r} matched nothing"
    found: list[_Found] = []
    for index, node in enumerate(nodes, start=1):
        if is_ignored_element(node) or inside_struck_text(node):
            continue
        text = price_text(node, rules.decimal_separator)
        detail = parse_price_detail(text, decimal_separator=rules.decimal_separator, default_currency=rules.currency)
        if detail is not None:
            source = f"selector {selector!r} #{index}" if len(nodes) > 1 else f"selector {selector!r}"
            found.append(_Found(detail[0], detail[1], detail[2], "selector", source))
    if not found:
        return [], f"price selector {selector!r} matched {len(nodes)} element(s) but none held a price"
    return found, ""


# --------------------------------------------------------------------------------------------
# Stock rules


class _PageText:
    """The page's visible body text in lower case, built at most once and only if a ``text:`` rule
    needs it."""

    def __init__(self, tree: LexborHTMLParser) -> None:
        self.tree = tree
        self.value: str | None = None

    def get(self) -> str:
        if self.value is None:
            body = self.tree.body
            if body is None:
                self.value = ""
            else:
                # runs after everything else has read the tree, so removing these is harmless
                body.strip_tags(["script", "style", "noscript", "template"])
                self.value = body.text(deep=True, separator=" ").lower()
        return self.value


@functools.lru_cache(maxsize=256)
def _text_pattern(pattern: str) -> re.Pattern[str] | None:
    # Words separated by any whitespace spare normalising the whole page text, and matching lower
    # case against the lower-cased text lets the regex engine scan for the first word at C speed
    # (re.IGNORECASE tries a match at every character: about 5x slower on a 10 KB page).
    words = pattern.lower().split()
    if not words:
        return None
    return re.compile(r"\s+".join(re.escape(word) for word in words))


def _rule_matches(rule: str | None, tree: LexborHTMLParser, page_text: _PageText) -> bool:
    if not rule or not rule.strip():
        return False
    if rule.startswith("text:"):
        pattern = _text_pattern(rule[5:])
        return pattern is not None and pattern.search(page_text.get()) is not None
    try:
        return tree.css_first(rule) is not None
    except SelectolaxError:
        logger.warning("stock rule %r is not a valid CSS selector; ignoring it", rule)
        return False


# --------------------------------------------------------------------------------------------
# Deciding


def _distinct(found: list[_Found]) -> list[_Found]:
    """One entry per different price; same amount with one stated currency counts once."""
    by_amount: dict[Decimal, list[_Found]] = {}
    for f in found:
        by_amount.setdefault(f.amount, []).append(f)
    distinct: list[_Found] = []
    for group in by_amount.values():
        explicit: dict[str | None, _Found] = {}
        for f in group:
            if f.explicit:
                explicit.setdefault(f.currency, f)
        if explicit:
            distinct.extend(explicit.values())
        else:
            distinct.append(group[0])
    return distinct


def _single(values: list[str], key: Any = None) -> str | None:
    """The value if all sources agree on it, else None (never pick one of several)."""
    if not values:
        return None
    normalized = {key(v) if key else v for v in values}
    return values[0] if len(normalized) == 1 else None


def _describe(f: _Found) -> str:
    return f"{f.amount} {f.currency or '(no currency)'} from {f.source}"


def _invalid(message: str) -> Extraction:
    return Extraction(INVALID_CONTENT, None, None, None, None, (), None, None, message)


def extract(
    body: str | bytes,
    rules: ExtractionRules = ExtractionRules(),
    *,
    encoding: str | None = None,
    url: str | None = None,
    tree: LexborHTMLParser | None = None,
) -> Extraction:
    """Extract the current price, currency, stock state, GTIN and SKU from a product page.

    ``body`` may be bytes (decoded with ``encoding``, e.g. the HTTP charset, else the page's
    ``<meta charset>``, else UTF-8 with replacement) or str; ``url`` is the page's address when
    known (it helps find the page's own product and selected variant). ``tree`` is ``body``
    already parsed, for a caller that reads the same page for more than its price (discovery):
    the page is parsed once; it must be the parse of this body, and may be altered here.

    Order of evidence: the configured price selector; then the configured JSON island
    (``json_script`` + ``json_price``); then the page's structured data (JSON-LD, microdata,
    OpenGraph) about its own product. When structured sources disagree, the page settles it:
    the product matching the canonical URL or ``h1`` over related ones, the variant the page
    selects, and the one candidate the page shows as its current price over those it shows
    struck through or labelled old/was. What stays open is ``ambiguous`` with every candidate;
    a price the page only shows struck through is not trusted either. An AggregateOffer
    counts as one price only when lowPrice == highPrice or it has exactly one offer; a price
    of 0 beside OutOfStock is no price. None gives ``not_found``; a body with NUL bytes in its
    first KB is ``invalid_content``. Never raises for bad input.

    Stock: ``rules.out_of_stock`` matching wins over ``rules.in_stock``; then the JSON island's
    ``json_in_stock``; then the page's schema.org availability when all its sources agree.
    InStock, LimitedAvailability, InStoreOnly and OnlineOnly are in stock; OutOfStock, SoldOut,
    Discontinued, and also PreOrder, PreSale and BackOrder (the item cannot be had now) are
    not. Anything else leaves ``in_stock`` None.
    """
    html: bytes | str
    if isinstance(body, bytes | bytearray | memoryview):
        html = _utf8_or_decoded(bytes(body), encoding)
    elif isinstance(body, str):
        html = body
    else:
        raise TypeError(f"body must be str or bytes, not {type(body).__name__}")
    if (b"\x00" in html[:1024]) if isinstance(html, bytes) else ("\x00" in html[:1024]):
        return _invalid("body is not HTML or text (NUL bytes near the start)")
    if not html.strip():
        return Extraction(NOT_FOUND, None, None, None, None, (), None, None, "empty page")
    if tree is None:
        try:
            tree = LexborHTMLParser(html)
        except UnicodeEncodeError:  # lone surrogates in a str body
            tree = LexborHTMLParser(html.encode("utf-8", errors="replace"))  # type: ignore[union-attr]

    configured: list[_Found] = []
    notes: list[str] = []
    island_stock: bool | None = None
    structured = _new_structured()
    try:
        if rules.price:
            configured, note = _read_selector(tree, rules)
            if note:
                notes.append(note)
        if rules.json_script:
            island_found, island_stock, note = _read_island(tree, rules)
            if note:
                notes.append(note)
            configured = configured or island_found
        _read_structured(tree, structured, rules)
    except MoneyRangeError as exc:
        # A page that states a price pricemon cannot keep is not trusted for any of its prices.
        return Extraction(INVALID_PRICE, None, None, None, None, (), None, None, str(exc))

    page_text = _PageText(tree)
    if _rule_matches(rules.out_of_stock, tree, page_text):
        in_stock: bool | None = False
    elif _rule_matches(rules.in_stock, tree, page_text):
        in_stock = True
    elif island_stock is not None:
        in_stock = island_stock
    else:
        in_stock = _single_bool(structured.availability)
    gtin = _single(structured.gtins, key=lambda g: g.strip().lstrip("0"))
    sku = _single(structured.skus, key=str.strip)

    if configured:
        found, unsettled, settled = configured, list[str](), ""
    else:
        found, unsettled, settled = _settle(structured, tree, rules, PageHints(tree, url))
    candidates = tuple(Candidate(f.amount, f.currency, f.method, f.source) for f in found)
    distinct = _distinct([f for f in found if f.method != "page"])
    prefix = "".join(f"{note}; " for note in notes)

    if not distinct:
        what = "no JSON-LD, microdata or OpenGraph price in the page"
        return Extraction(NOT_FOUND, None, None, in_stock, None, candidates, gtin, sku, f"{prefix}{what}")
    if len(distinct) > 1 or unsettled:
        reasons = unsettled + (
            [f"{len(distinct)} different prices: " + "; ".join(_describe(f) for f in distinct)]
            if len(distinct) > 1
            else []
        )
        hint = "" if configured else "; configure a price selector to pick one"
        return Extraction(
            AMBIGUOUS, None, None, in_stock, None, candidates, gtin, sku, f"{prefix}{'; '.join(reasons)}{hint}"
        )
    chosen = distinct[0]
    return Extraction(
        OK,
        chosen.amount,
        chosen.currency,
        in_stock,
        chosen.method,
        candidates,
        gtin,
        sku,
        f"{prefix}price from {chosen.source}{settled}",
    )


def _read_island(tree: LexborHTMLParser, rules: ExtractionRules) -> tuple[list[_Found], bool | None, str]:
    """Prices and stock from the configured JSON island, and what happened, for the message."""
    island = read_island(tree, rules.json_script or "", rules.json_price, rules.json_currency, rules.json_in_stock)
    code = island.currency if isinstance(island.currency, str) else None
    currency = normalize_currency(code)
    found: list[_Found] = []
    source = f"JSON {rules.json_script!r} {rules.json_price!r}"
    for value in island.prices:
        amount = _structured_amount(value, rules.decimal_separator)
        if amount is not None:
            found.append(_found(amount, currency, rules, "json", source))
    stock = island.in_stock
    if isinstance(stock, list):
        stock = stock[0] if len(stock) == 1 else None
    in_stock: bool | None
    if isinstance(stock, bool):
        in_stock = stock
    elif isinstance(stock, int | Decimal):
        in_stock = stock > 0
    else:
        in_stock = _parse_availability(stock.replace("_", " ") if isinstance(stock, str) else stock)
        if in_stock is None and isinstance(stock, str) and stock.strip().lower() in ("true", "false"):
            in_stock = stock.strip().lower() == "true"
    note = island.note
    if rules.json_price and island.prices and not found:
        note = f"json_price {rules.json_price!r} found {island.prices[0]!r}, not a price"
    return found, in_stock, note


# --------------------------------------------------------------------------------------------
# Settling what the structured data leaves open, with evidence from the page itself


def _settle(
    structured: _Structured, tree: LexborHTMLParser, rules: ExtractionRules, hints: PageHints
) -> tuple[list[_Found], list[str], str]:
    """The structured candidates that describe what the page sells now, the reasons that keep
    them ambiguous, and a note on how the page settled it (for the message)."""
    found = _with_thousands_readings(structured.found)
    unsettled = structured.unsettled
    if found and len(structured.groups) <= 1 and not unsettled and all(f.amount == found[0].amount for f in found):
        # the common case: one product, one price; only a struck-through display can contradict it
        if structured.groups and structured.groups[0].listed:
            return [], [], ""
        if len(_distinct(found)) > 1:  # one amount in several currencies
            return _settle_sources(found, [], structured, tree, rules, [])
        reasons: list[str] = []
        return _contradicted(found, reasons, structured, tree, rules), reasons, ""
    said: list[str] = []
    if len(structured.groups) > 1 or any(g.listed for g in structured.groups.values()):
        main = _main_groups(structured.groups, {f.group for f in found}, hints)
        kept = [f for f in found if f.group == PAGE_GROUP or f.group in main]
        if len(kept) < len(found):
            said.append("other products on the page ignored")
        found = kept
        unsettled = [(g, reason) for g, reason in unsettled if g == PAGE_GROUP or g in main]
    reasons = [reason for _, reason in unsettled]

    for group in {f.group for f in found if f.group != PAGE_GROUP}:
        offers = [f for f in found if f.group == group]
        if len({f.amount for f in offers}) < 2:
            continue
        chosen = _selected_variant(offers, structured.groups[group], hints)
        if chosen is not None:
            found = [f for f in found if f.group != group or f in chosen]
            said.append(f"the page selects the variant of {chosen[0].source}")

    return _settle_sources(found, reasons, structured, tree, rules, said)


# Currencies with three decimal places, where "1.299" is one dinar and 299 fils.
_THREE_DECIMAL_CURRENCIES = frozenset({"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"})


def _with_thousands_readings(found: list[_Found]) -> list[_Found]:
    """``found``, plus the thousands reading of amounts like "1.299" or 12.990: shops that format
    numbers the German way write 1299 so in structured data too. Only the page can then say which
    it is; without its word the price stays ambiguous."""
    extra = []
    for f in found:
        exponent = f.amount.as_tuple().exponent
        if exponent == -3 and 1 <= f.amount < 1000 and f.currency not in _THREE_DECIMAL_CURRENCIES:
            extra.append(
                _Found(
                    f.amount.scaleb(3).quantize(Decimal(1)),
                    f.currency,
                    f.explicit,
                    f.method,
                    f"{f.source} read as thousands",
                    f.group,
                    f.offer_url,
                    f.offer_sku,
                    f.offer_in_stock,
                )
            )
    return found + extra if extra else found


def _settle_sources(
    found: list[_Found],
    reasons: list[str],
    structured: _Structured,
    tree: LexborHTMLParser,
    rules: ExtractionRules,
    said: list[str],
) -> tuple[list[_Found], list[str], str]:
    """Several prices for the page's product: the one the page shows as current, if only one is."""
    distinct = _distinct(found)
    if len(distinct) > 1 and not reasons:
        shown = shown_prices(tree, rules.decimal_separator, rules.currency)
        winner = _shown_as_current(distinct, shown)
        if winner is not None:
            found = [f for f in found if _same_price(f, winner)]
            said.append(f"the page shows {winner.amount} as its current price")
    elif len(distinct) == 1 and not reasons:
        found = _contradicted(found, reasons, structured, tree, rules)
    return found, reasons, "".join(f"; {s}" for s in said)


def _contradicted(
    found: list[_Found], reasons: list[str], structured: _Structured, tree: LexborHTMLParser, rules: ExtractionRules
) -> list[_Found]:
    """``found`` (one price), plus the page's current prices and a reason in ``reasons`` when the
    page shows that price only struck through: structured data that still says the price
    before a discount. Neither is then trusted."""
    only = found[0]
    if not is_money(only.amount):
        return found  # out of range: not this check's business, and too big to format cheaply
    # Finding elements by tag name costs a fifth of a CSS query for them (<strike> is HTML 4 and
    # rare); this runs on every page read from structured data.
    struck = [*tree.tags("del"), *tree.tags("s")]
    if not struck or not struck_amounts_may_include(struck, only.amount):
        return found
    shown = shown_prices(tree, rules.decimal_separator, rules.currency)
    current = [s for s in shown if s.current]
    if any(_shows(s, only) for s in current) or not any(_shows(s, only) for s in shown if not s.current):
        return found
    others = _distinct([_Found(s.amount, s.currency, s.explicit, "page", f"page text {s.text!r}") for s in current])
    if others:
        reasons.append(
            f"{_describe(only)} is shown struck through or as a former price; the page shows "
            + ", ".join(str(o.amount) for o in others)
            + " as current"
        )
        return found + others
    return found


def _main_groups(groups: dict[int, _Group], priced: set[int], hints: PageHints) -> set[int]:
    """The products that are the page's own: matching its URL or heading, not in a list of others.

    Only products with a price compete (a review widget's bare Product does not push the shop's
    own markup aside), unless the page's product is plainly one without a price and every priced
    one matches nothing: then those are somebody else's."""
    scores: dict[int, int] = {}
    for key, group in groups.items():
        if group.listed:
            continue
        score = 4 if group.urls and hints.url_matches(group.urls) else 0
        names = group.names
        if group.node is not None:
            if hints.contains_h1(group.node):
                score = max(score, 2)
            name_node = group.node.css_first('[itemprop~="name"]')
            if name_node is not None:
                names = [name_node.attributes.get("content") or name_node.text(deep=True, separator=" ", strip=True)]
        scores[key] = max(score, hints.name_score(names))
    competing = {key: score for key, score in scores.items() if key in priced}
    if not competing:
        return set()  # every priced product on the page sits in a list of other products
    best = max(competing.values())
    if best == 0:
        if any(score >= 2 for key, score in scores.items() if key not in priced):
            return set()
        return set(competing)
    threshold = 2 if best >= 2 else 1
    return {key for key, score in competing.items() if score >= threshold}


def _selected_variant(offers: list[_Found], group: _Group, hints: PageHints) -> list[_Found] | None:
    """The offers of the variant the page has selected, when they give one price."""
    chosen = [
        f
        for f in offers
        if f.offer_url and any("?" in u and same_page(f.offer_url, u, keep_query=True) for u in hints.urls)
    ]
    if not chosen and any(f.offer_url or f.offer_sku for f in offers) and hints.selected_variants:
        selected = hints.selected_variants
        chosen = [f for f in offers if (f.offer_url and variant_ids(f.offer_url) & selected) or f.offer_sku in selected]
    if not chosen and group.sku:
        chosen = [f for f in offers if f.offer_sku == group.sku]
    if chosen and len({f.amount for f in chosen}) == 1:
        return chosen
    return None


def _shows(shown: Shown, f: _Found) -> bool:
    return shown.amount == f.amount and (not shown.explicit or f.currency is None or shown.currency == f.currency)


def _same_price(f: _Found, winner: _Found) -> bool:
    return f.amount == winner.amount and (f.currency == winner.currency or not f.explicit)


def _shown_as_current(distinct: list[_Found], shown: list[Shown]) -> _Found | None:
    """The one candidate the page shows as its current price, if exactly one is."""
    current = [s for s in shown if s.current]
    winners = [f for f in distinct if any(_shows(s, f) for s in current)]
    return winners[0] if len(winners) == 1 else None


def _single_bool(values: list[bool]) -> bool | None:
    distinct = set(values)
    return values[0] if len(distinct) == 1 else None
