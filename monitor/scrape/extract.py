"""Find the one current price, its currency, stock state and product identifiers in a product page.

Pure functions over an HTML body: the competitor's configured selectors win; otherwise the page's
structured data (JSON-LD, microdata, OpenGraph product tags) is read. Plain text is never scanned
for prices without a selector, and when several different prices remain the answer is
``ambiguous`` rather than a guess, because a wrong price that looks right is the worst output a
price monitor can give.
"""

from __future__ import annotations

import codecs
import functools
import json
import logging
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from selectolax.lexbor import LexborHTMLParser, LexborNode, SelectolaxError

from monitor.money import MoneyRangeError, check_money
from monitor.scrape.price import normalize_currency, parse_price_detail

logger = logging.getLogger(__name__)

__all__ = ["Candidate", "Extraction", "ExtractionRules", "extract", "validate_selector"]

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


@dataclass(frozen=True, slots=True)
class Candidate:
    price: Decimal
    currency: str | None
    method: str  # selector / jsonld / microdata / opengraph
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


@dataclass(slots=True)
class _Found:
    amount: Decimal
    currency: str | None
    explicit: bool  # the page itself named the currency (not the configured default)
    method: str
    source: str


@dataclass(slots=True)
class _Structured:
    """Everything the structured data of one page says about its own product."""

    found: list[_Found]
    availability: list[bool]
    gtins: list[str]
    skus: list[str]
    unsettled: list[str]  # reasons that make the price ambiguous even with one candidate


def _new_structured() -> _Structured:
    return _Structured(found=[], availability=[], gtins=[], skus=[], unsettled=[])


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
    {"Product", "ProductModel", "IndividualProduct", "SomeProducts", "ProductGroup", "Vehicle", "Car", "Motorcycle"}
)
_OFFER_TYPES = frozenset({"Offer", "AggregateOffer"})
_PAGE_TYPES = frozenset({"WebPage", "ItemPage", "ProductPage", "CollectionPage"})
# price specifications that describe a former or recommended price, not what the shopper pays now
_NOT_CURRENT_PRICE_TYPES = ("ListPrice", "StrikethroughPrice", "MSRP", "SRP", "InvoicePrice", "MinimumAdvertisedPrice")
_GTIN_KEYS = ("gtin", "gtin13", "gtin12", "gtin14", "gtin8", "ean", "isbn")

_JSON_COMMENT = re.compile(r"<!--|-->|^\s*//\s*<!\[CDATA\[|//\s*\]\]>\s*$|<!\[CDATA\[|\]\]>", re.M)
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")


def _load_jsonld(raw: str) -> Any:
    try:
        return json.loads(raw, parse_float=Decimal, strict=False)
    except ValueError:
        pass
    # Hand-written blocks often carry HTML comments, CDATA wrappers or trailing commas.
    cleaned = _TRAILING_COMMA.sub(r"\1", _JSON_COMMENT.sub("", raw))
    try:
        return json.loads(cleaned, parse_float=Decimal, strict=False)
    except ValueError:
        return None


def _types(node: dict[str, Any]) -> set[str]:
    raw = node.get("@type")
    values = raw if isinstance(raw, list) else [raw]
    return {v.rsplit("/", 1)[-1].rsplit(":", 1)[-1] for v in values if isinstance(v, str)}


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


class _JsonLdReader:
    def __init__(self, out: _Structured, rules: ExtractionRules) -> None:
        self.out = out
        self.rules = rules
        self.ids: dict[str, dict[str, Any]] = {}

    def read_block(self, data: Any) -> None:
        roots: list[dict[str, Any]] = []
        for item in _as_list(data):
            if not isinstance(item, dict):
                continue
            graph = item.get("@graph")
            if isinstance(graph, list | dict):
                roots.extend(g for g in _as_list(graph) if isinstance(g, dict))
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
        if isinstance(value, dict) and set(value) == {"@id"}:
            return self.ids.get(value["@id"], value)
        return value

    def read_root(self, node: dict[str, Any], depth: int = 0) -> None:
        types = _types(node)
        if types & _PRODUCT_TYPES:
            self.read_product(node, _first(types & _PRODUCT_TYPES))
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
        if sku:
            self.out.skus.append(sku)
        offers = [self.resolve(o) for o in _as_list(node.get("offers"))]
        for index, offer in enumerate(offers):
            if isinstance(offer, dict):
                suffix = f"[{index}]" if len(offers) > 1 or isinstance(node.get("offers"), list) else ""
                self.read_offer(offer, f"JSON-LD {label}.offers{suffix}")
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
        price = offer.get("price")
        if price is None:
            self.read_price_specification(offer, source, currency)
            return
        self.add(price, currency, source)

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
        if low is not None:
            self.add(low, currency, f"{source}.lowPrice")
        if high is not None and high != low:
            self.add(high, currency, f"{source}.highPrice")
        if low is not None and not single:
            self.out.unsettled.append(f"{source} gives a price range (lowPrice {low}, highPrice {high})")

    def read_price_specification(self, offer: dict[str, Any], source: str, currency: str | None) -> None:
        for index, spec in enumerate(_as_list(offer.get("priceSpecification"))):
            if not isinstance(spec, dict) or spec.get("price") is None:
                continue
            price_type = spec.get("priceType")
            if isinstance(price_type, str) and price_type.endswith(_NOT_CURRENT_PRICE_TYPES):
                continue
            spec_currency = normalize_currency(_text_value(spec.get("priceCurrency"))) or currency
            self.add(spec["price"], spec_currency, f"{source}.priceSpecification[{index}]")

    def add(self, value: Any, currency: str | None, source: str) -> None:
        amount = _structured_amount(value, self.rules.decimal_separator)
        if amount is not None:
            self.out.found.append(_found(amount, currency, self.rules, "jsonld", source))


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
        data = _load_jsonld(raw)
        if data is None:
            logger.debug("skipping unparseable JSON-LD block (%d chars)", len(raw))
            continue
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


def _item_types(node: LexborNode) -> set[str]:
    itemtype = node.attributes.get("itemtype") or ""
    return {t.rstrip("/").rsplit("/", 1)[-1] for t in itemtype.split()}


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


def _read_microdata(
    tree: LexborHTMLParser, item_scopes: list[LexborNode], out: _Structured, rules: ExtractionRules
) -> None:
    nodes = tree.css(_MICRODATA_QUERY)
    if not nodes:
        return
    scopes = _MicrodataScopes(item_scopes)
    items: dict[int, _Item] = {}
    for node in nodes:
        owner = _owner(node, scopes.scopes)
        if owner is None or not scopes.is_own(owner):
            continue
        item = items.get(owner.mem_id)
        if item is None:
            item = items[owner.mem_id] = _Item(types=_item_types(owner), own=True, props={})
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
    for machine, text in item.props.get("availability", []):
        available = _parse_availability(machine if machine is not None else text)
        if available is not None:
            out.availability.append(available)
    currencies = [normalize_currency(m or t) for m, t in item.props.get("priceCurrency", [])]
    currency = next((c for c in currencies if c), None)

    def add(name: str) -> list[Decimal]:
        amounts = []
        for machine, text in item.props.get(name, []):
            source = f"microdata {label}.{name}"
            if machine is not None:
                amount = _structured_amount(machine, rules.decimal_separator)
                if amount is not None:
                    out.found.append(_found(amount, currency, rules, "microdata", source))
                    amounts.append(amount)
            elif text:
                detail = parse_price_detail(
                    text, decimal_separator=rules.decimal_separator, default_currency=rules.currency
                )
                if detail is not None:
                    # the item's priceCurrency outranks a symbol guessed from the visible text
                    explicit = currency is not None or detail[2]
                    out.found.append(_Found(detail[0], currency or detail[1], explicit, "microdata", source))
                    amounts.append(detail[0])
        return amounts

    prices = add("price")
    if "AggregateOffer" in item.types or not prices:
        lows = add("lowPrice")
        highs = [h for h in add("highPrice") if h not in lows]
        counts = [(m or t or "").strip() for m, t in item.props.get("offerCount", [])]
        if lows and highs and counts != ["1"]:
            out.unsettled.append(f"microdata {label} gives a price range (lowPrice {lows[0]}, highPrice {highs[0]})")
        elif lows and not highs and counts != ["1"] and not prices:
            out.unsettled.append(f"microdata {label} gives only a lowPrice ({lows[0]})")


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
        if node.tag == "script":
            scripts.append(node)
        elif node.tag == "meta":
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
    for prefix in ("product:sale_price", "og:sale_price", "product:price", "og:price"):
        amounts = tags.get(f"{prefix}:amount")
        if not amounts:
            continue
        currencies = [normalize_currency(c) for c in tags.get(f"{prefix}:currency", [])]
        for index, raw in enumerate(amounts):
            amount = _structured_amount(raw, rules.decimal_separator)
            if amount is None:
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

_SKIPPED_TAGS = frozenset({"del", "s", "strike", "script", "style", "template", "noscript"})
_OLD_PRICE_WORDS = "old|was|regular|strike|compare|crossed|original|before|msrp|rrp"
_OLD_PRICE_CLASS = re.compile(rf"(?:^|[-_])(?:{_OLD_PRICE_WORDS})")
_OLD_PRICE_CAMEL = re.compile(r"[a-z](?:Old|Was|Regular|Strike|Compare|Crossed|Original|Before)")
# utility classes that set a font weight, not a price role ("font-regular", "fw-regular")
_TYPOGRAPHY_PREFIXES = ("font", "fw-", "text-", "weight")
_HIDDEN_CLASSES = frozenset({"sr-only", "screen-reader-text", "visually-hidden", "visuallyhidden"})


def _is_old_price_class(class_attr: str) -> bool:
    for token in class_attr.split():
        lower = token.lower()
        if lower in _HIDDEN_CLASSES:
            return True
        if lower.startswith(_TYPOGRAPHY_PREFIXES):
            continue
        if _OLD_PRICE_CLASS.search(lower) or _OLD_PRICE_CAMEL.search(token) or lower == "line-through":
            return True
    return False


def _is_ignored_element(node: LexborNode) -> bool:
    if node.tag in _SKIPPED_TAGS:
        return True
    attrs = node.attributes
    if "hidden" in attrs:
        return True
    class_attr = attrs.get("class")
    return class_attr is not None and _is_old_price_class(class_attr)


def _inside_struck_text(node: LexborNode) -> bool:
    parent = node.parent
    while parent is not None:
        if parent.tag in ("del", "s", "strike"):
            return True
        parent = parent.parent
    return False


def _collect_text(node: LexborNode, parts: list[str], decimal_separator: str | None) -> None:
    for child in node.iter(include_text=True, skip_empty=True):
        if child.is_text_node:
            text = (child.text_content or "").strip()
            if text:
                parts.append(text)
        elif child.is_element_node and not _is_ignored_element(child):
            if child.tag == "sup":
                cents = child.text(deep=True, strip=True)
                # "19<sup>99</sup>": two digits raised after the whole amount are the cents
                if len(cents) == 2 and cents.isdigit() and parts and parts[-1][-1:].isdigit():
                    joined = "".join(parts)
                    parts.append(decimal_separator or ("," if "." in joined else "."))
                    parts.append(cents)
                    continue
            _collect_text(child, parts, decimal_separator)


def _price_text(node: LexborNode, decimal_separator: str | None) -> str:
    parts: list[str] = []
    _collect_text(node, parts, decimal_separator)
    text = "".join(parts)
    if not text:
        attrs = node.attributes
        text = attrs.get("content") or attrs.get("value") or ""
    return text


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
        if _is_ignored_element(node) or _inside_struck_text(node):
            continue
        text = _price_text(node, rules.decimal_separator)
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
    body: str | bytes, rules: ExtractionRules = ExtractionRules(), *, encoding: str | None = None
) -> Extraction:
    """Extract the current price, currency, stock state, GTIN and SKU from a product page.

    ``body`` may be bytes (decoded with ``encoding``, e.g. the HTTP charset, else the page's
    ``<meta charset>``, else UTF-8 with replacement) or str. The configured price selector is
    tried first; if it matches no price, the page's JSON-LD, microdata and OpenGraph product
    data are read, ignoring related/similar products. Several different prices give
    ``ambiguous`` (an AggregateOffer counts as one price only when lowPrice == highPrice or it
    has exactly one offer), none gives ``not_found``; a body with NUL bytes in its first KB is
    ``invalid_content``. Never raises for bad input.

    Stock: ``rules.out_of_stock`` matching wins over ``rules.in_stock``; without a matching rule
    the page's schema.org availability is used when all its sources agree. InStock,
    LimitedAvailability, InStoreOnly and OnlineOnly are in stock; OutOfStock, SoldOut,
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
    try:
        tree = LexborHTMLParser(html)
    except UnicodeEncodeError:  # lone surrogates in a str body
        tree = LexborHTMLParser(html.encode("utf-8", errors="replace"))  # type: ignore[union-attr]

    selector_found: list[_Found] = []
    selector_note = ""
    structured = _new_structured()
    try:
        if rules.price:
            selector_found, selector_note = _read_selector(tree, rules)
        _read_structured(tree, structured, rules)
    except MoneyRangeError as exc:
        # A page that states a price pricemon cannot keep is not trusted for any of its prices.
        return Extraction(INVALID_PRICE, None, None, None, None, (), None, None, str(exc))

    page_text = _PageText(tree)
    if _rule_matches(rules.out_of_stock, tree, page_text):
        in_stock: bool | None = False
    elif _rule_matches(rules.in_stock, tree, page_text):
        in_stock = True
    else:
        in_stock = _single_bool(structured.availability)
    gtin = _single(structured.gtins, key=lambda g: g.strip().lstrip("0"))
    sku = _single(structured.skus, key=str.strip)

    found = selector_found or structured.found
    unsettled = [] if selector_found else structured.unsettled
    candidates = tuple(Candidate(f.amount, f.currency, f.method, f.source) for f in found)
    distinct = _distinct(found)
    prefix = f"{selector_note}; " if selector_note else ""

    if not distinct:
        what = "no JSON-LD, microdata or OpenGraph price in the page"
        return Extraction(NOT_FOUND, None, None, in_stock, None, candidates, gtin, sku, f"{prefix}{what}")
    if len(distinct) > 1 or unsettled:
        reasons = unsettled + (
            [f"{len(distinct)} different prices: " + "; ".join(_describe(f) for f in distinct)]
            if len(distinct) > 1
            else []
        )
        hint = "" if selector_found else "; configure a price selector to pick one"
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
        f"{prefix}price from {chosen.source}",
    )


def _single_bool(values: list[bool]) -> bool | None:
    distinct = set(values)
    return values[0] if len(distinct) == 1 else None
