"""A sweep on the cluster: cut it into chunks, send them to the workers, wait, close the run.

The run and its chunks are written before any message is sent, so a worker always finds the
chunk it is given. Chunks are sent round-robin over the competitors, so the workers start on
different shops instead of waiting for one shop's lease. The run is closed with the chunks'
counts added up, and `SweepSummary` is the same as an in-process sweep's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime
from itertools import zip_longest

from sqlalchemy.exc import SQLAlchemyError

from monitor.errors import DatabaseError
from monitor.redact import redact_text
from monitor.scrape.sweep import Progress, StopFlag, SweepSummary
from monitor.settings import Settings, redact_url
from monitor.store.catalog import sweep_targets
from monitor.store.chunks import busy_competitors, close_open_chunks, create_chunks, run_progress
from monitor.store.database import Store, open_store
from monitor.store.history import FAILURE_OUTCOMES
from monitor.store.models import utcnow
from monitor.store.runs import close_abandoned_runs, finish_run, start_run

logger = logging.getLogger(__name__)

#: how often the waiting sweep reads its chunks' progress
POLL_SECONDS = 0.25


def run_cluster_sweep(
    settings: Settings,
    *,
    competitors: Sequence[str],
    skus: Sequence[str] = (),
    due_only: bool = False,
    due_by: datetime | None = None,
    trigger: str = "cli",
    stop: StopFlag | None = None,
    progress: Progress | None = None,
) -> SweepSummary:
    """Enqueue the sweep's chunks and wait for the workers (at most `cluster.wait_timeout`).

    A competitor whose chunks of another running sweep are still open is skipped and named in
    `skipped`; a competitor leased by an in-process sweep is waited for by its chunks. On `stop`,
    chunks not started yet are cancelled and those running may finish within the grace period.
    """
    started = time.perf_counter()
    settings.cluster.broker_url_with_password()  # a missing password is refused before any run is opened
    store = open_store(settings.database_url)
    try:
        try:
            with store.session() as session:
                close_abandoned_runs(session, lease_ttl=settings.scrape.lease_ttl)
                run_id = start_run(session, trigger=trigger, competitors=list(competitors))
            with store.session() as session:
                busy = busy_competitors(session, competitors, except_run=run_id)
                held = [name for name in competitors if name not in busy]
                now = due_by or utcnow()
                chunks: dict[str, list[int]] = {}
                total = 0
                for name in held:
                    ids = [
                        int(row.listing_id)
                        for row in sweep_targets(
                            session, competitors=[name], skus=list(skus), due_only=due_only, now=now
                        )
                    ]
                    if ids:
                        chunks[name] = create_chunks(session, run_id, name, ids, settings.cluster.chunk_size)
                        total += len(ids)
        except SQLAlchemyError as exc:
            raise DatabaseError(f"cannot start a sweep on {redact_url(settings.database_url)}: {exc}") from None
        skipped = {name: f"run {run_id_} (its cluster chunks are still open)" for name, run_id_ in busy.items()}
        for name, why in skipped.items():
            logger.warning("sweep %d: skipping %s: it is being swept by %s", run_id, name, why)
        order = [cid for group in zip_longest(*chunks.values()) for cid in group if cid is not None]
        error = _send(settings, order)
        if error is not None:
            with store.session() as session:
                close_open_chunks(session, run_id, state="failed", error=error, only_queued=False)
        logger.info("sweep %d: %d chunks of %d listings sent to %s", run_id, len(order), total, settings.cluster.queue)
        status, wait_error = _wait(settings, store, run_id, total, stop, progress)
        with store.session() as session:
            result = run_progress(session, run_id)
            errors = [e for e in ([error] if error else []) + result.errors]
            if errors and status == "finished":
                status = "failed"
            notes = "; ".join(f"skipped {name}: being swept by {why}" for name, why in skipped.items())
            message = "; ".join(dict.fromkeys(part for part in (wait_error, *errors[:20], notes) if part)) or None
            finish_run(session, run_id, counts=result.counts, status=status, error=message, competitors=held)
        summary_error = "; ".join(dict.fromkeys(p for p in (wait_error, *errors[:20]) if p)) or None
        return _summary(run_id, status, time.perf_counter() - started, result.counts, summary_error, skipped)
    finally:
        store.dispose()


def _send(settings: Settings, chunk_ids: list[int]) -> str | None:
    """Publish one message per chunk; the broker's error (redacted) when it cannot be reached."""
    if not chunk_ids:
        return None
    from monitor.cluster.app import RUN_CHUNK, make_app

    app = make_app(settings)
    try:
        with app.producer_or_acquire() as producer:
            for chunk_id in chunk_ids:
                app.send_task(RUN_CHUNK, args=[chunk_id], queue=settings.cluster.queue, producer=producer)
    except Exception as exc:  # kombu raises the transport's own errors (OSError, AMQP errors)
        shown = redact_url(settings.cluster.broker_url or "")
        return f"cannot send the chunks to the broker at {shown}: {redact_text(str(exc))[:300]}"
    finally:
        app.close()
    return None


def _wait(
    settings: Settings,
    store: Store,
    run_id: int,
    total: int,
    stop: StopFlag | None,
    progress: Progress | None,
) -> tuple[str, str | None]:
    timeout = settings.cluster.wait_timeout.total_seconds()
    grace = settings.scheduler.grace_period.total_seconds()
    began = time.monotonic()
    stopping_since: float | None = None
    if progress:
        progress(0, total, 0)
    while True:
        try:
            with store.session() as session:
                state = run_progress(session, run_id)
        except SQLAlchemyError as exc:
            logger.warning("sweep %d: cannot read its chunks (%s)", run_id, str(exc).splitlines()[0][:200])
            time.sleep(1)
            continue
        if progress:
            errors = sum(int(n) for c in state.counts.values() for k, n in c.items() if k in FAILURE_OUTCOMES)
            progress(min(state.checked, total), total, errors)
        if not state.open:
            return ("interrupted" if stopping_since is not None else "finished"), None
        if stopping_since is None and stop is not None and stop.is_set():
            with store.session() as session:
                cancelled = close_open_chunks(
                    session, run_id, state="cancelled", error="the sweep was stopped", only_queued=True
                )
            logger.warning(
                "sweep %d: stopping: %d queued chunks cancelled, waiting for the running ones", run_id, cancelled
            )
            stopping_since = time.monotonic()
        if stopping_since is not None and time.monotonic() - stopping_since > grace:
            return "interrupted", None
        if time.monotonic() - began > timeout:
            error = (
                f"{state.open} chunk(s) did not finish within cluster.wait_timeout ({timeout:g}s); "
                "are workers running? (pricemon status)"
            )
            with store.session() as session:
                close_open_chunks(session, run_id, state="failed", error=error, only_queued=False)
            return "failed", error
        time.sleep(POLL_SECONDS)


def _summary(
    run_id: int,
    status: str,
    seconds: float,
    counts: dict[str, dict[str, int | float]],
    error: str | None,
    skipped: dict[str, str],
) -> SweepSummary:
    checked = changed = failed = 0
    for values in counts.values():
        for outcome, n in values.items():
            if outcome == "seconds":
                continue
            checked += int(n)
            changed += int(n) if outcome == "changed" else 0
            failed += int(n) if outcome in FAILURE_OUTCOMES else 0
    return SweepSummary(run_id, status, seconds, counts, checked, changed, failed, error, skipped)
