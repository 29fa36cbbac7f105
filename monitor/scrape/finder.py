"""Finding the selector of a price a user can see (`pricemon extract SOURCE --find 229.99`).

For each page, the elements whose own text reads as the given price (innermost ones only), each
with a short stable CSS selector (ids, classes, itemprop; never nth-child chains) that `extract`
reads that very price with; given several pages of one shop with their prices, the selector that
reads every one of them. Also the text each selector candidate of an extraction was read from.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from selectolax.lexbor import LexborHTMLParser, LexborNode, SelectolaxError

from monitor.errors import ConfigError
from monitor.money import format_amount, parse_amount
from monitor.scrape.evidence import price_text
from monitor.scrape.extract import Extraction, ExtractionRules, _utf8_or_decoded
from monitor.scrape.fetch import extraction_rules
from monitor.scrape.price import parse_price_detail
from monitor.scrape.probe import Source, override_rules

__all__ = ["FindResult", "Match", "PageFind", "candidate_texts", "find_selectors"]

#: an element whose text is longer than this is not "the price" but something around it
MAX_TEXT = 80
#: selectors proposed per element, shortest first
MAX_SELECTORS = 12
_SKIPPED = frozenset({"script", "style", "template", "noscript", "html", "head", "body", "title"})
# What a class or id must look like to be kept: words, not generated hashes or counters.
_NAME = re.compile(r"^-?[A-Za-z_][A-Za-z0-9_-]*$")
_GENERATED = re.compile(r"\d{3,}|^(?:css|sc|jsx|emotion|svelte|chakra)-|(?:[a-z]+\d){2,}", re.I)
_STATE_CLASSES = frozenset({"active", "selected", "hidden", "show", "open", "visible", "current", "loaded"})
_META_ATTRS = ("itemprop", "property", "name", "data-price-type")


@dataclass
class Match:
    """One element that shows the price: where it is, its text, and its best selector's result."""

    element: str
    text: str
    selector: str | None
    result: Extraction | None
    alternatives: list[str] = field(default_factory=list)


@dataclass
class PageFind:
    source: str
    price: Decimal
    matches: list[Match]


@dataclass
class FindResult:
    pages: list[PageFind]
    proposal: str | None  # the selector that reads every page's price, if one does
    proposal_results: list[Extraction]

    def to_json(self) -> dict[str, Any]:
        return {
            "proposal": self.proposal,
            "pages": [
                {
                    "source": page.source,
                    "find": format_amount(page.price),
                    "matches": [
                        {
                            "element": m.element,
                            "text": m.text,
                            "selector": m.selector,
                            "alternatives": m.alternatives,
                            "extract": _result_json(m.result),
                        }
                        for m in page.matches
                    ],
                    "with_proposal": _result_json(self.proposal_results[i]) if self.proposal_results else None,
                }
                for i, page in enumerate(self.pages)
            ],
        }


def _result_json(result: Extraction | None) -> dict[str, Any] | None:
    if result is None:
        return None
    return {
        "status": result.status,
        "price": format_amount(result.price),
        "currency": result.currency,
        "in_stock": result.in_stock,
        "message": result.message,
    }


def parse_target(text: str) -> Decimal:
    try:
        return parse_amount(text.strip())
    except ValueError as exc:
        raise ConfigError(f"--find: expected a price such as 229.99, got {text!r} ({exc})") from None


def _tree(source: Source) -> LexborHTMLParser:
    if source.shop.platform == "shopify":
        raise ConfigError(f'--find reads HTML pages; competitor {source.shop.name!r} is read as platform = "shopify"')
    # Decoded exactly as extract decodes it (HTTP charset, else <meta charset>, else UTF-8).
    return LexborHTMLParser(_utf8_or_decoded(source.page.body, source.page.encoding))


def _describe(node: LexborNode) -> str:
    attrs = node.attributes
    shown = "".join(
        f' {key}="{str(attrs[key])[:40]}"' for key in ("id", "class", "itemprop", "property") if attrs.get(key)
    )
    return f"<{node.tag}{shown}>"


def _shows(node: LexborNode, target: Decimal, rules: ExtractionRules) -> str | None:
    """The element's price text when it reads as `target`, else None."""
    text = price_text(node, rules.decimal_separator).strip()
    if not text or len(text) > MAX_TEXT:
        return None
    detail = parse_price_detail(text, decimal_separator=rules.decimal_separator, default_currency=rules.currency)
    return text if detail is not None and detail[0] == target else None


def _matching_elements(tree: LexborHTMLParser, target: Decimal, rules: ExtractionRules) -> list[tuple[LexborNode, str]]:
    shown: dict[int, tuple[LexborNode, str]] = {}
    for node in tree.css("*"):
        if node.tag in _SKIPPED:
            continue
        text = _shows(node, target, rules)
        if text is not None:
            shown[node.mem_id] = (node, text)
    # Innermost only: a wrapper whose text is the same price adds nothing.
    ancestors: set[int] = set()
    for node, _text in shown.values():
        parent = node.parent
        while parent is not None:
            ancestors.add(parent.mem_id)
            parent = parent.parent
    return [(node, text) for node, text in shown.values() if node.mem_id not in ancestors]


def _stable(name: str) -> bool:
    return bool(_NAME.match(name)) and not _GENERATED.search(name) and name.lower() not in _STATE_CLASSES


def _own_selectors(node: LexborNode) -> list[str]:
    """Selectors for the element alone: id, classes, itemprop-like attributes, shortest first."""
    attrs = node.attributes
    out: list[str] = []
    ident = attrs.get("id")
    if ident and _stable(ident):
        out.append(f"#{ident}")
    classes = [c for c in (attrs.get("class") or "").split() if _stable(c)]
    for key in _META_ATTRS:
        value = attrs.get(key)
        if value and re.fullmatch(r"[A-Za-z0-9:_.-]{1,60}", value):
            out.append(f'{node.tag}[{key}="{value}"]' if node.tag == "meta" else f'[{key}="{value}"]')
    out.extend(f".{c}" for c in classes)
    out.extend(f"{node.tag}.{c}" for c in classes)
    out.extend(f".{a}.{b}" for i, a in enumerate(classes) for b in classes[i + 1 :])
    return out


def _selectors(node: LexborNode) -> Iterator[str]:
    """The element's own selectors, then each qualified by one of its nearest named ancestors."""
    own = _own_selectors(node)
    yield from own
    if not own:
        own = [node.tag or "*"]
    parent, depth = node.parent, 0
    while parent is not None and parent.tag not in ("body", "html") and depth < 4:
        for scope in _own_selectors(parent)[:3]:
            for inner in own[:4]:
                yield f"{scope} {inner}"
        parent, depth = parent.parent, depth + 1


def _reads(source: Source, rules: ExtractionRules, selector: str) -> Extraction:
    return source.read(dataclasses.replace(rules, price=selector))


def _good(result: Extraction, target: Decimal) -> bool:
    return result.status == "ok" and result.method == "selector" and result.price == target


def find_selectors(
    sources: Sequence[Source],
    finds: Sequence[str],
    *,
    selector: str | None = None,
    currency: str | None = None,
    decimal_separator: str | None = None,
    in_stock: str | None = None,
    out_of_stock: str | None = None,
) -> FindResult:
    """Where each page shows its price, and the selector that reads all of them (`proposal`).
    `selector`, when given, is only checked against every page, as a proposal would be."""
    targets = [parse_target(text) for text in finds]
    all_rules = [
        override_rules(
            extraction_rules(s.shop),
            currency=currency,
            decimal_separator=decimal_separator,
            in_stock=in_stock,
            out_of_stock=out_of_stock,
        )
        for s in sources
    ]
    pages: list[PageFind] = []
    ordered: list[str] = [selector] if selector else []
    for source, target, rules in zip(sources, targets, all_rules, strict=True):
        tree = _tree(source)
        matches: list[Match] = []
        for node, text in _matching_elements(tree, target, rules):
            tried: list[str] = []
            best: tuple[str, Extraction] | None = None
            first: tuple[str, Extraction] | None = None
            for candidate in dict.fromkeys(_selectors(node)):
                if len(tried) >= MAX_SELECTORS:
                    break
                try:
                    if not tree.css(candidate):
                        continue
                except SelectolaxError:
                    continue
                tried.append(candidate)
                result = _reads(source, rules, candidate)
                first = first or (candidate, result)
                if _good(result, target):
                    best = (candidate, result)
                    break
            chosen = best or first
            matches.append(
                Match(
                    _describe(node),
                    text,
                    chosen[0] if chosen else None,
                    chosen[1] if chosen else None,
                    [t for t in tried if not chosen or t != chosen[0]][:5],
                )
            )
            ordered.extend(t for t in tried if t not in ordered)
        # Good ones first, in the order found (shortest of each element first).
        matches.sort(key=lambda m: not (m.result is not None and _good(m.result, target)))
        pages.append(PageFind(source.page.listing_url or source.page.url, target, matches))

    proposal: str | None = None
    proposal_results: list[Extraction] = []
    for candidate in ordered:
        results = [_reads(s, r, candidate) for s, r, t in zip(sources, all_rules, targets, strict=True)]
        if all(_good(result, t) for result, t in zip(results, targets, strict=True)):
            proposal, proposal_results = candidate, results
            break
    return FindResult(pages, proposal, proposal_results)


def candidate_texts(source: Source, rules: ExtractionRules, extraction: Extraction) -> list[str | None]:
    """The text each selector candidate of `extraction` was read from (None for structured data,
    whose source names the field)."""
    if rules.price is None or source.shop.platform == "shopify":
        return [None] * len(extraction.candidates)
    try:
        nodes = _tree(source).css(rules.price)
    except SelectolaxError:
        return [None] * len(extraction.candidates)
    texts: list[str | None] = []
    for candidate in extraction.candidates:
        if candidate.method != "selector":
            texts.append(None)
            continue
        index = candidate.source.rpartition(" #")[2]
        position = int(index) - 1 if index.isdigit() else 0
        node = nodes[position] if 0 <= position < len(nodes) else None
        texts.append(price_text(node, rules.decimal_separator).strip()[:200] if node is not None else None)
    return texts
