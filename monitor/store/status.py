"""Health of the monitoring: per-competitor freshness, last sweeps and failing listings, as
`pricemon status` and the daemon's metrics read them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, and_, case, cast, func, or_, select
from sqlalchemy.orm import Session

from monitor.settings import Competitor as CompetitorConfig
from monitor.store.models import Competitor, Listing, Product, ScrapeRun, utcnow

#: failing listings shown per competitor
FAILING_SHOWN = 5


@dataclass
class CompetitorStatus:
    """What `pricemon status` says about one competitor of the config."""

    name: str
    enabled: bool
    schedule: str
    listings: int = 0
    fresh: int = 0
    stale: int = 0
    failing: int = 0
    last_success_at: datetime | None = None
    # The least recently confirmed listing (never-checked ones count from their creation).
    oldest_success_at: datetime | None = None
    # When a competitor never succeeded, staleness counts from its first listing, so a new
    # deployment gets one staleness limit to make its first checks.
    stale_since: datetime | None = None
    next_due_at: datetime | None = None
    last_sweep: dict[str, Any] | None = None
    failing_longest: list[dict[str, Any]] = field(default_factory=list)
    healthy: bool = True


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _schedule(competitor: CompetitorConfig) -> str:
    if competitor.cron:
        return f"cron {competitor.cron}"
    seconds = competitor.interval.total_seconds()
    return f"every {seconds:g}s"


def _active_listings(competitor_id: Any) -> Any:
    return and_(Listing.competitor_id == competitor_id, Listing.active.is_(True), Product.active.is_(True))


def latest_run(session: Session, name: str) -> ScrapeRun | None:
    """The newest scrape run that covered competitor `name` (daemon, CLI or benchmark)."""
    # `competitors` is a JSON list stored as text, written by json.dumps on every backend, so
    # the name appears in it exactly as json.dumps quotes it.
    quoted = json.dumps(name)
    escaped = quoted.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    query = (
        select(ScrapeRun)
        .where(cast(ScrapeRun.competitors, String).like(f"%{escaped}%", escape="\\"))
        .order_by(ScrapeRun.id.desc())
        .limit(1)
    )
    return session.scalars(query).first()


def competitor_status(
    session: Session,
    competitors: Sequence[CompetitorConfig],
    *,
    staleness_limit: timedelta,
    now: datetime | None = None,
    with_last_sweep: bool = True,
) -> list[CompetitorStatus]:
    """Freshness of every configured competitor's active listings.

    A listing is *failing* when its last check failed, *fresh* when it had a successful check
    within `staleness_limit`, and *stale* otherwise. An enabled competitor is unhealthy when
    none of its listings had a successful check within `staleness_limit`. `with_last_sweep=False`
    skips the search of the runs table (the daemon's metrics refresh after every sweep do not need it).
    """
    moment = now or utcnow()
    horizon = moment - staleness_limit
    ids: dict[str, int] = {name: id_ for name, id_ in session.execute(select(Competitor.name, Competitor.id))}
    result: list[CompetitorStatus] = []
    for config in competitors:
        status = CompetitorStatus(name=config.name, enabled=config.enabled, schedule=_schedule(config))
        result.append(status)
        run = latest_run(session, config.name) if with_last_sweep else None
        if run is not None:
            counts = (run.counts or {}).get(config.name, {})
            status.last_sweep = {
                "run_id": run.id,
                "trigger": run.trigger,
                "status": run.status,
                "started_at": _iso(run.started_at),
                "finished_at": _iso(run.finished_at),
                "checked": sum(n for k, n in counts.items() if k != "seconds") if counts else run.checked,
                "counts": counts,
                "error": run.error,
            }
        competitor_id = ids.get(config.name)
        if competitor_id is None:
            continue
        failing = Listing.consecutive_failures > 0
        fresh = and_(~failing, Listing.last_success_at >= horizon)
        row = session.execute(
            select(
                func.count(Listing.id),
                func.sum(case((fresh, 1), else_=0)),
                func.sum(case((failing, 1), else_=0)),
                func.max(Listing.last_success_at),
                func.min(Listing.created_at),
                func.min(Listing.next_check_at),
                func.sum(case((Listing.next_check_at.is_(None), 1), else_=0)),
                func.min(func.coalesce(Listing.last_success_at, Listing.created_at)),
            )
            .join(Product, Listing.product_id == Product.id)
            .where(_active_listings(competitor_id))
        ).one()
        total, n_fresh, n_failing, last_success, first_created, next_due, never_scheduled, oldest = row
        status.listings = total or 0
        status.fresh = n_fresh or 0
        status.failing = n_failing or 0
        status.stale = status.listings - status.fresh - status.failing
        status.last_success_at = last_success
        status.oldest_success_at = oldest
        status.next_due_at = moment if never_scheduled else next_due
        status.stale_since = last_success or first_created
        if config.enabled and status.listings and status.stale_since is not None:
            status.healthy = status.stale_since >= horizon
        failing_rows = session.execute(
            select(
                Listing.id,
                Product.sku,
                Listing.url,
                Listing.last_outcome,
                Listing.last_error,
                Listing.consecutive_failures,
                Listing.last_success_at,
                Listing.last_checked_at,
            )
            .join(Product, Listing.product_id == Product.id)
            .where(_active_listings(competitor_id), failing)
            # failing longest: never succeeded first, then the oldest success, then most failures
            .order_by(
                Listing.last_success_at.is_not(None),
                Listing.last_success_at,
                Listing.consecutive_failures.desc(),
                Listing.id,
            )
            .limit(FAILING_SHOWN)
        ).all()
        status.failing_longest = [
            {
                "listing_id": r.id,
                "sku": r.sku,
                "url": r.url,
                "last_outcome": r.last_outcome,
                "last_error": r.last_error,
                "consecutive_failures": r.consecutive_failures,
                "last_success_at": _iso(r.last_success_at),
                "last_checked_at": _iso(r.last_checked_at),
            }
            for r in failing_rows
        ]
    return result


def status_to_json(status: CompetitorStatus) -> dict[str, Any]:
    return {
        "name": status.name,
        "enabled": status.enabled,
        "schedule": status.schedule,
        "healthy": status.healthy,
        "listings": {
            "total": status.listings,
            "fresh": status.fresh,
            "stale": status.stale,
            "failing": status.failing,
        },
        "last_success_at": _iso(status.last_success_at),
        "next_due_at": _iso(status.next_due_at),
        "last_sweep": status.last_sweep,
        "failing_longest": status.failing_longest,
    }


def count_due(session: Session, competitor: str, *, now: datetime | None = None) -> int:
    """How many active listings of `competitor` are due for a check (what a due-only sweep takes)."""
    moment = now or utcnow()
    query = (
        select(func.count(Listing.id))
        .join(Product, Listing.product_id == Product.id)
        .join(Competitor, Listing.competitor_id == Competitor.id)
        .where(
            Competitor.name == competitor,
            Listing.active.is_(True),
            Product.active.is_(True),
            or_(Listing.next_check_at.is_(None), Listing.next_check_at <= moment),
        )
    )
    return session.scalar(query) or 0


__all__ = [
    "CompetitorStatus",
    "competitor_status",
    "count_due",
    "latest_run",
    "status_to_json",
]
