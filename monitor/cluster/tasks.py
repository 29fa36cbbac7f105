"""The one task: run a chunk (some of one competitor's listings) under that competitor's lease.

Delivered at least once, and idempotent: a chunk that is finished already is skipped; one run
again after its worker died checks only the listings the earlier delivery did not store (their
latest check is not this run's), and the history is change-only, so nothing is doubled. A chunk
whose competitor is leased elsewhere is retried later, never run beside it.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from celery import Celery, Task
from sqlalchemy.exc import SQLAlchemyError

from monitor.cluster.app import RUN_CHUNK
from monitor.redact import redact_text
from monitor.settings import Settings
from monitor.store.database import Store, open_store

logger = logging.getLogger(__name__)


class _ProcessState:
    """What a worker's pool process keeps between chunks: the settings and its own database
    engine (created in the process that uses it, never inherited through fork)."""

    settings: Settings | None = None
    node: str = ""
    store: Store | None = None
    store_pid: int = 0

    @classmethod
    def the_store(cls) -> Store:
        assert cls.settings is not None, "the worker's settings are set before the pool starts"
        if cls.store is None or cls.store_pid != os.getpid():
            cls.store = open_store(cls.settings.database_url, migrate=False)
            cls.store_pid = os.getpid()
        return cls.store


def configure(settings: Settings, node: str) -> None:
    _ProcessState.settings = settings
    _ProcessState.node = node


def register(app: Celery) -> None:
    app.task(bind=True, name=RUN_CHUNK, acks_late=True, reject_on_worker_lost=True, max_retries=None)(run_chunk)


def run_chunk(task: Task, chunk_id: int) -> str:
    """Run chunk `chunk_id`; returns what happened (for the worker's log)."""
    from monitor.store.chunks import chunk_for_delivery, finish_chunk

    settings = _ProcessState.settings
    assert settings is not None
    worker = task.request.hostname or _ProcessState.node
    retry_delay = settings.cluster.retry_delay.total_seconds()
    try:
        store = _ProcessState.the_store()
        with store.session() as session:
            chunk = chunk_for_delivery(session, chunk_id)
            found = None if chunk is None else (chunk.run_id, chunk.competitor, chunk.state)
    except SQLAlchemyError as exc:
        logger.warning("chunk %d: database unavailable (%s); retrying", chunk_id, _short(exc))
        raise task.retry(countdown=retry_delay) from None
    if found is None:
        return "gone"  # its run was deleted
    run_id, competitor, state = found
    if state in ("done", "failed", "cancelled"):
        return f"already {state}"
    if settings.competitor(competitor) is None:
        with store.session() as session:
            finish_chunk(
                session,
                chunk_id,
                state="failed",
                worker=worker,
                seconds=0.0,
                error=f"competitor {competitor!r} is not in the config of worker {worker}",
            )
        return "failed"
    return _run_leased(task, store, settings, chunk_id, run_id, competitor, worker)


def _run_leased(
    task: Task, store: Store, settings: Settings, chunk_id: int, run_id: int, competitor: str, worker: str
) -> str:
    from monitor.scrape.sweep import sweep_chunk
    from monitor.store.chunks import claim_chunk, finish_chunk, requeue_chunk
    from monitor.store.leases import Holder, LeaseKeeper

    retry_delay = settings.cluster.retry_delay.total_seconds()
    holder = Holder.this_process(run_id)
    lost = threading.Event()
    keeper = LeaseKeeper(store, holder, settings.scrape.lease_ttl, on_lost=lambda _name: lost.set())
    try:
        try:
            others = keeper.acquire([competitor])
        except SQLAlchemyError as exc:
            logger.warning("chunk %d: cannot take the lease of %s (%s); retrying", chunk_id, competitor, _short(exc))
            raise task.retry(countdown=retry_delay) from None
        if others:
            logger.info(
                "chunk %d: %s is being swept by %s; retrying in %gs",
                chunk_id,
                competitor,
                others[competitor].describe(),
                retry_delay,
                extra={"competitor": competitor},
            )
            raise task.retry(countdown=retry_delay)
        with store.session() as session:
            claim = claim_chunk(
                session, chunk_id, worker=worker, holder=holder.id, max_attempts=settings.cluster.max_attempts
            )
        if claim is None or claim.action == "skip":
            return "already finished"
        if claim.action == "gave_up":
            logger.error("chunk %d (%s): failed for good after %d deliveries", chunk_id, competitor, claim.attempts)
            return "failed"
        # The lease's last holder started its last request before it let go: waiting one
        # min_delay keeps the competitor's spacing across the hand-over between workers.
        competitor_settings = settings.competitor(competitor)
        if competitor_settings is not None and competitor_settings.min_delay.total_seconds() > 0:
            time.sleep(competitor_settings.min_delay.total_seconds())
        began = time.perf_counter()
        status, error = sweep_chunk(
            settings,
            run_id=run_id,
            chunk_id=chunk_id,
            competitor=competitor,
            listing_ids=claim.listing_ids,
            stop=lost,
        )
        seconds = time.perf_counter() - began
        if status == "finished" and not lost.is_set():
            with store.session() as session:
                finish_chunk(session, chunk_id, state="done", worker=worker, seconds=seconds)
            logger.info("chunk %d (%s, run %d): done in %.1fs", chunk_id, competitor, run_id, seconds)
            return "done"
        if status == "failed" and not (error or "").startswith("database:"):
            # A bug or a broken competitor: running it again would fail the same way.
            with store.session() as session:
                finish_chunk(session, chunk_id, state="failed", worker=worker, seconds=seconds, error=error)
            logger.error("chunk %d (%s): failed: %s", chunk_id, competitor, error)
            return "failed"
        # The lease was lost or the database went away: what was stored stays, the rest is retried.
        why = "its lease was lost" if lost.is_set() else error
        logger.warning("chunk %d (%s): stopped (%s); retrying in %gs", chunk_id, competitor, why, retry_delay)
        try:
            with store.session() as session:
                requeue_chunk(session, chunk_id)
        except SQLAlchemyError:
            logger.debug("chunk %d: cannot mark it queued", chunk_id, exc_info=True)
        raise task.retry(countdown=retry_delay)
    finally:
        keeper.release()


def _short(exc: BaseException) -> str:
    return redact_text(str(exc).splitlines()[0][:200]) if str(exc) else type(exc).__name__
