"""Scrape runs: one row per sweep, opened before it starts and closed with its counts; and the
closing of runs whose process died before it could close them."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from monitor.store.chunks import runs_with_open_chunks
from monitor.store.history import FAILURE_OUTCOMES
from monitor.store.leases import Holder, database_now, live_run_ids
from monitor.store.models import ScrapeRun, utcnow

logger = logging.getLogger(__name__)

#: the error a run closed on behalf of its dead process gets
ABANDONED = "the process stopped before the sweep finished"


def start_run(session: Session, *, trigger: str, competitors: Sequence[str]) -> int:
    """Open a run owned by this process (its holder, "run:ID@HOST:PID", says which)."""
    run = ScrapeRun(trigger=trigger, competitors=list(competitors), started_at=utcnow(), status="running")
    session.add(run)
    session.flush()
    run.holder = Holder.this_process(run.id).id
    return run.id


def finish_run(
    session: Session,
    run_id: int,
    *,
    counts: Mapping[str, Mapping[str, Any]],
    status: str = "finished",
    error: str | None = None,
    competitors: Sequence[str] | None = None,
) -> None:
    """Close a run with per-competitor counts `{competitor: {outcome: n, "seconds": s}}`.

    `competitors` replaces the ones it was opened for (a competitor another sweep held is not
    this run's: `pricemon status` must not show it as that competitor's last sweep)."""
    run = session.get_one(ScrapeRun, run_id)
    run.finished_at = utcnow()
    run.status = status
    run.error = error
    if competitors is not None:
        run.competitors = list(competitors)
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


def close_abandoned_runs(session: Session, *, lease_ttl: timedelta) -> list[int]:
    """Close as interrupted the runs left "running" by a process that died; returns their ids.

    A run is abandoned when its process is known to be gone (a process of this machine that no
    longer exists), or when it holds no live lease although it started more than `lease_ttl` ago:
    a live sweep renews its leases for as long as it runs, wherever it runs (a cluster sweep's
    chunks that are still queued or running count as its leases).
    """
    now = database_now(session)
    running = session.execute(
        select(ScrapeRun.id, ScrapeRun.holder, ScrapeRun.started_at).where(ScrapeRun.status == "running")
    ).all()
    if not running:
        return []
    live = live_run_ids(session, now)
    # A cluster sweep waits for its chunks, holding no lease while they are queued.
    live |= runs_with_open_chunks(session)
    abandoned = []
    for run_id, holder_id, started_at in running:
        holder = Holder.parse(holder_id)
        if (holder is not None and holder.is_gone()) or (run_id not in live and started_at < now - lease_ttl):
            abandoned.append(run_id)
    if abandoned:
        session.execute(
            update(ScrapeRun)
            .where(ScrapeRun.id.in_(abandoned), ScrapeRun.status == "running")
            .values(status="interrupted", finished_at=now, error=ABANDONED)
            .execution_options(synchronize_session=False)
        )
        logger.warning(
            "closed %d sweep(s) left running by a process that is gone as interrupted: run %s",
            len(abandoned),
            ", ".join(map(str, abandoned)),
        )
    return abandoned
