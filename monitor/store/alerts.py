"""Alert queries: what a sweep changed, who is failing, the events raised and their deliveries.

Events are unique per (rule, key), so an event is raised at most once per rule whatever restarts;
each has one delivery row per channel that stays until the channel has taken it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from monitor.redact import redact_text
from monitor.store.models import (
    AlertDelivery,
    AlertEvent,
    Competitor,
    Listing,
    PriceHistory,
    Product,
    ScrapeRun,
    Suggestion,
)

CHUNK = 900  # stay below SQLite's bound-parameter limit in IN (...) lists
RETRY_STATUSES = ("pending", "failed")


@dataclass(frozen=True, slots=True)
class RunChange:
    """A trusted state a sweep recorded for a listing, next to the trusted state before it."""

    history_id: int
    listing_id: int
    competitor: str
    sku: str
    product_name: str
    tags: tuple[str, ...]
    our_price: Decimal
    our_currency: str
    price: Decimal | None
    currency: str | None
    in_stock: bool | None
    currency_mismatch: bool
    observed_at: datetime
    previous_price: Decimal | None
    previous_currency: str | None
    previous_in_stock: bool | None
    has_previous: bool
    # lowest trusted price of this listing before this state, in this state's currency
    lowest_before: Decimal | None


@dataclass(frozen=True, slots=True)
class FailingListing:
    listing_id: int
    competitor: str
    sku: str
    tags: tuple[str, ...]
    since: datetime
    consecutive_failures: int
    last_outcome: str | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class FailingCompetitor:
    competitor: str
    since: datetime
    failing: int
    listings: int


@dataclass(frozen=True, slots=True)
class PendingSuggestion:
    suggestion_id: int
    sku: str
    product_name: str
    tags: tuple[str, ...]
    strategy: str
    current_price: Decimal
    suggested_price: Decimal
    currency: str
    reason: str


@dataclass(frozen=True, slots=True)
class NewEvent:
    rule: str
    key: str
    subject: str
    condition: str
    message: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DueDelivery:
    delivery_id: int
    event_id: int
    channel: str
    attempts: int
    rule: str
    condition: str
    subject: str
    message: str
    payload: dict[str, Any]
    created_at: datetime


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def run_competitors(session: Session, run_id: int) -> list[str] | None:
    """The competitors a run swept (empty list: all of them); None when the run does not exist."""
    run = session.get(ScrapeRun, run_id)
    return None if run is None else list(run.competitors or [])


def run_changes(session: Session, run_id: int) -> list[RunChange]:
    """Trusted states recorded by run `run_id` (new ones, and suspicious ones it confirmed)."""
    earlier = aliased(PriceHistory)
    previous_id = (
        select(earlier.id)
        .where(
            earlier.listing_id == PriceHistory.listing_id, earlier.id < PriceHistory.id, earlier.suspicious.is_(False)
        )
        .order_by(earlier.id.desc())
        .limit(1)
        .correlate(PriceHistory)
        .scalar_subquery()
    )
    lowest_before = (
        select(func.min(earlier.price))
        .where(
            earlier.listing_id == PriceHistory.listing_id,
            earlier.id < PriceHistory.id,
            earlier.suspicious.is_(False),
            earlier.currency == PriceHistory.currency,
        )
        .correlate(PriceHistory)
        .scalar_subquery()
    )
    rows = session.execute(
        select(
            PriceHistory.id,
            PriceHistory.listing_id,
            PriceHistory.price,
            PriceHistory.currency,
            PriceHistory.in_stock,
            PriceHistory.currency_mismatch,
            PriceHistory.observed_at,
            Competitor.name.label("competitor"),
            Product.sku,
            Product.name.label("product_name"),
            Product.tags,
            Product.price.label("our_price"),
            Product.currency.label("our_currency"),
            previous_id.label("previous_id"),
            lowest_before.label("lowest_before"),
        )
        .join(Listing, Listing.id == PriceHistory.listing_id)
        .join(Product, Product.id == Listing.product_id)
        .join(Competitor, Competitor.id == Listing.competitor_id)
        .where(PriceHistory.run_id == run_id, PriceHistory.suspicious.is_(False), Listing.active.is_(True))
        .order_by(PriceHistory.id)
    ).all()
    previous_ids = [r.previous_id for r in rows if r.previous_id is not None]
    previous: dict[int, PriceHistory] = {}
    for chunk in _chunks(previous_ids):
        for row in session.scalars(select(PriceHistory).where(PriceHistory.id.in_(chunk))):
            previous[row.id] = row
    changes = []
    for r in rows:
        before = previous.get(r.previous_id) if r.previous_id is not None else None
        changes.append(
            RunChange(
                history_id=r.id,
                listing_id=r.listing_id,
                competitor=r.competitor,
                sku=r.sku,
                product_name=r.product_name,
                tags=tuple(r.tags or ()),
                our_price=r.our_price,
                our_currency=r.our_currency,
                price=r.price,
                currency=r.currency,
                in_stock=r.in_stock,
                currency_mismatch=r.currency_mismatch,
                observed_at=r.observed_at,
                previous_price=before.price if before else None,
                previous_currency=before.currency if before else None,
                previous_in_stock=before.in_stock if before else None,
                has_previous=before is not None,
                lowest_before=r.lowest_before,
            )
        )
    return changes


def failing_listings(session: Session, competitors: Sequence[str]) -> list[FailingListing]:
    """Active listings whose last check failed, with when they last worked (or were added)."""
    query = (
        select(
            Listing.id,
            Competitor.name,
            Product.sku,
            Product.tags,
            func.coalesce(Listing.last_success_at, Listing.created_at).label("since"),
            Listing.consecutive_failures,
            Listing.last_outcome,
            Listing.last_error,
        )
        .join(Product, Product.id == Listing.product_id)
        .join(Competitor, Competitor.id == Listing.competitor_id)
        .where(Listing.active.is_(True), Listing.consecutive_failures > 0)
        .order_by(Listing.id)
    )
    if competitors:
        query = query.where(Competitor.name.in_(list(competitors)))
    return [
        FailingListing(
            listing_id=r.id,
            competitor=r.name,
            sku=r.sku,
            tags=tuple(r.tags or ()),
            since=_aware(r.since),
            consecutive_failures=r.consecutive_failures,
            last_outcome=r.last_outcome,
            last_error=r.last_error,
        )
        for r in session.execute(query)
    ]


def failing_competitors(session: Session, competitors: Sequence[str]) -> list[FailingCompetitor]:
    """Competitors whose every checked listing currently fails, and since when none has worked."""
    failing = func.sum(case((Listing.consecutive_failures > 0, 1), else_=0))
    query = (
        select(
            Competitor.name,
            func.max(Listing.last_success_at).label("last_success"),
            func.min(Listing.created_at).label("first_added"),
            failing.label("failing"),
            func.count(Listing.id).label("listings"),
        )
        .join(Listing, and_(Listing.competitor_id == Competitor.id, Listing.active.is_(True)))
        .group_by(Competitor.name)
        # Every listing checked so far failed its last check: one working listing means the
        # shop is up and the others are listing problems (the "listing" scope reports those).
        .having(failing > 0, failing == func.count(Listing.last_checked_at))
        .order_by(Competitor.name)
    )
    if competitors:
        query = query.where(Competitor.name.in_(list(competitors)))
    out = []
    for r in session.execute(query):
        since = r.last_success if r.last_success is not None else r.first_added
        out.append(FailingCompetitor(r.name, _aware(since), int(r.failing), int(r.listings)))
    return out


def _aware(value: Any) -> datetime:
    # Aggregates (max/min/coalesce) lose the column type on SQLite and come back as naive
    # datetimes or strings; they were stored as UTC.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def pending_suggestions(session: Session) -> list[PendingSuggestion]:
    rows = session.execute(
        select(Suggestion, Product.sku, Product.name, Product.tags)
        .join(Product, Product.id == Suggestion.product_id)
        .where(Suggestion.status == "pending")
        .order_by(Suggestion.id)
    ).all()
    return [
        PendingSuggestion(
            suggestion_id=s.id,
            sku=sku,
            product_name=name,
            tags=tuple(tags or ()),
            strategy=s.strategy,
            current_price=s.current_price,
            suggested_price=s.suggested_price,
            currency=s.currency,
            reason=s.reason,
        )
        for s, sku, name, tags in rows
    ]


def existing_keys(session: Session, rule: str, keys: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(list(keys)):
        found.update(session.scalars(select(AlertEvent.key).where(AlertEvent.rule == rule, AlertEvent.key.in_(chunk))))
    return found


def recent_subjects(session: Session, rule: str, subjects: Sequence[str], since: datetime) -> set[str]:
    """Subjects this rule alerted about after `since` (they are in their quiet period)."""
    found: set[str] = set()
    for chunk in _chunks(list(subjects)):
        found.update(
            session.scalars(
                select(AlertEvent.subject).where(
                    AlertEvent.rule == rule, AlertEvent.subject.in_(chunk), AlertEvent.created_at > since
                )
            )
        )
    return found


def add_event(session: Session, event: NewEvent, channels: Sequence[str], now: datetime) -> int | None:
    """Store an event and a pending delivery per channel; None when the rule already has this key."""
    try:
        with session.begin_nested():
            row = AlertEvent(
                rule=event.rule,
                key=event.key,
                subject=event.subject,
                condition=event.condition,
                message=event.message,
                payload=event.payload,
                created_at=now,
            )
            session.add(row)
            session.flush()
            for channel in channels:
                session.add(AlertDelivery(event_id=row.id, channel=channel, status="pending", next_attempt_at=now))
            session.flush()
    except IntegrityError:
        # Another process raised the same event first: at most once per rule still holds.
        return None
    return row.id


def due_deliveries(session: Session, now: datetime, channels: Sequence[str] | None = None) -> list[DueDelivery]:
    """Undelivered deliveries whose next attempt is due, oldest event first."""
    query = (
        select(AlertDelivery, AlertEvent)
        .join(AlertEvent, AlertEvent.id == AlertDelivery.event_id)
        .where(
            AlertDelivery.status.in_(RETRY_STATUSES),
            (AlertDelivery.next_attempt_at.is_(None)) | (AlertDelivery.next_attempt_at <= now),
        )
        .order_by(AlertEvent.id, AlertDelivery.id)
    )
    if channels is not None:
        query = query.where(AlertDelivery.channel.in_(list(channels)))
    return [
        DueDelivery(
            delivery_id=d.id,
            event_id=e.id,
            channel=d.channel,
            attempts=d.attempts,
            rule=e.rule,
            condition=e.condition,
            subject=e.subject,
            message=e.message,
            payload=dict(e.payload or {}),
            created_at=e.created_at,
        )
        for d, e in session.execute(query)
    ]


def claim_deliveries(
    session: Session, due: Sequence[DueDelivery], now: datetime, lease_until: datetime
) -> list[DueDelivery]:
    """Take the deliveries this caller will send, so that two senders (the daemon's delivery job
    and a sweep's `after_sweep`, or `pricemon alerts deliver` in another process) never send the
    same alert twice: each row is moved out of "due" by a conditional UPDATE, and only the caller
    whose UPDATE matched owns it. If the owner dies, the lease runs out and the alert is retried."""
    claimed = []
    for delivery in due:
        result = session.execute(
            update(AlertDelivery)
            .where(
                AlertDelivery.id == delivery.delivery_id,
                AlertDelivery.status.in_(RETRY_STATUSES),
                (AlertDelivery.next_attempt_at.is_(None)) | (AlertDelivery.next_attempt_at <= now),
            )
            .values(next_attempt_at=lease_until)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            claimed.append(delivery)
    return claimed


def mark_sent(session: Session, delivery_ids: Sequence[int], now: datetime) -> None:
    for chunk in _chunks(list(delivery_ids)):
        for delivery in session.scalars(select(AlertDelivery).where(AlertDelivery.id.in_(chunk))):
            delivery.status = "sent"
            delivery.attempts += 1
            delivery.delivered_at = now
            delivery.last_error = None
            delivery.next_attempt_at = None


def mark_failed(
    session: Session, delivery_ids: Sequence[int], error: str, now: datetime, retry_at: dict[int, datetime]
) -> None:
    """Record a failed attempt; the delivery stays queued and is tried again at `retry_at[id]`."""
    for chunk in _chunks(list(delivery_ids)):
        for delivery in session.scalars(select(AlertDelivery).where(AlertDelivery.id.in_(chunk))):
            delivery.status = "failed"
            delivery.attempts += 1
            delivery.last_error = redact_text(error)[:500]
            delivery.next_attempt_at = retry_at[delivery.id]


def recent_alerts(session: Session, *, limit: int = 50, rule: str | None = None) -> list[dict[str, Any]]:
    """The newest events with the state of each of their deliveries (for `pricemon alerts`)."""
    query = select(AlertEvent).order_by(AlertEvent.created_at.desc(), AlertEvent.id.desc()).limit(limit)
    if rule is not None:
        query = query.where(AlertEvent.rule == rule)
    events = list(session.scalars(query))
    deliveries: dict[int, list[AlertDelivery]] = {}
    ids = [e.id for e in events]
    if ids:
        for d in session.scalars(
            select(AlertDelivery).where(AlertDelivery.event_id.in_(ids)).order_by(AlertDelivery.id)
        ):
            deliveries.setdefault(d.event_id, []).append(d)
    return [
        {
            "id": e.id,
            "created_at": e.created_at.isoformat(),
            "rule": e.rule,
            "condition": e.condition,
            "subject": e.subject,
            "message": e.message,
            "payload": e.payload,
            "deliveries": [
                {
                    "channel": d.channel,
                    "status": d.status,
                    "attempts": d.attempts,
                    "last_error": d.last_error,
                    "next_attempt_at": d.next_attempt_at.isoformat() if d.next_attempt_at else None,
                    "delivered_at": d.delivered_at.isoformat() if d.delivered_at else None,
                }
                for d in deliveries.get(e.id, [])
            ],
        }
        for e in events
    ]
