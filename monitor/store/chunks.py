"""Cluster chunks and workers in the database, which is the truth about a cluster sweep.

A chunk is queued when its sweep cuts it, running while a worker holds its competitor's lease
for it, then done, failed (for good, with the error) or cancelled. Its counts grow in the same
transaction as each batch of checks it stores, so they are exact however often it is delivered.
A worker row is a `pricemon worker`'s heartbeat plus what its processes have done.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from monitor.store.leases import database_now
from monitor.store.models import ClusterChunk, ClusterWorker, ScrapeRun

#: chunk states that will not change any more
FINISHED_STATES = frozenset({"done", "failed", "cancelled"})
#: chunk states a sweep still waits for
OPEN_STATES = ("queued", "running")


def create_chunks(session: Session, run_id: int, competitor: str, listing_ids: Sequence[int], size: int) -> list[int]:
    """Cut `listing_ids` into chunks of at most `size`, queued; returns their ids in order."""
    now = database_now(session)
    chunks = [
        ClusterChunk(
            run_id=run_id,
            competitor=competitor,
            listing_ids=list(listing_ids[start : start + size]),
            size=len(listing_ids[start : start + size]),
            state="queued",
            attempts=0,
            queued_at=now,
            counts={},
            seconds=0.0,
        )
        for start in range(0, len(listing_ids), size)
    ]
    session.add_all(chunks)
    session.flush()
    return [chunk.id for chunk in chunks]


def _locked(session: Session, chunk_id: int) -> ClusterChunk | None:
    query = select(ClusterChunk).where(ClusterChunk.id == chunk_id).execution_options(populate_existing=True)
    if session.connection().dialect.name == "postgresql":
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def add_chunk_counts(session: Session, chunk_id: int, outcomes: Mapping[str, int]) -> None:
    """Add one stored batch's outcomes to its chunk, in the batch's transaction (row locked: a
    worker stores several batches at once)."""
    chunk = _locked(session, chunk_id)
    if chunk is None:
        return
    counts = Counter({k: int(v) for k, v in (chunk.counts or {}).items()})
    counts.update(outcomes)
    chunk.counts = dict(counts)


@dataclass(frozen=True)
class Claim:
    """What a delivery of a chunk should do: "run" it, "skip" it (finished already), or it has
    been delivered too often and was just marked failed ("gave_up")."""

    action: str
    run_id: int
    competitor: str
    listing_ids: tuple[int, ...]
    attempts: int


def chunk_for_delivery(session: Session, chunk_id: int) -> ClusterChunk | None:
    return session.get(ClusterChunk, chunk_id, populate_existing=True)


def claim_chunk(session: Session, chunk_id: int, *, worker: str, holder: str, max_attempts: int) -> Claim | None:
    """Mark a chunk running for this delivery (its competitor's lease is already ours). None when
    the chunk does not exist (its run was deleted)."""
    chunk = _locked(session, chunk_id)
    if chunk is None:
        return None
    ids = tuple(int(i) for i in chunk.listing_ids)
    if chunk.state in FINISHED_STATES:
        return Claim("skip", chunk.run_id, chunk.competitor, ids, chunk.attempts)
    now = database_now(session)
    if chunk.attempts >= max_attempts:
        chunk.state = "failed"
        chunk.finished_at = now
        chunk.error = (
            f"gave up after {chunk.attempts} deliveries: the worker running it stopped each time "
            f"(last: {chunk.worker or 'unknown'})"
        )
        return Claim("gave_up", chunk.run_id, chunk.competitor, ids, chunk.attempts)
    chunk.attempts += 1
    chunk.state = "running"
    chunk.worker = worker
    chunk.holder = holder
    chunk.started_at = chunk.started_at or now
    return Claim("run", chunk.run_id, chunk.competitor, ids, chunk.attempts)


def finish_chunk(
    session: Session,
    chunk_id: int,
    *,
    state: str,
    worker: str,
    seconds: float,
    error: str | None = None,
) -> None:
    """Close a chunk as done or failed and add it to its worker's totals."""
    chunk = _locked(session, chunk_id)
    if chunk is None or chunk.state in FINISHED_STATES:
        return
    chunk.state = state
    chunk.error = error[:2000] if error else None
    chunk.finished_at = database_now(session)
    chunk.seconds = float(chunk.seconds or 0) + seconds
    checked = sum(int(n) for n in (chunk.counts or {}).values())
    done, failed = (1, 0) if state == "done" else (0, 1)
    session.execute(
        update(ClusterWorker)
        .where(ClusterWorker.name == worker)
        .values(
            chunks_done=ClusterWorker.chunks_done + done,
            chunks_failed=ClusterWorker.chunks_failed + failed,
            listings_checked=ClusterWorker.listings_checked + checked,
        )
    )


def requeue_chunk(session: Session, chunk_id: int) -> None:
    """Back to queued (its delivery stopped before the end and a retry was sent)."""
    session.execute(
        update(ClusterChunk).where(ClusterChunk.id == chunk_id, ClusterChunk.state == "running").values(state="queued")
    )


def close_open_chunks(session: Session, run_id: int, *, state: str, error: str | None, only_queued: bool) -> int:
    """End a run's chunks that have not finished (cancelled when its sweep stops, failed on a
    timeout); returns how many. A worker that later receives one of them skips it."""
    states = ("queued",) if only_queued else OPEN_STATES
    result = session.execute(
        update(ClusterChunk)
        .where(ClusterChunk.run_id == run_id, ClusterChunk.state.in_(states))
        .values(state=state, error=error, finished_at=database_now(session))
    )
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass
class RunProgress:
    """A cluster run's chunks, added up."""

    states: Counter[str]
    counts: dict[str, dict[str, int | float]]  # {competitor: {outcome: n, "seconds": s}}
    errors: list[str]

    @property
    def open(self) -> int:
        return sum(self.states[s] for s in OPEN_STATES)

    @property
    def checked(self) -> int:
        return sum(int(n) for c in self.counts.values() for k, n in c.items() if k != "seconds")


def run_progress(session: Session, run_id: int) -> RunProgress:
    states: Counter[str] = Counter()
    counts: dict[str, dict[str, int | float]] = {}
    errors: list[str] = []
    rows = session.execute(
        select(
            ClusterChunk.id,
            ClusterChunk.competitor,
            ClusterChunk.state,
            ClusterChunk.counts,
            ClusterChunk.seconds,
            ClusterChunk.size,
            ClusterChunk.error,
        )
        .where(ClusterChunk.run_id == run_id)
        .order_by(ClusterChunk.id)
    )
    for chunk_id, competitor, state, chunk_counts, seconds, size, error in rows:
        states[state] += 1
        into = counts.setdefault(competitor, {})
        for outcome, n in (chunk_counts or {}).items():
            into[outcome] = int(into.get(outcome, 0)) + int(n)
        # Chunks of one competitor run one after another: their times add up.
        into["seconds"] = round(float(into.get("seconds", 0.0)) + float(seconds or 0), 3)
        if state == "failed":
            errors.append(f"chunk {chunk_id} ({competitor}, {size} listings): {error or 'failed'}")
    return RunProgress(states, counts, errors)


def busy_competitors(session: Session, competitors: Iterable[str], *, except_run: int) -> dict[str, int]:
    """Competitors with chunks still open in another running sweep: {competitor: run id}."""
    rows = session.execute(
        select(ClusterChunk.competitor, func.min(ClusterChunk.run_id))
        .join(ScrapeRun, ScrapeRun.id == ClusterChunk.run_id)
        .where(
            ClusterChunk.competitor.in_(list(competitors)),
            ClusterChunk.state.in_(OPEN_STATES),
            ClusterChunk.run_id != except_run,
            ScrapeRun.status == "running",
        )
        .group_by(ClusterChunk.competitor)
    )
    return {name: int(run_id) for name, run_id in rows}


def runs_with_open_chunks(session: Session) -> set[int]:
    return {int(r) for r in session.scalars(select(ClusterChunk.run_id).where(ClusterChunk.state.in_(OPEN_STATES)))}


# -- workers -----------------------------------------------------------------------------------


def heartbeat_worker(
    session: Session, *, name: str, host: str, pid: int, concurrency: int, started_at: datetime
) -> None:
    """Say this worker is alive (insert its row the first time)."""
    now = database_now(session)
    worker = session.get(ClusterWorker, name)
    if worker is None:
        session.add(
            ClusterWorker(
                name=name,
                host=host,
                pid=pid,
                concurrency=concurrency,
                started_at=started_at,
                seen_at=now,
                chunks_done=0,
                chunks_failed=0,
                listings_checked=0,
            )
        )
    else:
        worker.seen_at = now
        worker.concurrency = concurrency


def workers(session: Session) -> list[ClusterWorker]:
    return list(session.scalars(select(ClusterWorker).order_by(ClusterWorker.name)))


def recent_workers(session: Session, within: timedelta) -> list[ClusterWorker]:
    """Workers whose heartbeat the database saw within `within`."""
    since = database_now(session) - within
    return [w for w in workers(session) if w.seen_at >= since]


def open_chunks(session: Session) -> list[dict[str, Any]]:
    """Queued and running chunks, per run and competitor, with the workers running them."""
    rows = session.execute(
        select(ClusterChunk.run_id, ClusterChunk.competitor, ClusterChunk.state, ClusterChunk.worker, ClusterChunk.size)
        .where(ClusterChunk.state.in_(OPEN_STATES))
        .order_by(ClusterChunk.run_id, ClusterChunk.competitor)
    )
    grouped: dict[tuple[int, str], dict[str, Any]] = {}
    for run_id, competitor, state, worker, size in rows:
        entry = grouped.setdefault(
            (run_id, competitor),
            {"run_id": run_id, "competitor": competitor, "queued": 0, "running": 0, "listings": 0, "workers": []},
        )
        entry[state] += 1
        entry["listings"] += int(size)
        if state == "running" and worker and worker not in entry["workers"]:
            entry["workers"].append(worker)
    return list(grouped.values())


def cluster_status(session: Session, *, heartbeat: timedelta) -> dict[str, Any]:
    """What `pricemon status` shows of the cluster: the workers seen within three heartbeats,
    the open chunks, and which worker (or sweep) holds each competitor's lease."""
    from monitor.store.leases import leases

    now = database_now(session)
    seen = recent_workers(session, heartbeat * 3)
    return {
        "workers": [
            {
                "name": w.name,
                "host": w.host,
                "pid": w.pid,
                "concurrency": w.concurrency,
                "started_at": w.started_at.isoformat(),
                "seen_at": w.seen_at.isoformat(),
                "chunks_done": w.chunks_done,
                "chunks_failed": w.chunks_failed,
                "listings_checked": w.listings_checked,
            }
            for w in seen
        ],
        "chunks": open_chunks(session),
        "leases": [lease.to_json() for lease in leases(session) if lease.expires_at >= now],
    }
