"""One sweep: check listings of some competitors now, across worker processes, in batches that
commit on their own.

Competitors are sharded across processes whole (so one competitor's politeness lives in one
place); each worker streams its targets, fetches and parses them on its own event loop and
commits every `scrape.batch_size` results through `record_checks`. The parent opens and closes
the `ScrapeRun` and adds up what the workers report over a queue.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import queue as queue_module
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.exc import SQLAlchemyError

from monitor.errors import ConfigError, DatabaseError, PricemonError
from monitor.settings import Settings, redact_url
from monitor.store.catalog import count_sweep_targets, sweep_targets
from monitor.store.database import Store, open_store
from monitor.store.history import FAILURE_OUTCOMES, CheckResult, RecordResult, record_batch
from monitor.store.models import utcnow
from monitor.store.runs import finish_run, start_run

logger = logging.getLogger(__name__)

#: below this many listings a sweep runs in the calling process: spawning workers costs more
SMALL_SWEEP = 500
#: rows each competitor's target stream buffers (all of a worker's streams are open together)
TARGET_CHUNK = 500
#: a worker reports progress after this many checks (committed counts come with each batch)
TICK = 50
#: threads storing batches per worker on a server database
WRITER_THREADS = 3
#: a worker's cyclic-GC thresholds (CPython's default is 700, 10, 10); see `_tune_gc`
WORKER_GC_THRESHOLDS = (10_000, 10, 10)

Progress = Callable[[int, int, int], None]


class StopFlag(Protocol):
    def is_set(self) -> bool: ...


@dataclass
class SweepSummary:
    run_id: int | None
    status: str  # "finished" | "interrupted" | "failed"
    seconds: float
    competitors: dict[str, dict[str, int | float]]  # {name: {outcome: n, ..., "seconds": s}}
    checked: int
    changed: int
    failed: int
    error: str | None = field(default=None)

    def to_json(self) -> dict[str, Any]:
        """What `pricemon scrape --json` prints."""
        return {
            "run_id": self.run_id,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "checked": self.checked,
            "changed": self.changed,
            "failed": self.failed,
            "pages_per_second": round(self.checked / self.seconds, 1) if self.seconds > 0 else None,
            "error": self.error,
            "competitors": self.competitors,
        }


def _resolve_competitors(settings: Settings, competitors: Sequence[str] | None) -> list[str]:
    if competitors is None:
        return [c.name for c in settings.competitors if c.enabled]
    known = {c.name for c in settings.competitors}
    unknown = [name for name in competitors if name not in known]
    if unknown:
        listed = ", ".join(sorted(known)) or "none configured"
        raise ConfigError(f"unknown competitor(s) {', '.join(map(repr, unknown))} (known: {listed})")
    return list(dict.fromkeys(competitors))


def _shards(totals: Counter[str], workers: int) -> list[list[str]]:
    """Whole competitors onto `workers` shards, largest first onto the lightest shard."""
    loads = [0] * workers
    shards: list[list[str]] = [[] for _ in range(workers)]
    for name, n in sorted(totals.items(), key=lambda item: (-item[1], item[0])):
        lightest = loads.index(min(loads))
        shards[lightest].append(name)
        loads[lightest] += n
    return [s for s in shards if s]


def run_sweep(
    settings: Settings,
    *,
    competitors: Sequence[str] | None = None,
    skus: Sequence[str] = (),
    due_only: bool = False,
    due_by: datetime | None = None,
    trigger: str = "cli",
    stop: threading.Event | None = None,
    progress: Progress | None = None,
) -> SweepSummary:
    """competitors=None -> all enabled ones. progress(done, total, errors). When `stop` is set: start
    nothing new, let batches in flight commit, return status "interrupted". Raises
    monitor.errors.DatabaseError if the database is unusable (the daemon retries), ConfigError for
    unknown competitor names. A due-only sweep takes the listings due by `due_by` (default: now)."""
    names = _resolve_competitors(settings, competitors)
    if any(c.render == "browser" for c in settings.competitors if c.name in names):
        from monitor.scrape.render import check_browser

        check_browser(settings.scrape.browser_executable)  # before the run is opened, not per listing
    started = time.perf_counter()
    now = due_by or utcnow()
    store = open_store(settings.database_url)
    try:
        try:
            with store.session() as session:
                totals: Counter[str] = Counter(
                    count_sweep_targets(session, competitors=names, skus=list(skus), due_only=due_only, now=now)
                )
                run_id = start_run(session, trigger=trigger, competitors=names)
        except SQLAlchemyError as exc:
            raise DatabaseError(f"cannot start a sweep on {redact_url(settings.database_url)}: {exc}") from None
        tally = _Tally(names, sum(totals.values()), progress)
        workers = settings.scrape.workers or os.cpu_count() or 1
        shards = _shards(totals, min(workers, len(totals))) if totals else []
        job = _Job(settings, run_id, tuple(skus), due_only, now, logging.getLogger().getEffectiveLevel())
        if len(shards) <= 1 or tally.total < SMALL_SWEEP:
            status, error = _run_inline(job, list(totals), stop, tally)
        else:
            status, error = _run_processes(job, shards, stop, tally)
        seconds = time.perf_counter() - started
        try:
            with store.session() as session:
                finish_run(session, run_id, counts=tally.counts, status=status, error=error)
        except SQLAlchemyError as exc:
            raise DatabaseError(f"cannot close sweep {run_id}: {exc}") from None
        if status == "failed" and error and error.startswith("database:"):
            raise DatabaseError(error.removeprefix("database:").strip())
        return tally.summary(run_id, status, seconds, error)
    finally:
        store.dispose()


# -- the parent's bookkeeping ----------------------------------------------------------------------


class _Tally:
    def __init__(self, names: Sequence[str], total: int, progress: Progress | None) -> None:
        self.counts: dict[str, dict[str, int | float]] = {name: {} for name in names}
        self.total = total
        self.done = 0
        self.errors = 0
        self.progress = progress
        if progress:
            progress(0, total, 0)

    def handle(self, message: tuple[Any, ...]) -> None:
        """A worker's message: ("tick", checks, failures) or ("batch", competitor, outcomes, seconds)."""
        if message[0] == "tick":
            self.done += message[1]
            self.errors += message[2]
            if self.progress:
                self.progress(min(self.done, self.total), self.total, self.errors)
        elif message[0] == "batch":
            _, competitor, outcomes, seconds = message
            counts = self.counts.setdefault(competitor, {})
            for outcome, n in outcomes.items():
                counts[outcome] = int(counts.get(outcome, 0)) + n
            counts["seconds"] = round(seconds, 3)

    def summary(self, run_id: int, status: str, seconds: float, error: str | None) -> SweepSummary:
        checked = changed = failed = 0
        for values in self.counts.values():
            for outcome, n in values.items():
                if outcome == "seconds":
                    continue
                checked += int(n)
                changed += int(n) if outcome == "changed" else 0
                failed += int(n) if outcome in FAILURE_OUTCOMES else 0
        return SweepSummary(run_id, status, seconds, self.counts, checked, changed, failed, error)


@dataclass(frozen=True)
class _Job:
    """What every worker needs to know; picklable, so it can cross to a worker process."""

    settings: Settings
    run_id: int
    skus: tuple[str, ...]
    due_only: bool
    now: datetime
    log_level: int = logging.WARNING


def _run_inline(job: _Job, names: list[str], stop: StopFlag | None, tally: _Tally) -> tuple[str, str | None]:
    flag = stop or threading.Event()

    result: list[tuple[str, str | None]] = []
    # A thread of its own, so a caller that runs an event loop (the daemon) can call us too.
    thread = threading.Thread(target=lambda: result.append(_run_shard(job, names, flag, tally.handle)), name="sweep")
    thread.start()
    thread.join()
    return result[0] if result else ("failed", "the sweep thread died")


def _run_processes(job: _Job, shards: list[list[str]], stop: StopFlag | None, tally: _Tally) -> tuple[str, str | None]:
    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    mp_stop = context.Event()
    processes = [
        context.Process(target=_worker_main, args=(job, shard, mp_stop, messages), name=f"sweep-{i}", daemon=True)
        for i, shard in enumerate(shards)
    ]
    for process in processes:
        process.start()
    logger.info("sweep %d: %d worker processes for %d competitors", job.run_id, len(processes), sum(map(len, shards)))
    statuses: list[tuple[str, str | None]] = []
    try:
        while len(statuses) < len(processes):
            try:
                if stop is not None and stop.is_set():
                    mp_stop.set()
                try:
                    message = messages.get(timeout=0.2)
                except queue_module.Empty:
                    if not any(p.is_alive() for p in processes) and messages.empty():
                        missing = len(processes) - len(statuses)
                        statuses += [("failed", "a worker process died")] * missing
                    continue
            except KeyboardInterrupt:
                # Ctrl-C: workers ignore SIGINT; they finish their batches in flight and report.
                mp_stop.set()
                continue
            if message[0] == "done":
                statuses.append((message[1], message[2]))
            else:
                tally.handle(message)
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
        messages.close()
    failed = [error for status, error in statuses if status == "failed"]
    if failed:
        return "failed", "; ".join(dict.fromkeys(e or "worker failed" for e in failed))
    if any(status == "interrupted" for status, _ in statuses):
        return "interrupted", None
    return "finished", None


# -- a worker ----------------------------------------------------------------------------------------


def _worker_main(job: _Job, names: list[str], stop: StopFlag, messages: Any) -> None:
    # The parent owns Ctrl-C: it sets `stop`, and batches in flight still commit here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from monitor.logs import configure_worker_logging

    configure_worker_logging(job.log_level, job.settings)
    _tune_gc()
    status, error = _run_shard(job, names, stop, messages.put)
    messages.put(("done", status, error))


def _tune_gc() -> None:
    """Make the cyclic garbage collector cheap in a worker process, which lives for one sweep.

    A sweep's garbage is freed by reference counting; the collector found about 2,700 cyclic
    objects in a whole 21,600-check shard, yet with CPython's defaults it ran 1,800 young, 165
    middle and 15 full collections there, ~3 s of the worker's 7.5 s of CPU, most of it walking
    the modules and tables loaded at start. Those are frozen out of collection, and collections
    run after 10,000 net allocations instead of 700 (43,200-listing unchanged sweep on
    PostgreSQL, per worker: 7.3-7.5 -> 5.3-6.0 s of CPU, 9.9 -> 8.0 s wall).
    """
    import monitor.scrape.fetch  # noqa: F401 - load aiohttp, selectolax etc. before freezing

    gc.collect()
    gc.freeze()
    gc.set_threshold(*WORKER_GC_THRESHOLDS)


def _run_shard(
    job: _Job, names: list[str], stop: StopFlag, emit: Callable[[tuple[Any, ...]], None]
) -> tuple[str, str | None]:
    """Sweep `names` on a new event loop; returns (status, error)."""
    try:
        store = open_store(job.settings.database_url, migrate=False)
    except PricemonError as exc:
        return "failed", f"database: {exc}"
    try:
        runner = _new_loop_runner()
        with runner:
            return runner.run(_sweep_shard(job, store, names, stop, emit))
    except SQLAlchemyError as exc:
        return "failed", f"database: {str(exc).splitlines()[0][:300]}"
    except Exception as exc:  # a bug: say so, and let the other shards finish
        logger.exception("sweep worker failed")
        return "failed", f"{type(exc).__name__}: {exc}"
    finally:
        store.dispose()


def _new_loop_runner() -> asyncio.Runner:
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


async def _sweep_shard(
    job: _Job, store: Store, names: list[str], stop: StopFlag, emit: Callable[[tuple[Any, ...]], None]
) -> tuple[str, str | None]:
    from monitor.scrape.fetch import Fetcher

    settings = job.settings
    renderer = None
    if any(settings.competitor(name).render == "browser" for name in names):  # type: ignore[union-attr]
        from monitor.scrape.render import BrowserPool

        renderer = BrowserPool(settings.scrape.browser_pages, settings.scrape.browser_executable)
    fetchers = [
        Fetcher(settings.competitor(name), settings.scrape, renderer=renderer)  # type: ignore[arg-type]
        for name in names
    ]
    in_flight = asyncio.Semaphore(settings.scrape.max_connections)
    # Batches are stored off the event loop. SQLite has one writer at a time anyway, so one
    # thread; a server database stores several batches at once (3 measured best for PostgreSQL
    # on the bench web's unchanged sweep, where storing is most of the work).
    writers = 1 if store.dialect == "sqlite" else WRITER_THREADS
    writer = ThreadPoolExecutor(max_workers=writers, thread_name_prefix="sweep-writer")
    try:
        # One read transaction streams every competitor's targets side by side, so all of them are
        # fetched at once and memory holds only what the cursors buffer.
        with store.session() as reader:
            tasks = [
                _sweep_competitor(
                    job,
                    store,
                    fetcher,
                    iter(
                        sweep_targets(
                            reader,
                            competitors=[fetcher.competitor.name],
                            skus=list(job.skus),
                            due_only=job.due_only,
                            now=job.now,
                            # Every competitor's stream is open at once: keep each one's buffer small.
                            chunk=TARGET_CHUNK,
                        )
                    ),
                    in_flight,
                    writer,
                    stop,
                    emit,
                )
                for fetcher in fetchers
            ]
            await asyncio.gather(*tasks)
    finally:
        writer.shutdown(wait=True)
        for fetcher in fetchers:
            await fetcher.aclose()
        if renderer is not None:
            await renderer.aclose()
    return ("interrupted" if stop.is_set() else "finished"), None


async def _sweep_competitor(
    job: _Job,
    store: Store,
    fetcher: Any,
    targets: Iterator[Any],
    in_flight: asyncio.Semaphore,
    writer: ThreadPoolExecutor,
    stop: StopFlag,
    emit: Callable[[tuple[Any, ...]], None],
) -> None:
    settings = job.settings
    competitor = fetcher.competitor
    started = time.perf_counter()
    batch: list[CheckResult] = []
    outcomes: Counter[str] = Counter()
    commit_seconds = 0.0

    def store_batch(results: list[CheckResult]) -> RecordResult:
        return record_batch(
            store.session,
            results,
            run_id=job.run_id,
            interval=competitor.interval,
            suspicious_change=settings.scrape.suspicious_change,
        )

    async def flush() -> None:
        nonlocal commit_seconds
        if not batch:
            return
        results = batch[:]
        batch.clear()
        began = time.perf_counter()
        # The database driver waits without the GIL, so fetching goes on while a batch is stored.
        recorded = await asyncio.get_running_loop().run_in_executor(writer, store_batch, results)
        commit_seconds += time.perf_counter() - began
        outcomes.update(recorded.outcomes)
        emit(("batch", competitor.name, dict(recorded.outcomes), time.perf_counter() - started))

    ticks = [0, 0]  # checks and failures not reported yet

    async def lane() -> None:
        while not stop.is_set():
            target = next(targets, None)
            if target is None:
                return
            async with in_flight:
                page = await fetcher.fetch(target.url, etag=target.etag, last_modified=target.last_modified)
            result = fetcher.judge(
                target.listing_id,
                page,
                product_gtin=target.product_gtin,
                product_currency=target.product_currency,
                body_hash=target.body_hash,
            )
            batch.append(result)
            ticks[0] += 1
            ticks[1] += result.outcome in FAILURE_OUTCOMES
            if ticks[0] >= TICK:
                emit(("tick", *ticks))
                ticks[:] = [0, 0]
            if len(batch) >= settings.scrape.batch_size:
                await flush()

    # More lanes than the slot admits, so one lane parsing a page never leaves the slot idle.
    await asyncio.gather(*(lane() for _ in range(competitor.max_concurrency * 2)))
    await flush()
    if ticks[0]:
        emit(("tick", *ticks))
    # Commit time includes waiting for the other workers' writes (SQLite has one writer at a time).
    logger.info(
        "%s: %s in %.1fs, %.2fs of it storing",
        competitor.name,
        dict(outcomes),
        time.perf_counter() - started,
        commit_seconds,
    )
