"""Delivering queued alerts: one grouped message per channel, retried with backoff until it is taken."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta

from monitor.alerts.channels import ChannelError, compose, send
from monitor.alerts.rules import sample_event
from monitor.errors import NotFoundError
from monitor.settings import Settings
from monitor.store import alerts as queries
from monitor.store.alerts import DueDelivery
from monitor.store.database import Store
from monitor.store.models import utcnow

logger = logging.getLogger(__name__)

# How long a claimed delivery stays reserved for its sender; past it (the sender died), it is due again.
CLAIM_LEASE = timedelta(minutes=5)


def _event_view(d: DueDelivery) -> dict[str, object]:
    return {
        "id": d.event_id,
        "rule": d.rule,
        "condition": d.condition,
        "subject": d.subject,
        "message": d.message,
        "created_at": d.created_at.isoformat(),
        "payload": d.payload,
    }


def retry_delay(settings: Settings, attempts_before: int) -> timedelta:
    """Wait after the (attempts_before + 1)-th failure: retry_base doubled each time, up to retry_max."""
    base, ceiling = settings.alerting.retry_base, settings.alerting.retry_max
    if attempts_before >= 32:
        return ceiling
    return min(base * (2**attempts_before), ceiling)


def deliver_pending(
    settings: Settings, store: Store, *, now: datetime | None = None, environ: Mapping[str, str] | None = None
) -> Counter[str]:
    """Send every delivery that is due, grouped into one message per channel (at most
    `alerting.max_events_per_message` events each). Returns counts: sent, failed (kept and retried
    later), waiting (its channel is no longer configured; kept until it is)."""
    now = now or utcnow()
    counts: Counter[str] = Counter()
    with store.session() as session:
        due = queries.due_deliveries(session, now)
        # Claim only what can be sent now; alerts for a channel no longer configured stay due.
        sendable = [d for d in due if settings.alerting.channel(d.channel) is not None]
        claimed = queries.claim_deliveries(session, sendable, now, lease_until=now + CLAIM_LEASE)
        due = claimed + [d for d in due if settings.alerting.channel(d.channel) is None]
    by_channel: dict[str, list[DueDelivery]] = defaultdict(list)
    for delivery in due:
        by_channel[delivery.channel].append(delivery)
    size = settings.alerting.max_events_per_message
    for name, deliveries in by_channel.items():
        channel = settings.alerting.channel(name)
        if channel is None:
            logger.warning("alerts: %d alert(s) wait for channel %r, which is not configured", len(deliveries), name)
            counts["waiting"] += len(deliveries)
            continue
        for start in range(0, len(deliveries), size):
            batch = deliveries[start : start + size]
            message = compose([_event_view(d) for d in batch])
            try:
                send(channel, message, environ)
            except ChannelError as exc:
                retry_at = {d.delivery_id: now + retry_delay(settings, d.attempts) for d in batch}
                with store.session() as session:
                    queries.mark_failed(session, [d.delivery_id for d in batch], str(exc), now, retry_at)
                counts["failed"] += len(batch)
                logger.warning(
                    "alerts: channel %s failed, %d alert(s) kept for a retry at %s: %s",
                    name,
                    len(batch),
                    min(retry_at.values()).isoformat(),
                    exc,
                    extra={"channel": name},
                )
                break  # the channel is down: the rest of its queue waits for the retry as well
            with store.session() as session:
                queries.mark_sent(session, [d.delivery_id for d in batch], utcnow())
            counts["sent"] += len(batch)
            logger.info("alerts: sent %d alert(s) through %s", len(batch), name, extra={"channel": name})
    return counts


def send_test(settings: Settings, rule_name: str, environ: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """Send a sample alert through each channel of a rule, storing nothing.

    Returns {channel: None if it was sent, else the reason it failed}.
    """
    rule = next((r for r in settings.alerts if r.name == rule_name), None)
    if rule is None:
        known = ", ".join(r.name for r in settings.alerts) or "none configured"
        raise NotFoundError(f"no alert rule named {rule_name!r} (rules: {known})")
    event = sample_event(rule)
    message = compose(
        [
            {
                "id": None,
                "rule": rule.name,
                "condition": rule.condition,
                "subject": event.subject,
                "message": event.message,
                "created_at": utcnow().isoformat(),
                "payload": event.payload,
            }
        ]
    )
    results: dict[str, str | None] = {}
    for name in rule.channels:
        channel = settings.alerting.channel(name)
        assert channel is not None  # the settings check that rules name existing channels
        try:
            send(channel, message, environ)
            results[name] = None
        except ChannelError as exc:
            results[name] = str(exc)
    return results
