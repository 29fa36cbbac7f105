"""What the page itself shows, for the extractor to settle what its structured data leaves open.

It reads the text of price elements (skipping struck-through and "old price" parts), finds the
prices the page shows as current or only as former ones, the page's own product (canonical URL,
``h1``) and the variant the page has selected. Nothing here decides a price: ``extract`` does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode

from monitor.scrape.price import parse_price_detail

__all__ = [
    "PageHints",
    "Shown",
    "in_listing",
    "inside_struck_text",
    "is_ignored_element",
    "price_text",
    "shown_prices",
    "struck_amounts_may_include",
]

_SKIPPED_TAGS = frozenset({"del", "s", "strike", "script", "style", "template", "noscript"})
_STRUCK_TAGS = ("del", "s", "strike")
_OLD_PRICE_WORDS = "old|was|regular|strike|compare|crossed|original|before|msrp|rrp|list-price|listprice"
_OLD_PRICE_CLASS = re.compile(rf"(?:^|[-_])(?:{_OLD_PRICE_WORDS})")
_OLD_PRICE_CAMEL = re.compile(r"[a-z](?:Old|Was|Regular|Strike|Compare|Crossed|Original|Before)")
# utility classes that set a font weight, not a price role ("font-regular", "fw-regular")
_TYPOGRAPHY_PREFIXES = ("font", "fw-", "text-", "weight")
_HIDDEN_CLASSES = frozenset({"sr-only", "screen-reader-text", "visually-hidden", "visuallyhidden"})
# an element holding only the cents of the price before it: "$229<span class="cents">99</span>"
_CENTS_CLASS = re.compile(r"cent|decimal|fraction|minor|penny|pence|kopek|(?:^|[-_])dec(?:$|[-_])", re.I)


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


def is_ignored_element(node: LexborNode) -> bool:
    """A struck-through, "old price", hidden or script element: not part of a current price's text."""
    if node.tag in _SKIPPED_TAGS:
        return True
    attrs = node.attributes
    if "hidden" in attrs:
        return True
    class_attr = attrs.get("class")
    return class_attr is not None and _is_old_price_class(class_attr)


def inside_struck_text(node: LexborNode) -> bool:
    parent = node.parent
    while parent is not None:
        if parent.tag in _STRUCK_TAGS:
            return True
        parent = parent.parent
    return False


def _is_cents_element(node: LexborNode) -> bool:
    if node.tag == "sup":
        return True
    class_attr = node.attributes.get("class")
    return class_attr is not None and _CENTS_CLASS.search(class_attr) is not None


def _collect_text(node: LexborNode, parts: list[str], decimal_separator: str | None) -> None:
    for child in node.iter(include_text=True, skip_empty=True):
        if child.is_text_node:
            text = (child.text_content or "").strip()
            if text:
                parts.append(text)
        elif child.is_element_node and not is_ignored_element(child):
            if parts and parts[-1][-1:].isdigit() and _is_cents_element(child):
                cents = child.text(deep=True, strip=True)
                # "19<sup>99</sup>", "$229<span class="cents">99</span>": two digits set apart after the
                # whole amount are its cents
                if len(cents) == 2 and cents.isdigit() and parts and parts[-1][-1:].isdigit():
                    joined = "".join(parts)
                    parts.append(decimal_separator or ("," if "." in joined else "."))
                    parts.append(cents)
                    continue
            _collect_text(child, parts, decimal_separator)


def price_text(node: LexborNode, decimal_separator: str | None) -> str:
    """The element's text as a price: struck-through and old-price parts left out, cents joined."""
    parts: list[str] = []
    _collect_text(node, parts, decimal_separator)
    text = "".join(parts)
    if not text:
        attrs = node.attributes
        text = attrs.get("content") or attrs.get("value") or ""
    return text


# --------------------------------------------------------------------------------------------
# Blocks that show other products

_LISTING_WORDS = re.compile(
    r"related|recommend|similar|carousel|upsell|up-sell|cross-?sell|also[-_ ]?(?:bought|viewed|like)|recently|"
    r"you[-_]may|others[-_]|bundle|swiper|slick|product-?list|product-?grid|products-?grid|product-?tile|"
    r"product-?card|mini-?cart",
    re.I,
)
_LISTING_TAGS = frozenset({"aside", "nav"})
# the page's own header and footer hold the basket and the shipping banner; a <header> inside the
# product's <article> or <main> holds its title and price
_CHROME_TAGS = frozenset({"header", "footer"})


def in_listing(node: LexborNode) -> bool:
    """Whether ``node`` sits in a list of other products (an ItemList, a carousel, "related", an
    aside) or in the page's own header or footer."""
    chrome = False
    parent: LexborNode | None = node
    while parent is not None and parent.tag not in ("body", "html"):
        tag = parent.tag
        if tag in _LISTING_TAGS:
            return True
        if tag in _CHROME_TAGS:
            chrome = True
        elif tag in ("main", "article"):
            chrome = False
        attrs = parent.attributes
        if parent is not node and "ItemList" in (attrs.get("itemtype") or ""):
            return True
        for key in ("class", "id"):
            value = attrs.get(key)
            if value and _LISTING_WORDS.search(value):
                return True
        parent = parent.parent
    return chrome


# --------------------------------------------------------------------------------------------
# Prices the page shows


@dataclass(frozen=True, slots=True)
class Shown:
    amount: Decimal
    currency: str | None
    explicit: bool  # the text named its currency
    current: bool  # shown as what the shopper pays now (not struck through, not labelled old/was/net)
    text: str


_INVISIBLE_TAGS = frozenset({"meta", "link", "input", "option", "select", "script", "template", "noscript", "style"})
_PRICE_ELEMENTS = (
    '[class*="price" i], [id*="price" i], [itemprop="price"], [data-price], .money, .amount, del, s, strike, ins'
)
_NUMBER = re.compile(r"\d+(?:[.,\s\u00a0\u202f'’]\d+)*")
# words that make a shown amount something else than the current price of the item ("regular" is
# not one: Shopify themes label the normal, current price "Regular price" for screen readers)
_NOT_CURRENT_LABEL = re.compile(
    r"\b(?:was|old|before|rrp|uvp|msrp|srp|statt|vorher|compare|list price|originally|instead|"
    r"excl|exkl|excluding|ex\.? vat|ex\.? tax|netto|net price|ohne mwst|hors taxe|ht|save|saving|you save|sparen|"
    r"from|ab|à partir|starting|per|each|/\s*(?:kg|g|l|ml|m|100|month|mo)|monthly|installments?)\b",
    re.I,
)


def _label_before(node: LexborNode) -> str:
    prev = node.prev
    while prev is not None:
        text = prev.text(deep=True, strip=True) if prev.is_element_node else (prev.text_content or "").strip()
        if text:
            return text[-40:]
        prev = prev.prev
    return ""


# In a theme's markup "regular" names the normal price as often as a former one (Shopify's
# price-item--regular is struck only inside <s>), so it does not make a shown price a former one.
_FORMER_PRICE_CLASS = re.compile(r"(?:^|[-_])(?:old|was|strike|crossed|before|msrp|rrp|list-?price|compare)", re.I)


def _is_former(node: LexborNode, levels: int = 4) -> bool:
    if node.tag in _STRUCK_TAGS or inside_struck_text(node):
        return True
    current: LexborNode | None = node
    for _ in range(levels + 1):
        if current is None:
            return False
        class_attr = current.attributes.get("class")
        if class_attr and (_FORMER_PRICE_CLASS.search(class_attr) or _OLD_PRICE_CAMEL.search(class_attr)):
            return True
        current = current.parent
    return False


def shown_prices(tree: LexborHTMLParser, decimal_separator: str | None, default_currency: str | None) -> list[Shown]:
    """Every price the page shows outside lists of other products, current or former."""
    shown: list[Shown] = []
    for node in tree.css(_PRICE_ELEMENTS):
        if node.tag in _INVISIBLE_TAGS or "hidden" in node.attributes or in_listing(node):
            continue
        struck = _is_former(node)
        # a struck element's own text is the former price; a current one leaves its struck parts out
        # (and only visible text counts: a content="..." attribute is markup, not what the page shows)
        if struck:
            text = node.text(deep=True, separator=" ", strip=True)
        else:
            parts: list[str] = []
            _collect_text(node, parts, decimal_separator)
            text = "".join(parts)
        if not text or len(text) > 80 or "%" in text or len(_NUMBER.findall(text)) != 1:
            continue  # "-50%", "2 for 10.00", a whole paragraph: not one price
        detail = parse_price_detail(text, decimal_separator=decimal_separator, default_currency=default_currency)
        if detail is None:
            continue
        labelled = _NOT_CURRENT_LABEL.search(text) or _NOT_CURRENT_LABEL.search(_label_before(node))
        shown.append(Shown(detail[0], detail[1], detail[2], not struck and not labelled, text))
    return shown


def struck_amounts_may_include(struck: list[LexborNode], amount: Decimal) -> bool:
    """Cheap test whether one of the ``struck`` (<del>, <s>) elements might show ``amount`` (so
    that the careful reading of :func:`shown_prices` is worth its cost)."""
    # compared as digit strings: "$1,299.00", "1.299,00 €" and "1299" all show 1299.00
    keys = {f"{amount:.2f}".replace(".", "")}
    if amount == amount.to_integral_value():
        keys.add(str(int(amount)))
    for node in struck:
        for number in _NUMBER.findall(node.text(deep=True)):
            if _NOT_DIGIT.sub("", number) in keys:
                return True
    return False


_NOT_DIGIT = re.compile(r"\D")


# --------------------------------------------------------------------------------------------
# The page's own product and its selected variant


def comparable_url(url: str, *, keep_query: bool = False) -> str:
    """Host and path (and query), without scheme, ``www.``, trailing slash or fragment."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:  # "http://[" and other broken URLs in scraped markup
        return url.strip()
    host = parts.netloc.lower().removeprefix("www.")
    path = parts.path.rstrip("/") or "/"
    query = f"?{parts.query}" if keep_query and parts.query else ""
    return f"{host}{path}{query}"


def same_page(a: str, b: str, *, keep_query: bool = False) -> bool:
    """Whether two URLs name the same page; a relative URL is compared by its path only."""
    ca, cb = comparable_url(a, keep_query=keep_query), comparable_url(b, keep_query=keep_query)
    if ca.startswith("/") or cb.startswith("/"):
        return ca[ca.find("/") :] == cb[cb.find("/") :]
    return ca == cb


def variant_ids(url: str) -> set[str]:
    try:
        query = parse_qs(urlsplit(url).query)
    except ValueError:
        return set()
    return {v for key in ("variant", "variant_id", "sku", "v", "pid") for v in query.get(key, [])}


def _name_key(text: str) -> str:
    return " ".join(re.sub(r"[\W_]+", " ", text.casefold()).split())


class PageHints:
    """The page's URL(s), heading and title, read from the tree once and only when needed."""

    def __init__(self, tree: LexborHTMLParser, url: str | None) -> None:
        self.tree = tree
        self.url = url
        self._urls: list[str] | None = None
        self._names: list[str] | None = None
        self._h1: LexborNode | None = None
        self._variants: set[str] | None = None

    @property
    def urls(self) -> list[str]:
        if self._urls is None:
            urls = [self.url] if self.url else []
            for node in self.tree.css('link[rel~="canonical" i], meta[property="og:url"]'):
                value = node.attributes.get("href") or node.attributes.get("content")
                if value and value.strip():
                    urls.append(value.strip())
            self._urls = urls
        return self._urls

    @property
    def names(self) -> list[str]:
        if self._names is None:
            names = []
            self._h1 = self.tree.css_first("h1")
            if self._h1 is not None:
                names.append(self._h1.text(deep=True, separator=" ", strip=True))
            og = self.tree.css_first('meta[property="og:title"]')
            if og is not None and og.attributes.get("content"):
                names.append(og.attributes["content"] or "")
            self._names = [k for k in (_name_key(n) for n in names) if k]
        return self._names

    def contains_h1(self, node: LexborNode) -> bool:
        self.names  # noqa: B018 - finds the h1
        parent = self._h1
        while parent is not None:
            if parent.mem_id == node.mem_id:
                return True
            parent = parent.parent
        return False

    def name_score(self, names: list[str]) -> int:
        """2: a name is the page's heading or og:title; 1: one contains the other; 0: no match."""
        best = 0
        for name in (_name_key(n) for n in names):
            for page_name in self.names:
                if name == page_name:
                    return 2
                shorter, longer = sorted((name, page_name), key=len)
                if len(shorter) >= 8 and shorter in longer:
                    best = 1
        return best

    def url_matches(self, urls: list[str]) -> bool:
        return any(same_page(u, page) for u in urls for page in self.urls)

    @property
    def selected_variants(self) -> set[str]:
        """Variant ids the page has selected: its URL's ``?variant=``, the add-to-cart form's id."""
        if self._variants is None:
            found: set[str] = set()
            for url in self.urls:
                found |= variant_ids(url)
            for node in self.tree.css('form[action*="/cart/add"] [name="id"], [name="variant_id"]'):
                if node.tag == "select":
                    option = node.css_first("option[selected]")
                    value = option.attributes.get("value") if option is not None else None
                else:
                    value = node.attributes.get("value")
                if value and value.strip():
                    found.add(value.strip())
            self._variants = found
        return self._variants
