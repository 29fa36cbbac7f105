"""Alert rules: which events a sweep raises, after filters, deduplication and quiet periods.

Only what the sweep recorded is looked at (its trusted history rows, the failure state of the
listings it swept, pending suggestions), never the whole history.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from monitor.errors import NotFoundError
from monitor.money import format_amount
from monitor.settings import AlertRule, Settings
from monitor.store import alerts as queries
from monitor.store.alerts import FailingCompetitor, FailingListing, NewEvent, PendingSuggestion, RunChange
from monitor.store.database import Store
from monitor.store.models import utcnow

logger = logging.getLogger(__name__)

PRICE_CONDITIONS = frozenset({"undercut", "price_drop", "price_rise", "all_time_low", "back_in_stock", "out_of_stock"})
HUNDRED = Decimal(100)
PERCENT_PLACES = Decimal("0.1")


@dataclass(frozen=True, slots=True)
class RaisedAlert:
    """An event a rule raised and stored; its deliveries are queued."""

    id: int
    rule: str
    condition: str
    subject: str
    key: str
    message: str
    payload: dict[str, Any]


@dataclass(slots=True)
class _SweepFacts:
    """What the sweep left behind, each read once however many rules look at it."""

    changes: list[RunChange] | None = None
    listings_failing: list[FailingListing] | None = None
    competitors_failing: list[FailingCompetitor] | None = None
    suggestions: list[PendingSuggestion] | None = None


def evaluate_run(settings: Settings, store: Store, run_id: int, *, now: datetime | None = None) -> list[RaisedAlert]:
    """Raise the alerts of every enabled rule for sweep `run_id`; each is stored with a pending
    delivery per channel (send them with `deliver_pending`)."""
    rules = [rule for rule in settings.alerts if rule.enabled]
    if not rules:
        return []
    now = now or utcnow()
    raised: list[RaisedAlert] = []
    with store.session() as session:
        swept = queries.run_competitors(session, run_id)
        if swept is None:
            raise NotFoundError(f"scrape run {run_id} does not exist")
        facts = _SweepFacts()
        for rule in rules:
            if rule.condition in PRICE_CONDITIONS and facts.changes is None:
                facts.changes = queries.run_changes(session, run_id)
            elif rule.condition == "scrape_failing" and rule.scope == "listing":
                if facts.listings_failing is None:
                    facts.listings_failing = queries.failing_listings(session, swept)
            elif rule.condition == "scrape_failing":
                if facts.competitors_failing is None:
                    facts.competitors_failing = queries.failing_competitors(session, swept)
            elif rule.condition == "new_suggestion" and facts.suggestions is None:
                facts.suggestions = queries.pending_suggestions(session)
            candidates = list(_candidates(rule, facts, now))
            if not candidates:
                continue
            known = queries.existing_keys(session, rule.name, [c.key for c in candidates])
            quiet: set[str] = set()
            if rule.quiet_period.total_seconds() > 0:
                quiet = queries.recent_subjects(
                    session, rule.name, sorted({c.subject for c in candidates}), now - rule.quiet_period
                )
            for event in candidates:
                if event.key in known:
                    continue
                if event.subject in quiet:
                    logger.debug("alert %s held back: %s is in its quiet period", rule.name, event.subject)
                    continue
                event_id = queries.add_event(session, event, rule.channels, now)
                if event_id is None:
                    continue
                known.add(event.key)
                if rule.quiet_period.total_seconds() > 0:
                    quiet.add(event.subject)  # one alert per subject per quiet period, within a sweep too
                raised.append(
                    RaisedAlert(
                        event_id, rule.name, rule.condition, event.subject, event.key, event.message, event.payload
                    )
                )
    if raised:
        logger.info("alerts: sweep %s raised %d alert(s)", run_id, len(raised), extra={"run_id": run_id})
    return raised


def _matches(rule: AlertRule, *, competitor: str | None, sku: str | None, tags: Sequence[str] | None) -> bool:
    """Filters that do not apply to a subject (a competitor has no SKU) do not exclude it."""
    if rule.competitors and competitor is not None and competitor not in rule.competitors:
        return False
    if rule.skus and sku is not None and sku not in rule.skus:
        return False
    return not (rule.tags and tags is not None and not set(rule.tags) & set(tags))


def _percent(part: Decimal, whole: Decimal) -> Decimal:
    return (part / whole * HUNDRED).quantize(PERCENT_PLACES)


def _money(value: Decimal | None) -> str | None:
    return format_amount(value)


def _candidates(rule: AlertRule, facts: _SweepFacts, now: datetime) -> Iterator[NewEvent]:
    if rule.condition in PRICE_CONDITIONS:
        for change in facts.changes or ():
            if _matches(rule, competitor=change.competitor, sku=change.sku, tags=change.tags):
                event = _price_event(rule, change)
                if event is not None:
                    yield event
    elif rule.condition == "new_suggestion":
        for suggestion in facts.suggestions or ():
            if _matches(rule, competitor=None, sku=suggestion.sku, tags=suggestion.tags):
                event = _suggestion_event(rule, suggestion)
                if event is not None:
                    yield event
    elif rule.scope == "listing":
        for listing in facts.listings_failing or ():
            if now - listing.since > rule.failing_for and _matches(
                rule, competitor=listing.competitor, sku=listing.sku, tags=listing.tags
            ):
                yield _listing_failing_event(rule, listing)
    else:
        for competitor in facts.competitors_failing or ():
            if now - competitor.since > rule.failing_for and _matches(
                rule, competitor=competitor.competitor, sku=None, tags=None
            ):
                yield _competitor_failing_event(rule, competitor)


def _base_payload(change: RunChange) -> dict[str, Any]:
    return {
        "competitor": change.competitor,
        "sku": change.sku,
        "product": change.product_name,
        "listing_id": change.listing_id,
        "price": _money(change.price),
        "currency": change.currency,
        "in_stock": change.in_stock,
        "previous_price": _money(change.previous_price),
        "previous_in_stock": change.previous_in_stock,
        "our_price": _money(change.our_price),
        "our_currency": change.our_currency,
        "observed_at": change.observed_at.isoformat(),
    }


def _price_event(rule: AlertRule, c: RunChange) -> NewEvent | None:
    subject = f"listing:{c.listing_id}"
    what = f"{c.competitor}: {c.sku} ({c.product_name})"
    payload = _base_payload(c)

    def event(key: str, message: str, **extra: Any) -> NewEvent:
        return NewEvent(rule.name, key, subject, rule.condition, message, {**payload, **extra})

    if rule.condition == "undercut":
        # Only a trusted price we can compare: known not to be out of stock, in our currency.
        if c.price is None or c.in_stock is False or c.currency_mismatch or c.currency != c.our_currency:
            return None
        gap = c.our_price - c.price
        if gap <= 0 or c.our_price <= 0:
            return None
        gap_percent = _percent(gap, c.our_price)
        if rule.amount is not None and gap <= rule.amount:
            return None
        if rule.percent is not None and gap / c.our_price * HUNDRED <= rule.percent:
            return None
        return event(
            f"h{c.history_id}:our{_money(c.our_price)}",
            f"{what} sells at {_money(c.price)} {c.currency}, {_money(gap)} ({gap_percent}%) below our "
            f"{_money(c.our_price)}",
            undercut_by=_money(gap),
            undercut_percent=str(gap_percent),
        )
    if rule.condition in ("price_drop", "price_rise"):
        old, new = c.previous_price, c.price
        if old is None or new is None or old <= 0 or c.previous_currency != c.currency:
            return None
        moved = (new - old) / old * HUNDRED
        threshold = rule.percent or Decimal(0)
        if rule.condition == "price_drop" and not -moved > threshold:
            return None
        if rule.condition == "price_rise" and not moved > threshold:
            return None
        verb = "dropped" if moved < 0 else "rose"
        shown = abs(moved).quantize(PERCENT_PLACES)
        return event(
            f"h{c.history_id}",
            f"{what} {verb} {shown}% from {_money(old)} to {_money(new)} {c.currency}",
            change_percent=str(moved.quantize(PERCENT_PLACES)),
        )
    if rule.condition == "all_time_low":
        if c.price is None or c.lowest_before is None or c.in_stock is False or c.price >= c.lowest_before:
            return None
        return event(
            f"h{c.history_id}",
            f"{what} is at an all-time low of {_money(c.price)} {c.currency}"
            f" (lowest before: {_money(c.lowest_before)})",
            lowest_before=_money(c.lowest_before),
        )
    if rule.condition == "back_in_stock":
        if not (c.previous_in_stock is False and c.in_stock is True):
            return None
        return event(f"h{c.history_id}", f"{what} is back in stock at {_money(c.price)} {c.currency or ''}".rstrip())
    if rule.condition == "out_of_stock":
        if not (c.previous_in_stock is True and c.in_stock is False):
            return None
        return event(f"h{c.history_id}", f"{what} is out of stock")
    return None


def _suggestion_event(rule: AlertRule, s: PendingSuggestion) -> NewEvent | None:
    delta = s.suggested_price - s.current_price
    if delta == 0:
        return None
    impact = abs(delta) / s.current_price * HUNDRED if s.current_price > 0 else HUNDRED
    if impact <= (rule.percent or Decimal(0)):
        return None
    signed = impact.quantize(PERCENT_PLACES) * (1 if delta > 0 else -1)
    return NewEvent(
        rule.name,
        f"suggestion:{s.suggestion_id}",
        f"product:{s.sku}",
        rule.condition,
        f"{s.sku} ({s.product_name}): {s.strategy} suggests {_money(s.suggested_price)} {s.currency} instead of "
        f"{_money(s.current_price)} ({'+' if delta > 0 else ''}{signed}%): {s.reason}",
        {
            "suggestion_id": s.suggestion_id,
            "sku": s.sku,
            "product": s.product_name,
            "strategy": s.strategy,
            "current_price": _money(s.current_price),
            "suggested_price": _money(s.suggested_price),
            "currency": s.currency,
            "impact_percent": str(signed),
            "reason": s.reason,
        },
    )


def _listing_failing_event(rule: AlertRule, f: FailingListing) -> NewEvent:
    since = f.since.isoformat()
    return NewEvent(
        rule.name,
        f"listing:{f.listing_id}:since:{since}",
        f"listing:{f.listing_id}",
        rule.condition,
        f"{f.competitor}: {f.sku} has not been checked successfully since {since} "
        f"({f.consecutive_failures} failure(s) in a row, last: {f.last_error or f.last_outcome})",
        {
            "competitor": f.competitor,
            "sku": f.sku,
            "listing_id": f.listing_id,
            "since": since,
            "consecutive_failures": f.consecutive_failures,
            "last_outcome": f.last_outcome,
            "last_error": f.last_error,
        },
    )


def _competitor_failing_event(rule: AlertRule, f: FailingCompetitor) -> NewEvent:
    since = f.since.isoformat()
    return NewEvent(
        rule.name,
        f"competitor:{f.competitor}:since:{since}",
        f"competitor:{f.competitor}",
        rule.condition,
        f"{f.competitor}: no listing checked successfully since {since} ({f.failing} of {f.listings} failing)",
        {"competitor": f.competitor, "since": since, "failing": f.failing, "listings": f.listings},
    )


def sample_event(rule: AlertRule) -> NewEvent:
    """A made-up event of the rule's condition, for `pricemon alerts test`."""
    message = f"test alert of rule {rule.name!r} ({rule.condition}): if you read this, the channel works"
    return NewEvent(rule.name, "test", "test", rule.condition, message, {"test": True})
