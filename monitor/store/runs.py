"""Scrape runs: one row per sweep, opened before it starts and closed with its counts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from monitor.store.history import FAILURE_OUTCOMES
from monitor.store.models import ScrapeRun, utcnow


def start_run(session: Session, *, trigger: str, competitors: Sequence[str]) -> int:
    run = ScrapeRun(trigger=trigger, competitors=list(competitors), started_at=utcnow(), status="running")
    session.add(run)
    session.flush()
    return run.id


def finish_run(
    session: Session,
    run_id: int,
    *,
    counts: Mapping[str, Mapping[str, Any]],
    status: str = "finished",
    error: str | None = None,
) -> None:
    """Close a run with per-competitor counts `{competitor: {outcome: n, "seconds": s}}`."""
    run = session.get_one(ScrapeRun, run_id)
    run.finished_at = utcnow()
    run.status = status
    run.error = error
    run.counts = {name: dict(values) for name, values in counts.items()}
    checked = changed = failed = 0
    for values in counts.values():
        for outcome, n in values.items():
            if outcome == "seconds":
                continue
            checked += n
            changed += n if outcome == "changed" else 0
            failed += n if outcome in FAILURE_OUTCOMES else 0
    run.checked, run.changed, run.failed = checked, changed, failed
