"""Queries of the pricing workflow: latest offers of every product, suggestions, applied price changes.

The pricing engine receives plain rows from here and hands plain rows back; it never opens a
session. Statuses of a suggestion: pending -> approved -> applied, or rejected, or superseded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, and_, func, insert, or_, select, update
from sqlalchemy.orm import Session

from monitor.errors import NotFoundError, PricemonError
from monitor.money import format_amount
from monitor.redact import redact_text
from monitor.store.database import Store
from monitor.store.history import counts_as_offer, seen_until
from monitor.store.models import Competitor, Listing, PriceChange, PriceHistory, Product, Suggestion, utcnow

logger = logging.getLogger(__name__)

STATUSES = ("pending", "approved", "rejected", "applied", "superseded")


@dataclass
class ProductOffers:
    """One active product and the latest stored state of each of its active listings."""

    id: int
    sku: str
    name: str
    currency: str
    price: Decimal
    cost: Decimal | None
    min_price: Decimal | None
    max_price: Decimal | None
    map_price: Decimal | None
    tags: list[str]
    # (competitor, url, price, currency, in_stock, observed_at, last_seen_at, suspicious)
    offers: list[tuple[Any, ...]] = field(default_factory=list)


def latest_offers(session: Session, *, skus: Sequence[str] = (), chunk: int = 5000) -> Iterator[ProductOffers]:
    """Every active product with its listings' latest states, in ONE streamed query.

    `Listing.latest_history_id` points at the newest history row, so no per-listing subquery
    or per-product round trip is needed; rows arrive ordered by product and are grouped here.
    """
    query = (
        select(
            Product.id,
            Product.sku,
            Product.name,
            Product.currency,
            Product.price,
            Product.cost,
            Product.min_price,
            Product.max_price,
            Product.map_price,
            Product.tags,
            Competitor.name,
            Listing.url,
            PriceHistory.price,
            PriceHistory.currency,
            PriceHistory.in_stock,
            PriceHistory.observed_at,
            seen_until(),
            PriceHistory.suspicious,
        )
        .select_from(Product)
        .outerjoin(Listing, and_(Listing.product_id == Product.id, Listing.active.is_(True)))
        .outerjoin(Competitor, Competitor.id == Listing.competitor_id)
        .outerjoin(PriceHistory, and_(PriceHistory.id == Listing.latest_history_id, counts_as_offer()))
        .where(Product.active.is_(True))
        .order_by(Product.id)
    )
    if skus:
        query = query.where(Product.sku.in_(skus))
    current: ProductOffers | None = None
    # Core rows straight from the connection: the ORM result layer would more than double the
    # time of this loop, which is most of `pricemon suggest` for a large catalogue.
    for row in session.connection().execute(query.execution_options(yield_per=chunk)):
        if current is None or current.id != row[0]:
            if current is not None:
                yield current
            current = ProductOffers(*row[:10])
        if row[10] is not None and row[12] is not None:
            current.offers.append(tuple(row[10:]))
    if current is not None:
        yield current


def skus_of_listings(session: Session, listing_ids: Sequence[int]) -> list[str]:
    """The SKUs of the active products these listings belong to (each once, sorted)."""
    skus: set[str] = set()
    for start in range(0, len(listing_ids), 500):
        part = listing_ids[start : start + 500]
        skus.update(session.scalars(
            select(Product.sku).join(Listing, Listing.product_id == Product.id)
            .where(Listing.id.in_(part), Product.active.is_(True))
        ))
    return sorted(skus)


def _history_query(product_id: int, since: datetime | None, *, with_url: bool = False) -> Select[*tuple[Any, ...]]:
    """One product's competitor history rows, oldest first, still in force at or after `since`."""
    query = (
        select(
            Competitor.name,
            *([Listing.url] if with_url else []),
            PriceHistory.price,
            PriceHistory.currency,
            PriceHistory.in_stock,
            PriceHistory.observed_at,
            seen_until(),
            PriceHistory.suspicious,
        )
        .join(Listing, Listing.id == PriceHistory.listing_id)
        .join(Competitor, Competitor.id == Listing.competitor_id)
        .where(Listing.product_id == product_id)
        .order_by(PriceHistory.observed_at, PriceHistory.id)
    )
    if since is not None:
        query = query.where(seen_until() >= since)
    return query


def read_history(store: Store, product_id: int, since: datetime | None) -> list[tuple[Any, ...]]:
    """One product's competitor history, oldest first, in its own short session (so a strategy
    running in a worker thread never shares the engine's session).

    Rows: (competitor, price, currency, in_stock, observed_at, last_seen_at, suspicious).
    """
    with store.session() as session:
        return [tuple(row) for row in session.execute(_history_query(product_id, since))]


def save_suggestions(
    session: Session, computed_product_ids: Sequence[int], rows: Sequence[dict[str, Any]], *, now: datetime
) -> list[int]:
    """Store new suggestions for the products just computed; returns the ids of auto-approved ones.

    A pending suggestion that says the same as the new one stays as it is (its id and age mean
    something to the reviewer); any other pending one of a computed product is superseded: the
    market moved, or the price is now right.
    """
    existing: dict[int, tuple[Decimal, str]] = {}
    for start in range(0, len(computed_product_ids), 500):
        ids = computed_product_ids[start : start + 500]
        for pid, price, strategy in session.execute(
            select(Suggestion.product_id, Suggestion.suggested_price, Suggestion.strategy).where(
                Suggestion.status == "pending", Suggestion.product_id.in_(ids)
            )
        ):
            existing[pid] = (price, strategy)
    keep = {
        r["product_id"]
        for r in rows
        if r["status"] == "pending" and existing.get(r["product_id"]) == (r["suggested_price"], r["strategy"])
    }
    stale = [pid for pid in existing if pid not in keep]
    for start in range(0, len(stale), 500):
        session.execute(
            update(Suggestion)
            .where(Suggestion.status == "pending", Suggestion.product_id.in_(stale[start : start + 500]))
            .values(status="superseded", decided_at=now, decided_by="pricemon")
            .execution_options(synchronize_session=False)
        )
    manual = [r for r in rows if r["status"] != "approved" and r["product_id"] not in keep]
    if manual:
        session.connection().execute(insert(Suggestion.__table__), manual)  # type: ignore[arg-type]
    auto_ids: list[int] = []
    for row in rows:  # auto-approved ones are few by nature, and their ids are needed to apply them
        if row["status"] == "approved":
            auto_ids.append(session.execute(insert(Suggestion).values(**row).returning(Suggestion.id)).scalar_one())
    return auto_ids


def suggestion_rows(
    session: Session, *, status: str | None = "pending", skus: Sequence[str] = (), limit: int | None = None
) -> list[dict[str, Any]]:
    query = (
        select(Suggestion, Product.sku, Product.name)
        .join(Product, Product.id == Suggestion.product_id)
        .order_by(Suggestion.id)
    )
    if status is not None:
        query = query.where(Suggestion.status == status)
    if skus:
        query = query.where(Product.sku.in_(skus))
    if limit is not None:
        query = query.limit(limit)
    return [
        {
            "id": s.id,
            "sku": sku,
            "name": name,
            "strategy": s.strategy,
            "current_price": format_amount(s.current_price),
            "suggested_price": format_amount(s.suggested_price),
            "currency": s.currency,
            "reason": s.reason,
            "status": s.status,
            "auto_approved": s.auto_approved,
            "created_at": s.created_at.isoformat(),
            "decided_at": s.decided_at.isoformat() if s.decided_at else None,
            "decided_by": s.decided_by,
            "details": s.details,
            # per day, from the product's demand model (None: no usable model or no cost); the
            # units, revenue and profit before/after it comes from are in `expected`
            "expected_profit_change": format_amount(s.expected_profit_change),
            "expected": (s.details or {}).get("expected"),
        }
        for s, sku, name in session.execute(query)
    ]


def decide(
    session: Session,
    status: str,
    *,
    ids: Sequence[int] = (),
    skus: Sequence[str] = (),
    everything: bool = False,
    by: str,
    now: datetime | None = None,
    dry_run: bool = False,
) -> list[dict[str, Any]]:
    """Approve or reject pending suggestions chosen by id, by SKU or all; returns the ones decided
    (id, sku, prices), by id. `dry_run` chooses the same ones and changes nothing."""
    if status not in ("approved", "rejected"):
        raise ValueError(status)
    if not (ids or skus or everything):
        raise PricemonError("say which suggestions: ID..., --sku SKU or --all")
    if everything and (ids or skus):
        raise PricemonError("--all decides every pending suggestion: give it alone, without IDs or --sku")
    when = now or utcnow()
    pending = select(Suggestion.id).where(Suggestion.status == "pending")
    chosen: set[int] = set()
    if ids:
        found = dict(session.execute(select(Suggestion.id, Suggestion.status).where(Suggestion.id.in_(ids))).all())
        for sid in ids:
            if sid not in found:
                raise NotFoundError(f"no suggestion {sid}")
            if found[sid] != "pending":
                raise PricemonError(f"suggestion {sid} is {found[sid]}, not pending")
        chosen.update(ids)
    if skus:
        known = set(session.scalars(select(Product.sku).where(Product.sku.in_(skus))))
        missing = [s for s in skus if s not in known]
        if missing:
            raise NotFoundError(f"no product with SKU {missing[0]!r}")
        chosen.update(
            session.scalars(pending.join(Product, Product.id == Suggestion.product_id).where(Product.sku.in_(skus)))
        )
    if everything:
        chosen.update(session.scalars(pending))
    ordered = sorted(chosen)
    decided: list[int] = []
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        if dry_run:
            decided.extend(session.scalars(pending.where(Suggestion.id.in_(chunk))))
            continue
        # Only what is still pending when the UPDATE takes its row: another process may have
        # decided some meanwhile, and those are not reported as decided here.
        decided.extend(
            session.scalars(
                update(Suggestion)
                .where(Suggestion.id.in_(chunk), Suggestion.status == "pending")
                .values(status=status, decided_at=when, decided_by=by)
                .returning(Suggestion.id)
                .execution_options(synchronize_session=False)
            )
        )
    rows: list[dict[str, Any]] = []
    decided.sort()
    for start in range(0, len(decided), 500):
        query = (
            select(
                Suggestion.id, Product.sku, Suggestion.current_price, Suggestion.suggested_price, Suggestion.currency
            )
            .join(Product, Product.id == Suggestion.product_id)
            .where(Suggestion.id.in_(decided[start : start + 500]))
            .order_by(Suggestion.id)
        )
        rows.extend(
            {
                "id": sid,
                "sku": sku,
                "current_price": format_amount(current),
                "suggested_price": format_amount(suggested),
                "currency": currency,
            }
            for sid, sku, current, suggested, currency in session.execute(query)
        )
    return rows


def apply_approved(
    session: Session, *, by: str, feed_state: str, ids: Sequence[int] | None = None, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Apply approved suggestions: set the product's price, write a PriceChange audit row each.

    Exactly once across processes: each suggestion moves approved -> applied by a compare-and-set
    on its status, and its product's price by one on the price it was computed from, so of two
    `pricemon apply` at once (or an apply beside the daemon's auto-apply) only one applies it;
    the other finds the status already moved and skips it. `feed_state` is "pending" when a
    webhook will deliver the change, else "none".
    """
    when = now or utcnow()
    query = (
        select(
            Suggestion.id,
            Suggestion.product_id,
            Suggestion.current_price,
            Suggestion.suggested_price,
            Suggestion.strategy,
            Suggestion.reason,
            Product.sku,
            Product.currency,
        )
        .join(Product, Product.id == Suggestion.product_id)
        .where(Suggestion.status == "approved")
        .order_by(Suggestion.id)
    )
    if ids is not None:
        query = query.where(Suggestion.id.in_(ids))
    applied: list[dict[str, Any]] = []
    # Rows are taken in id order, the suggestion before its product, by every process alike, so
    # two applies on PostgreSQL wait for each other instead of deadlocking.
    for sid, product_id, current, suggested, strategy, reason, sku, currency in session.execute(query).all():
        claimed = session.execute(
            update(Suggestion)
            .where(Suggestion.id == sid, Suggestion.status == "approved")
            .values(
                status="applied",
                decided_at=func.coalesce(Suggestion.decided_at, when),
                decided_by=func.coalesce(Suggestion.decided_by, by),
            )
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            logger.info("suggestion %d for %s: applied or decided by another process meanwhile", sid, sku)
            continue
        moved = session.execute(
            update(Product)
            .where(Product.id == product_id, Product.price == current)
            .values(price=suggested, updated_at=when)
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            # Our price moved since the suggestion was made (an import, another apply): it was
            # computed from a state that no longer holds, so it is not applied blindly.
            session.execute(
                update(Suggestion)
                .where(Suggestion.id == sid)
                .values(status="superseded", decided_at=when, decided_by=by)
                .execution_options(synchronize_session=False)
            )
            logger.warning(
                "suggestion %d for %s not applied: the price is no longer %s, the one it was computed from",
                sid,
                sku,
                format_amount(current),
            )
            continue
        session.execute(
            insert(PriceChange).values(
                product_id=product_id,
                suggestion_id=sid,
                old_price=current,
                new_price=suggested,
                currency=currency,
                strategy=strategy,
                reason=reason,
                applied_by=by,
                applied_at=when,
                feed_state=feed_state,
            )
        )
        applied.append(
            {
                "sku": sku,
                "old_price": format_amount(current),
                "new_price": format_amount(suggested),
                "currency": currency,
                "strategy": strategy,
                "suggestion_id": sid,
            }
        )
    return applied


def approved_rows(session: Session) -> list[dict[str, Any]]:
    """What `apply` would apply now (for `apply --dry-run`): approved suggestions whose product
    still has the price they were computed from."""
    query = (
        select(
            Suggestion.id,
            Suggestion.current_price,
            Suggestion.suggested_price,
            Suggestion.strategy,
            Product.sku,
            Product.currency,
            Product.price,
        )
        .join(Product, Product.id == Suggestion.product_id)
        .where(Suggestion.status == "approved")
        .order_by(Suggestion.id)
    )
    return [
        {
            "sku": sku,
            "old_price": format_amount(current),
            "new_price": format_amount(suggested),
            "currency": currency,
            "strategy": strategy,
            "suggestion_id": sid,
        }
        for sid, current, suggested, strategy, sku, currency, price in session.execute(query)
        if price == current
    ]


def claim_unsent_changes(
    session: Session, *, limit: int, stale_after: timedelta, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Take up to `limit` applied changes the webhook has not confirmed yet, oldest first, for
    this feed send alone: a compare-and-set marks them "sending", so a second send at the same
    time (another `apply`, the daemon, `feed send`) does not post them too. A claim older than
    `stale_after` belongs to a send that died and is taken again. The caller commits the claim
    before it posts."""
    when = now or utcnow()
    unsent = or_(
        PriceChange.feed_state.in_(("pending", "failed")),
        and_(PriceChange.feed_state == "sending", PriceChange.feed_claimed_at < when - stale_after),
    )
    candidates = list(session.scalars(select(PriceChange.id).where(unsent).order_by(PriceChange.id).limit(limit)))
    if not candidates:
        return []
    # The condition is evaluated again on each row as the UPDATE locks it: on PostgreSQL a row
    # another send claimed meanwhile no longer matches once that send has committed.
    claimed = set(
        session.scalars(
            update(PriceChange)
            .where(PriceChange.id.in_(candidates), unsent)
            .values(feed_state="sending", feed_claimed_at=when)
            .returning(PriceChange.id)
            .execution_options(synchronize_session=False)
        )
    )
    query = (
        select(PriceChange, Product.sku)
        .join(Product, Product.id == PriceChange.product_id)
        .where(PriceChange.id.in_(sorted(claimed)))
        .order_by(PriceChange.id)
    )
    return [
        {
            "id": change.id,
            "sku": sku,
            "price": format_amount(change.new_price),
            "old_price": format_amount(change.old_price),
            "currency": change.currency,
            "updated_at": change.applied_at.isoformat(),
            "strategy": change.strategy,
            "reason": change.reason,
            "applied_by": change.applied_by,
        }
        for change, sku in session.execute(query)
    ]


def mark_feed_result(
    session: Session, change_ids: Sequence[int], *, attempts: int, error: str | None, now: datetime | None = None
) -> None:
    """Record one delivery of `change_ids`: sent when `error` is None, else failed (kept for a resend)."""
    # the stored error is shown later (feed send, report): never with a credential
    stored = None if error is None else redact_text(error)
    values: dict[str, Any] = {"feed_attempts": PriceChange.feed_attempts + attempts, "feed_error": stored}
    if error is None:
        values.update(feed_state="sent", feed_sent_at=now or utcnow())
    else:
        values.update(feed_state="failed")
    session.execute(
        update(PriceChange)
        .where(PriceChange.id.in_(change_ids))
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def feed_state_counts(session: Session) -> dict[str, int]:

    return dict(session.execute(select(PriceChange.feed_state, func.count()).group_by(PriceChange.feed_state)).all())


def price_feed_rows(session: Session) -> Iterator[tuple[str, Decimal, str, datetime]]:
    """(sku, price, currency, updated_at) of every active product, streamed, by SKU."""
    query = (
        select(Product.sku, Product.price, Product.currency, Product.updated_at)
        .where(Product.active.is_(True))
        .order_by(Product.sku)
    )
    for row in session.execute(query.execution_options(yield_per=5000)):
        yield row[0], row[1], row[2], row[3]


def backtest_rows(
    session: Session, *, since: datetime, skus: Sequence[str] = ()
) -> Iterator[tuple[ProductOffers, list[tuple[Any, ...]]]]:
    """Each active product with every history row still in force at or after `since`, oldest first.

    Rows: (competitor, url, price, currency, in_stock, observed_at, last_seen_at, suspicious).
    """
    products: Iterable[ProductOffers] = latest_offers(session, skus=skus)
    # Materialised: the history query below is per product, and SQLite cannot interleave two
    # streamed queries on one connection safely.
    for product in list(products):
        rows = session.execute(_history_query(product.id, since, with_url=True))
        yield product, [tuple(r) for r in rows]


def charged_prices(
    session: Session, product_id: int, current: Decimal, *, since: datetime
) -> list[tuple[datetime, Decimal]]:
    """The prices we actually charged from `since` on, as steps (from when, price), oldest first:
    the price in force at `since` (the old price of the first change applied after it, else
    today's), then each applied change."""
    changes = session.execute(
        select(PriceChange.applied_at, PriceChange.old_price, PriceChange.new_price)
        .where(PriceChange.product_id == product_id, PriceChange.applied_at > since)
        .order_by(PriceChange.applied_at, PriceChange.id)
    ).all()
    start = changes[0].old_price if changes else current
    return [(since, start), *((c.applied_at, c.new_price) for c in changes)]
