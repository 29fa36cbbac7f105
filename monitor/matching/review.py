"""Reviewing match candidates: listing them, accepting and rejecting them (by hand or
automatically), conflicts, and pages that went away.

One page per product per competitor: a product that fits several pages, or a page that fits
several products, is a conflict; it is marked in the candidates' `why` and never auto-accepted
or resolved silently. An accepted candidate becomes a listing through
`monitor.store.catalog.write_listings`, the function `pricemon import listings` writes with.
These are the functions the CLI and a web review queue both call.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from monitor.errors import NotFoundError, PricemonError
from monitor.money import format_amount
from monitor.settings import Competitor as CompetitorConfig
from monitor.store.catalog import ImportSummary, write_listings
from monitor.store.models import Competitor, DiscoveredPage, MatchCandidate, Product, utcnow

logger = logging.getLogger(__name__)

STATUSES = ("proposed", "accepted", "rejected")
CHUNK = 900


class MatchDecisionError(PricemonError):
    """A decision that would break one page per product per competitor, or names no candidate."""


def _with(why: dict[str, Any], **changes: Any) -> dict[str, Any]:
    new = dict(why)
    for key, value in changes.items():
        if value is None:
            new.pop(key, None)
        else:
            new[key] = value
    return new


@dataclass(slots=True)
class _Pairing:
    id: int
    page_id: int
    product_id: int
    status: str
    score: float
    rematch: str | None
    why: dict[str, Any]
    sku: str


_CANDIDATES = cast(Table, MatchCandidate.__table__)
_SET_WHY = update(_CANDIDATES).where(_CANDIDATES.c.id == bindparam("b_id")).values(why=bindparam("b_why"))


def mark_conflicts(session: Session, competitor_id: int) -> int:
    """Mark the competitor's proposed candidates that compete for a page or a product; return
    how many are in conflict. Recomputed from scratch, so a resolved conflict unmarks itself.
    Read and written as rows (not ORM objects: a discovery marks thousands at a time); candidates
    the session holds as objects get the new `why` too."""
    rows = [
        _Pairing(*row)
        for row in session.execute(
            select(
                MatchCandidate.id, MatchCandidate.page_id, MatchCandidate.product_id, MatchCandidate.status,
                MatchCandidate.score, MatchCandidate.rematch, MatchCandidate.why, Product.sku,
            )
            .join(Product, Product.id == MatchCandidate.product_id)
            .where(MatchCandidate.competitor_id == competitor_id, MatchCandidate.status.in_(("proposed", "accepted")))
            .order_by(MatchCandidate.id)
        )
    ]  # fmt: skip
    by_page: dict[int, list[_Pairing]] = defaultdict(list)
    by_product: dict[int, list[_Pairing]] = defaultdict(list)
    for candidate in rows:
        by_page[candidate.page_id].append(candidate)
        if candidate.rematch is None:  # a page that went away competes with nothing
            by_product[candidate.product_id].append(candidate)
    in_conflict = 0
    changed: list[tuple[int, dict[str, Any]]] = []
    for candidate in rows:
        if candidate.status != "proposed":
            continue
        reasons: list[str] = []
        others = [c for c in by_page[candidate.page_id] if c.id != candidate.id]
        if others:
            reasons.append(
                "page also fits " + ", ".join(f"{c.sku} (#{c.id}, {c.status}, {c.score:.2f})" for c in others)
            )
        rivals = [
            c for c in by_product[candidate.product_id] if c.id != candidate.id and c.page_id != candidate.page_id
        ]
        if rivals:
            reasons.append(
                "product also fits page(s) " + ", ".join(f"#{c.id} ({c.status}, {c.score:.2f})" for c in rivals)
            )
        new_why = _with(candidate.why, review=reasons or None)
        if new_why != candidate.why:
            changed.append((candidate.id, new_why))
        in_conflict += bool(reasons)
    if changed:
        session.execute(_SET_WHY, [{"b_id": i, "b_why": why} for i, why in changed])
        for candidate_id, why in changed:
            held = session.identity_map.get(identity_key(MatchCandidate, candidate_id))
            if held is not None:
                set_committed_value(held, "why", why)
    return in_conflict


def _candidates(session: Session, ids: Sequence[int]) -> dict[int, tuple[MatchCandidate, str, str, DiscoveredPage]]:
    found: dict[int, tuple[MatchCandidate, str, str, DiscoveredPage]] = {}
    unique = sorted(set(ids))
    for start in range(0, len(unique), CHUNK):
        for candidate, sku, competitor, page in session.execute(
            select(MatchCandidate, Product.sku, Competitor.name, DiscoveredPage)
            .join(Product, Product.id == MatchCandidate.product_id)
            .join(Competitor, Competitor.id == MatchCandidate.competitor_id)
            .join(DiscoveredPage, DiscoveredPage.id == MatchCandidate.page_id)
            .where(MatchCandidate.id.in_(unique[start : start + CHUNK]))
        ):
            found[candidate.id] = (candidate, sku, competitor, page)
    return found


@dataclass
class Decision:
    decision: str
    decided: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)
    listings: ImportSummary | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "decision": self.decision,
            "decided": self.decided,
            "unchanged": self.unchanged,
            "skipped": {str(k): v for k, v in self.skipped.items()},
        }
        if self.listings is not None:
            data["listings"] = {
                "inserted": self.listings.inserted,
                "updated": self.listings.updated,
                "unchanged": self.listings.unchanged,
            }
        return data


def select_ids(
    session: Session, *, min_score: float, competitor: str | None = None, include_conflicts: bool = False
) -> list[int]:
    """Proposed candidates scoring at least `min_score` (conflicting ones only when asked)."""
    query = select(MatchCandidate).where(MatchCandidate.status == "proposed", MatchCandidate.score >= min_score)
    if competitor:
        query = query.join(Competitor, Competitor.id == MatchCandidate.competitor_id).where(
            Competitor.name == competitor
        )
    return [
        c.id for c in session.scalars(query.order_by(MatchCandidate.id)) if include_conflicts or not c.why.get("review")
    ]


def decide_matches(
    session: Session,
    ids: Sequence[int],
    decision: str,
    *,
    by: str,
    competitors: Sequence[CompetitorConfig],
    strict: bool = True,
) -> Decision:
    """Accept or reject candidates `ids` in one transaction.

    Accepting writes each candidate's listing ({sku, competitor, url}) as `import listings`
    would and supersedes a product's candidates whose page went away. `strict` (one by one, by
    id) refuses the whole decision when one candidate cannot be decided; otherwise (bulk) such
    candidates are skipped with the reason. Unknown ids are always an error.
    """
    if decision not in ("accept", "reject"):
        raise ValueError(f"decision must be accept or reject, not {decision!r}")
    found = _candidates(session, ids)
    missing = [i for i in dict.fromkeys(ids) if i not in found]
    if missing:
        raise NotFoundError(f"unknown match id(s): {', '.join(map(str, missing))}")
    result = Decision(decision)
    configured = {c.name for c in competitors}
    if decision == "reject":
        for candidate_id in dict.fromkeys(ids):
            candidate, _sku, _competitor, _page = found[candidate_id]
            if candidate.status == "rejected":
                result.unchanged.append(candidate_id)
            elif candidate.status == "accepted":
                result.skipped[candidate_id] = "accepted: its listing watches the page (remove the listing instead)"
            else:
                candidate.status = "rejected"
                candidate.decided_at = utcnow()
                candidate.decided_by = by
                candidate.why = _with(candidate.why, review=None)
                result.decided.append(candidate_id)
        if strict and result.skipped:
            raise MatchDecisionError("; ".join(f"match {k}: {v}" for k, v in result.skipped.items()))
        return result

    wanted: dict[tuple[int, int], int] = {}  # (product, competitor) -> candidate id being accepted
    pages: dict[int, int] = {}
    taken_products, taken_pages = _accepted_for(session, [found[i][0] for i in found])
    for candidate_id in dict.fromkeys(ids):
        candidate, sku, competitor, page = found[candidate_id]
        if candidate.status == "accepted":
            result.unchanged.append(candidate_id)
            continue
        problem = None
        key = (candidate.product_id, candidate.competitor_id)
        if page.status == "gone":
            problem = f"its page {page.url} is gone (HTTP {page.http_status})"
        elif competitor not in configured:
            problem = f"competitor {competitor!r} is not in the config"
        elif key in wanted:
            problem = f"match {wanted[key]} accepts another page of {competitor} for {sku}"
        elif candidate.page_id in pages:
            problem = f"match {pages[candidate.page_id]} accepts the same page for another product"
        elif taken_pages.get(candidate.page_id, candidate.id) != candidate.id:
            problem = (
                f"accepted match {taken_pages[candidate.page_id]} already has the same page at {competitor}; "
                "reject or re-match it first"
            )
        elif taken_products.get(key, candidate.id) != candidate.id:
            problem = (
                f"accepted match {taken_products[key]} already has another page for {sku} at {competitor}; "
                "reject or re-match it first"
            )
        if problem:
            result.skipped[candidate_id] = problem
            continue
        wanted[key] = candidate_id
        pages[candidate.page_id] = candidate_id
    if strict and result.skipped:
        raise MatchDecisionError("; ".join(f"match {k}: {v}" for k, v in result.skipped.items()))
    accepting = [found[i] for i in wanted.values()]
    if not accepting:
        return result
    result.listings = write_listings(
        session, {(sku, competitor): page.url for _c, sku, competitor, page in accepting}, competitors, where="matches"
    )
    now = utcnow()
    for candidate, _sku, _competitor, _page in accepting:
        candidate.status = "accepted"
        candidate.decided_at = now
        candidate.decided_by = by
        candidate.rematch = None
        candidate.why = _with(candidate.why, review=None)
        result.decided.append(candidate.id)
    # A product's earlier page that went away is superseded by the one accepted now.
    for old in _rematch_candidates(session, list(wanted)):
        new_id = wanted[(old.product_id, old.competitor_id)]
        if old.id != new_id:
            old.status = "rejected"
            old.decided_at = now
            old.decided_by = f"superseded by match {new_id}"
    session.flush()
    for competitor_id in {c.competitor_id for c, *_ in accepting}:
        mark_conflicts(session, competitor_id)
    return result


def _accepted_for(
    session: Session, candidates: Sequence[MatchCandidate]
) -> tuple[dict[tuple[int, int], int], dict[int, int]]:
    """Accepted candidates of the competitors involved: by (product, competitor) and by page."""
    by_product: dict[tuple[int, int], int] = {}
    by_page: dict[int, int] = {}
    for competitor_id in {c.competitor_id for c in candidates}:
        for row in session.execute(
            select(MatchCandidate.id, MatchCandidate.product_id, MatchCandidate.page_id).where(
                MatchCandidate.competitor_id == competitor_id, MatchCandidate.status == "accepted"
            )
        ):
            by_product[(row.product_id, competitor_id)] = row.id
            by_page[row.page_id] = row.id
    return by_product, by_page


def _rematch_candidates(session: Session, keys: Sequence[tuple[int, int]]) -> list[MatchCandidate]:
    found: list[MatchCandidate] = []
    wanted = set(keys)
    for competitor_id in {c for _, c in keys}:
        found += [
            c
            for c in session.scalars(
                select(MatchCandidate).where(
                    MatchCandidate.competitor_id == competitor_id, MatchCandidate.rematch.is_not(None)
                )
            )
            if (c.product_id, c.competitor_id) in wanted
        ]
    return found


def auto_accept(session: Session, competitor_id: int, threshold: float, competitors: Sequence[CompetitorConfig]) -> int:
    """Accept the competitor's proposed candidates scoring at least `threshold` that conflict with
    nothing (and were never decided by a person); return how many."""
    if threshold > 1:
        return 0
    ids = [
        c.id
        for c in session.scalars(
            select(MatchCandidate).where(
                MatchCandidate.competitor_id == competitor_id,
                MatchCandidate.status == "proposed",
                MatchCandidate.score >= threshold,
                MatchCandidate.rematch.is_(None),
            )
        )
        if not c.why.get("review")
    ]
    if not ids:
        return 0
    decision = decide_matches(session, ids, "accept", by="auto", competitors=competitors, strict=False)
    return len(decision.decided)


def list_matches(
    session: Session,
    *,
    status: str | None = None,
    competitor: str | None = None,
    min_score: float | None = None,
    ids: Sequence[int] = (),
    limit: int | None = None,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Candidates with our product beside the page (name, identifiers, price, image) and why,
    best score first (`offset`/`limit` page through them)."""
    _check_status(status)
    query = (
        select(MatchCandidate, Product, Competitor.name, DiscoveredPage)
        .join(Product, Product.id == MatchCandidate.product_id)
        .join(Competitor, Competitor.id == MatchCandidate.competitor_id)
        .join(DiscoveredPage, DiscoveredPage.id == MatchCandidate.page_id)
        .order_by(MatchCandidate.score.desc(), MatchCandidate.id)
    )
    if status:
        query = query.where(MatchCandidate.status == status)
    if competitor:
        query = query.where(Competitor.name == competitor)
    if min_score is not None:
        query = query.where(MatchCandidate.score >= min_score)
    if ids:
        query = query.where(MatchCandidate.id.in_(list(ids)))
    if limit:
        query = query.limit(limit)
    if offset:
        query = query.offset(offset)
    return [
        {
            "id": c.id,
            "status": c.status,
            "score": round(c.score, 4),
            "method": c.method,
            "competitor": name,
            "sku": p.sku,
            "product": {
                "name": p.name,
                "brand": p.brand,
                "mpn": p.mpn,
                "gtin": p.gtin,
                "price": format_amount(p.price),
                "currency": p.currency,
            },
            "page": {
                "url": page.url,
                "status": page.status,
                "name": page.name,
                "brand": page.brand,
                "mpn": page.mpn,
                "gtin": page.gtin,
                "shop_sku": page.shop_sku,
                "price": format_amount(page.price),
                "currency": page.currency,
                "image_url": page.image_url,
            },
            "why": c.why,
            "rematch": c.rematch,
            "decided_at": c.decided_at.isoformat() if c.decided_at else None,
            "decided_by": c.decided_by,
        }
        for c, p, name, page in session.execute(query)
    ]


def _check_status(status: str | None) -> None:
    if status is not None and status not in STATUSES:
        raise PricemonError(f"unknown match status {status!r} (expected {', '.join(STATUSES)})")


def match_ids(
    session: Session, *, status: str | None = None, competitor: str | None = None, min_score: float | None = None
) -> list[int]:
    """The ids of every candidate the filters of `list_matches` select, in its order (what a review
    queue's "all filtered" decides, and how many the filters select)."""
    _check_status(status)
    query = select(MatchCandidate.id).order_by(MatchCandidate.score.desc(), MatchCandidate.id)
    if status:
        query = query.where(MatchCandidate.status == status)
    if competitor:
        query = query.join(Competitor, Competitor.id == MatchCandidate.competitor_id).where(
            Competitor.name == competitor
        )
    if min_score is not None:
        query = query.where(MatchCandidate.score >= min_score)
    return list(session.scalars(query))


def describe_why(why: dict[str, Any]) -> str:
    """One line: what agreed, the title score, what conflicted, what needs review."""
    parts = []
    if why.get("agreed"):
        parts.append("agreed: " + ", ".join(why["agreed"]))
    if "title_score" in why:
        parts.append(f"title {why['title_score']:.2f}")
    if why.get("conflicts"):
        parts.append("conflicts: " + "; ".join(why["conflicts"]))
    if why.get("price"):
        parts.append(f"price {why['price']}")
    if why.get("review"):
        parts.append("review: " + "; ".join(why["review"]))
    return " | ".join(parts)


def flag_rematch(session: Session, page_id: int, reason: str) -> int:
    """The page went away or shows another product: its accepted match is proposed for
    re-matching (status proposed, `rematch` says why); its other proposals are dropped."""
    flagged = 0
    for candidate in session.scalars(select(MatchCandidate).where(MatchCandidate.page_id == page_id)):
        if candidate.status == "accepted":
            candidate.status = "proposed"
            candidate.rematch = reason[:500]
            candidate.updated_at = utcnow()
            flagged += 1
        elif candidate.status == "proposed" and candidate.rematch is None:
            session.delete(candidate)
    return flagged
