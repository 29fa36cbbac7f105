"""Scoring discovered pages against our products, and storing the candidates.

    exact GTIN (both valid, GTIN-14)            1.0   "gtin"
    brand + normalised MPN, attributes agree    0.99  "mpn"  (0.7 when attributes conflict)
    title similarity (rapidfuzz), brand, model  <=0.95 "title": attributes that conflict cap it
      codes, quantities, pack counts, colours           at 0.5, an implausible price takes 30% off

A page whose valid GTIN differs from a product's valid GTIN is never that product. Title-only
matches stay below the default `auto_accept` (0.98): they always go to review.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from operator import itemgetter
from typing import Any, cast

from rapidfuzz import fuzz
from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from monitor.matching.attributes import Attributes, conflicts, title_attributes
from monitor.matching.identifiers import normalize_brand, normalize_gtin, normalize_mpn
from monitor.settings import MatchingSettings
from monitor.store.database import begin_write
from monitor.store.models import Competitor, DiscoveredPage, MatchCandidate, Product, utcnow

logger = logging.getLogger(__name__)

GTIN_SCORE = 1.0
MPN_SCORE = 0.99
MPN_CONFLICT_SCORE = 0.7
TITLE_CAP = 0.95
CONFLICT_CAP = 0.5
PRICE_PENALTY = 0.7
#: candidates kept per page: the best, and close seconds (which make it a conflict for review)
PER_PAGE = 3
CLOSE = 0.05
BLOCK_CANDIDATES = 40
UNKNOWN_WORD = 0.5
PRICE_DISTANCE_WEIGHT = 0.25
PRICE_DISTANCE_CAP = 0.1

# Abbreviations shops use in titles, read as the word (compared in lower case).
_ABBREVIATIONS = {
    "bt": "bluetooth", "wl": "wireless", "wrls": "wireless", "hp": "headphones", "hdph": "headphones",
    "kbd": "keyboard", "blk": "black", "wht": "white", "slv": "silver", "gry": "grey", "gray": "grey",
    "pcs": "pack", "pk": "pack", "stainless": "stainless", "ss": "stainless", "w/": "with", "incl": "including",
    "approx": "approximately", "ltr": "l", "litre": "l", "liter": "l", "ins": "inch", "in": "inch",
    "cordless": "cordless", "nc": "noise cancelling", "anc": "noise cancelling", "usb-c": "usbc",
    "refurb": "refurbished", "ed": "edition", "gen": "generation", "2nd": "2 generation", "3rd": "3 generation",
}  # fmt: skip
_WORD = re.compile(r"[0-9a-zäöüßéèàç]+(?:[.,][0-9]+)?")


def normalize_title(title: str) -> str:
    words = _WORD.findall(title.casefold().replace("&", " and "))
    return " ".join(_ABBREVIATIONS.get(w, w) for w in words)


@dataclass(slots=True)
class ProductRecord:
    id: int
    sku: str
    name: str
    brand: str | None
    mpn: str | None
    gtin: str | None
    price: Decimal
    currency: str
    title: str = ""
    attributes: Attributes = field(default_factory=Attributes)
    # what scoring reads of the product on every page, computed once by the Matcher
    brand_key: str | None = None
    words: frozenset[str] = frozenset()


@dataclass(slots=True)
class PageRecord:
    id: int
    name: str | None
    brand: str | None
    mpn: str | None
    gtin: str | None
    price: Decimal | None
    currency: str | None


@dataclass(slots=True)
class Scored:
    product_id: int
    score: float
    method: str
    why: dict[str, Any]


class Matcher:
    """Our products, indexed by GTIN, brand + MPN and title words, scoring one page at a time."""

    def __init__(self, products: Iterable[ProductRecord], settings: MatchingSettings) -> None:
        self.settings = settings
        self.products: dict[int, ProductRecord] = {}
        self.by_gtin: dict[str, list[int]] = defaultdict(list)
        self.by_mpn: dict[str, list[int]] = defaultdict(list)
        self.by_word: dict[str, list[int]] = defaultdict(list)
        for product in products:
            product.title, product.attributes = _product_reading(product.brand, product.name)
            self.products[product.id] = product
            if product.gtin:
                self.by_gtin[product.gtin].append(product.id)
            if product.mpn:
                self.by_mpn[product.mpn].append(product.id)
            for word in set(product.title.split()):
                self.by_word[word].append(product.id)
        total = max(len(self.products), 1)
        self.idf = {w: math.log(total / len(ids)) + 0.01 for w, ids in self.by_word.items()}
        # the weight of each product's title words, by this catalogue's (or subset's) rarity
        self.words_weight: dict[int, float] = {}
        for product in self.products.values():
            product.brand_key = normalize_brand(product.brand)
            product.words = frozenset(product.title.split())
            self.words_weight[product.id] = sum(self.idf.get(w, UNKNOWN_WORD) for w in product.words)

    def score(self, page: PageRecord) -> list[Scored]:
        """The products `page` may be, best first, each scoring at least `min_score`."""
        found: dict[int, Scored] = {}
        page_gtin = page.gtin
        page_attributes = title_attributes(page.name or "")
        if page_gtin:
            for product_id in self.by_gtin.get(page_gtin, ()):
                product = self.products[product_id]
                clash = conflicts(product.attributes, page_attributes)
                why: dict[str, Any] = {"agreed": ["gtin"], "gtin": page_gtin}
                if clash:
                    why["conflicts"] = clash
                found[product_id] = Scored(product_id, GTIN_SCORE, "gtin", why)
        page_brand = normalize_brand(page.brand)
        if page.mpn:
            for product_id in self.by_mpn.get(page.mpn, ()):
                if product_id in found:
                    continue
                product = self.products[product_id]
                if not self._same_gtin_or_unknown(product, page_gtin):
                    continue
                brand_agrees = self._brand_agrees(product, page_brand, page.name)
                if brand_agrees is not True:
                    continue
                clash = conflicts(product.attributes, page_attributes)
                why = {"agreed": ["brand", "mpn"], "mpn": page.mpn}
                if clash:
                    why["conflicts"] = clash
                score = MPN_CONFLICT_SCORE if clash else MPN_SCORE
                found[product_id] = self._with_price(Scored(product_id, score, "mpn", why), product, page)
        # A page an identifier settles needs no title guesses (they would be dropped below).
        if page.name and not any(s.score >= self.settings.min_score for s in found.values()):
            for scored in self._by_title(page, page_brand, page_attributes, page_gtin, found):
                found[scored.product_id] = scored
        ranked = sorted(
            (s for s in found.values() if s.score >= self.settings.min_score), key=lambda s: (-s.score, s.product_id)
        )
        if not ranked:
            return []
        # Close seconds stay (the page is a conflict for review); clearly weaker ones are noise,
        # and a page an identifier settles needs no title guesses beside it.
        best = ranked[0]
        keep = [s for s in ranked if s.score >= best.score - CLOSE and (best.method == "title" or s.method != "title")]
        return keep[:PER_PAGE]

    def _same_gtin_or_unknown(self, product: ProductRecord, page_gtin: str | None) -> bool:
        return not (product.gtin and page_gtin and product.gtin != page_gtin)

    def _brand_agrees(self, product: ProductRecord, page_brand: str | None, page_name: str | None) -> bool | None:
        """True/False when both sides name a brand (the page in its brand field or its title), else None."""
        ours = product.brand_key
        if not ours:
            return None
        if page_brand:
            return page_brand == ours or page_brand.startswith(ours + " ") or ours.startswith(page_brand + " ")
        if page_name:
            return f" {ours} " in _spaced_brand(page_name)
        return None

    def _weighted_dice(self, product: ProductRecord, page_words: set[str], page_weight: float) -> float:
        """Shared words weighted by how rare they are in our catalogue: a line name or a model
        code weighs more than "smartphone". Words our catalogue never uses (a shop's marketing,
        its abbreviations) weigh little, so extra words cost less than missing ones."""
        weight = self.idf.get
        shared = sum(weight(w, UNKNOWN_WORD) for w in product.words & page_words)
        total = self.words_weight[product.id] + page_weight
        return 2 * shared / total if total else 0.0

    def _price_distance(self, product: ProductRecord, page: PageRecord) -> float:
        """A little off a title match per step away from our price: of two look-alikes whose
        titles fit a page equally, the one priced like it is the likelier."""
        if page.price is None or page.currency not in (None, product.currency) or not product.price or not page.price:
            return 0.0
        return min(PRICE_DISTANCE_CAP, PRICE_DISTANCE_WEIGHT * abs(math.log(float(page.price / product.price))))

    def _with_price(self, scored: Scored, product: ProductRecord, page: PageRecord) -> Scored:
        if page.price is None or page.currency not in (None, product.currency) or not product.price:
            return scored
        ratio = float(page.price / product.price)
        limit = self.settings.max_price_ratio
        if ratio > limit or ratio < 1 / limit:
            scored.score = round(scored.score * PRICE_PENALTY, 4)
            scored.why["price"] = f"implausible: {page.price} vs our {product.price} ({ratio:.2f}x)"
        return scored

    def _by_title(
        self,
        page: PageRecord,
        page_brand: str | None,
        page_attributes: Attributes,
        page_gtin: str | None,
        found: dict[int, Scored],
    ) -> list[Scored]:
        title = normalize_title(f"{page.brand or ''} {page.name or ''}")
        words = set(title.split())
        weights: dict[int, float] = defaultdict(float)
        for word in words:
            idf = self.idf.get(word)
            if idf is None or idf < 0.7:  # a word most products share selects nothing
                continue
            for product_id in self.by_word[word]:
                weights[product_id] += idf
        if not weights:
            return []
        page_weight = sum(self.idf.get(w, UNKNOWN_WORD) for w in words)
        # heaviest first, ties in the order found (a stable sort, by the C itemgetter)
        best = [pid for pid, _ in sorted(weights.items(), key=itemgetter(1), reverse=True)[:BLOCK_CANDIDATES]]
        results: list[Scored] = []
        for product_id in best:
            if product_id in found:
                continue
            product = self.products[product_id]
            if not self._same_gtin_or_unknown(product, page_gtin):
                continue
            brand = self._brand_agrees(product, page_brand, page.name)
            if brand is False:
                continue
            fuzzy = (fuzz.token_set_ratio(product.title, title) + fuzz.token_sort_ratio(product.title, title)) / 200
            similarity = 0.4 * fuzzy + 0.6 * self._weighted_dice(product, words, page_weight)
            score = similarity * TITLE_CAP
            why: dict[str, Any] = {"agreed": ["brand"] if brand else [], "title_score": round(similarity, 3)}
            clash = conflicts(product.attributes, page_attributes)
            if page.mpn and product.mpn and page.mpn != product.mpn:
                # another part number of the same maker is another product (a sibling variant)
                clash.append(f"mpn: {product.mpn} vs {page.mpn}")
            codes = product.attributes.codes & page_attributes.codes
            if codes:
                why["agreed"].append("model code")
                score = min(TITLE_CAP, score + 0.05)
            if clash:
                why["conflicts"] = clash
                score = min(score, CONFLICT_CAP)
            score -= self._price_distance(product, page)
            scored = self._with_price(Scored(product_id, round(score, 4), "title", why), product, page)
            if scored.score >= self.settings.min_score:
                results.append(scored)
        return results


def lock_competitor(session: Session, competitor_id: int) -> None:
    """Take the competitor's discovery lock for the rest of the transaction: two discoveries (or
    matchings) of one competitor write its pages and candidates one after the other. SQLite has
    one writer anyway (its write lock, taken now); a server database locks the competitor's row."""
    if session.get_bind().dialect.name == "sqlite":
        begin_write(session)
    else:
        # FOR NO KEY UPDATE: rows that only refer to the competitor (listings) are not held up
        session.execute(select(Competitor.id).where(Competitor.id == competitor_id).with_for_update(key_share=True))


@functools.lru_cache(maxsize=65536)
def _product_reading(brand: str | None, name: str) -> tuple[str, Attributes]:
    """A product's normalised title and attributes: the same for every shop it is matched at, so
    a process that discovers several shops (the daemon) reads each of our products once."""
    return normalize_title(f"{brand or ''} {name}"), title_attributes(name)


@functools.lru_cache(maxsize=64)
def _spaced_brand(page_name: str) -> str:
    """The page's title as a brand is compared with it (asked once per candidate product)."""
    return f" {normalize_brand(page_name)} "


def load_products(session: Session) -> list[ProductRecord]:
    """Our active products with what matching reads of them."""
    rows = session.execute(
        select(
            Product.id, Product.sku, Product.name, Product.brand, Product.mpn, Product.gtin, Product.price,
            Product.currency,
        ).where(Product.active.is_(True))
    )  # fmt: skip
    return [
        ProductRecord(r.id, r.sku, r.name, r.brand, normalize_mpn(r.mpn), normalize_gtin(r.gtin), r.price, r.currency)
        for r in rows
    ]


_PAGE_COLUMNS = (
    DiscoveredPage.id, DiscoveredPage.name, DiscoveredPage.brand, DiscoveredPage.mpn, DiscoveredPage.gtin,
    DiscoveredPage.price, DiscoveredPage.currency,
)  # fmt: skip
_PAGES = cast(Table, DiscoveredPage.__table__)
_MATCHED = (
    update(_PAGES)
    .where(_PAGES.c.id == bindparam("b_id"), _PAGES.c.fingerprint.is_not_distinct_from(bindparam("b_fingerprint")))
    .values(needs_matching=False)
)


def _page_record(row: Any) -> PageRecord:
    return PageRecord(row.id, row.name, row.brand, normalize_mpn(row.mpn), row.gtin, row.price, row.currency)


@dataclass(frozen=True, slots=True)
class MatchSummary:
    competitor: str
    pages: int
    proposed: int
    auto_accepted: int
    conflicts: int
    rematch: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "competitor": self.competitor,
            "pages": self.pages,
            "proposed": self.proposed,
            "auto_accepted": self.auto_accepted,
            "conflicts": self.conflicts,
            "rematch": self.rematch,
        }


def match_competitor(
    session: Session,
    competitor: str,
    settings: MatchingSettings,
    *,
    products: Sequence[ProductRecord] | None = None,
    competitors: Sequence[Any] = (),
) -> MatchSummary:
    """Score the competitor's pages that need it (new, changed) against our products, store the
    candidates, flag conflicts, and auto-accept what scores at least `settings.auto_accept`.

    Products whose accepted page went away are matched again against every live page of the
    competitor that no product has. Decided candidates are kept: a rejected pairing is not
    proposed again unless its page changed.
    """
    from monitor.matching.review import auto_accept, mark_conflicts

    competitor_id = session.scalar(select(Competitor.id).where(Competitor.name == competitor))
    if competitor_id is None:
        return MatchSummary(competitor, 0, 0, 0, 0, 0)
    pages = [
        (_page_record(row), row.fingerprint)
        for row in session.execute(
            select(*_PAGE_COLUMNS, DiscoveredPage.fingerprint).where(
                DiscoveredPage.competitor_id == competitor_id,
                DiscoveredPage.needs_matching.is_(True),
                DiscoveredPage.status == "product",
            )
        )
    ]
    now = utcnow()
    proposed = 0
    # Scored before anything is written: on SQLite the write lock is held only for the writes.
    # Our products are read (and indexed) only when there is something to match them with: a
    # discovery that found nothing new reads none.
    records: list[ProductRecord] | None = None
    scored_pages: list[tuple[PageRecord, str | None, list[Scored]]] = []
    if pages:
        records = list(products) if products is not None else load_products(session)
        matcher = Matcher(records, settings)
        scored_pages = [(page, fingerprint, matcher.score(page)) for page, fingerprint in pages]
    lock_competitor(session, competitor_id)
    page_ids = [p.id for p, _ in pages]
    for start in range(0, len(page_ids), 900):
        session.execute(
            delete(MatchCandidate).where(
                MatchCandidate.page_id.in_(page_ids[start : start + 900]),
                MatchCandidate.status == "proposed",
                MatchCandidate.rematch.is_(None),
            )
        )
    # What stays (decided pairings, pages proposed for re-matching) is not proposed again.
    decided: set[tuple[int, int]] = {
        (row.page_id, row.product_id)
        for row in session.execute(
            select(MatchCandidate.page_id, MatchCandidate.product_id).where(
                MatchCandidate.competitor_id == competitor_id
            )
        )
    }
    new_rows: list[dict[str, Any]] = []

    def propose(page_id: int, scored: Scored) -> None:
        nonlocal proposed
        if (page_id, scored.product_id) in decided:
            return
        decided.add((page_id, scored.product_id))
        new_rows.append(
            {
                "page_id": page_id,
                "product_id": scored.product_id,
                "competitor_id": competitor_id,
                "score": scored.score,
                "method": scored.method,
                "status": "proposed",
                "why": scored.why,
                "created_at": now,
                "updated_at": now,
            }
        )
        proposed += 1

    for page, _fingerprint, scored_list in scored_pages:
        for scored in scored_list:
            propose(page.id, scored)
    if scored_pages:
        # A page that another discovery found changed meanwhile is left to be matched again.
        session.execute(
            _MATCHED,
            [{"b_id": page.id, "b_fingerprint": fingerprint} for page, fingerprint, _ in scored_pages],
        )

    # Products whose accepted page went away or changed: look for their page among the others.
    rematch_products = set(
        session.scalars(
            select(MatchCandidate.product_id).where(
                MatchCandidate.competitor_id == competitor_id, MatchCandidate.rematch.is_not(None),
                MatchCandidate.status == "proposed",
            )
        )
    )  # fmt: skip
    if rematch_products:
        if records is None:
            records = list(products) if products is not None else load_products(session)
        subset = Matcher([r for r in records if r.id in rematch_products], settings)
        taken = set(
            session.scalars(
                select(MatchCandidate.page_id).where(
                    MatchCandidate.competitor_id == competitor_id, MatchCandidate.status == "accepted"
                )
            )
        )
        fresh = {p.id for p, _ in pages}
        for row in session.execute(
            select(*_PAGE_COLUMNS).where(
                DiscoveredPage.competitor_id == competitor_id, DiscoveredPage.status == "product"
            )
        ):
            if row.id in taken or row.id in fresh:
                continue
            for scored in subset.score(_page_record(row)):
                propose(row.id, scored)
    for start in range(0, len(new_rows), 2000):
        session.execute(insert(MatchCandidate), new_rows[start : start + 2000])
    session.flush()
    conflicting = mark_conflicts(session, competitor_id)
    accepted = auto_accept(session, competitor_id, settings.auto_accept, competitors) if competitors else 0
    logger.info(
        "matched %s: %d pages, %d candidates, %d auto-accepted, %d in conflict",
        competitor, len(pages), proposed, accepted, conflicting,
    )  # fmt: skip
    return MatchSummary(competitor, len(pages), proposed, accepted, conflicting, len(rematch_products))
