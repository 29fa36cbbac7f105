"""One sweep: check listings of some competitors now, across worker processes, in batches that
commit on their own.

Competitors are sharded across processes whole (so one competitor's politeness lives in one
place); each worker streams its targets, fetches and parses them on its own event loop and
commits every `scrape.batch_size` results through `record_checks`. The parent opens and closes
the `ScrapeRun` and adds up what the workers report over a queue.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import multiprocessing
import os
import queue as queue_module
import signal
import sys
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
from monitor.store.leases import Holder, LeaseInfo, LeaseKeeper
from monitor.store.models import utcnow
from monitor.store.runs import close_abandoned_runs, finish_run, start_run

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
#: called with the ids of the listings whose trusted price or stock a just-committed batch changed
ChangesHook = Callable[[list[int]], None]


class StopFlag(Protocol):
    def is_set(self) -> bool: ...


@dataclass
class SweepSummary:
    run_id: int | None
    status: str  # "finished" | "interrupted" | "failed" | "skipped" (every competitor held elsewhere)
    seconds: float
    competitors: dict[str, dict[str, int | float]]  # {name: {outcome: n, ..., "seconds": s}}
    checked: int
    changed: int
    failed: int
    error: str | None = field(default=None)
    #: competitors another sweep held: {name: which run holds it, where, until when}
    skipped: dict[str, str] = field(default_factory=dict)

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
            "skipped": self.skipped,
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
    stop: StopFlag | None = None,
    progress: Progress | None = None,
    wait: bool = False,
    on_changes: ChangesHook | None = None,
    local: bool = False,
) -> SweepSummary:
    """competitors=None -> all enabled ones. progress(done, total, errors). on_changes(listing_ids)
    after each committed batch that changed a listing's trusted price or stock (in this process, in
    the order batches commit; it must be quick: the daemon queues the ids). When `stop` is set: start
    nothing new, let batches in flight commit, return status "interrupted". Raises
    monitor.errors.DatabaseError if the database is unusable (the daemon retries), ConfigError for
    unknown competitor names. A due-only sweep takes the listings due by `due_by` (default: now).

    Each competitor is swept under its lease (monitor.store.leases): one that another sweep holds
    is skipped and named in `SweepSummary.skipped`, or waited for with `wait=True`.

    With `[cluster] broker_url` set (and not `local`), the sweep is cut into chunks that
    `pricemon worker`s run (monitor.cluster.dispatch); this waits for them and returns the same
    summary. Celery is imported only then.
    """
    if settings.cluster.broker_url and not local:
        from monitor.cluster.dispatch import run_cluster_sweep

        return run_cluster_sweep(
            settings,
            competitors=_resolve_competitors(settings, competitors),
            skus=skus,
            due_only=due_only,
            due_by=due_by,
            trigger=trigger,
            stop=stop,
            progress=progress,
        )
    names = _resolve_competitors(settings, competitors)
    if any(c.render == "browser" for c in settings.competitors if c.name in names):
        from monitor.scrape.render import check_browser

        check_browser(settings.scrape.browser_executable)  # before the run is opened, not per listing
    started = time.perf_counter()
    store = open_store(settings.database_url)
    ttl = settings.scrape.lease_ttl
    try:
        try:
            with store.session() as session:
                close_abandoned_runs(session, lease_ttl=ttl)
                run_id = start_run(session, trigger=trigger, competitors=names)
        except SQLAlchemyError as exc:
            raise DatabaseError(f"cannot start a sweep on {redact_url(settings.database_url)}: {exc}") from None
        lost = threading.Event()
        flag = _EitherFlag(stop, lost)
        keeper = LeaseKeeper(store, Holder.this_process(run_id), ttl, on_lost=lambda _name: lost.set())
        try:
            return _sweep_leased(
                settings, store, keeper, run_id, names, skus, due_only, due_by, flag, progress, wait, started,
                on_changes,
            )
        finally:
            keeper.release()
    finally:
        store.dispose()


def _sweep_leased(
    settings: Settings,
    store: Store,
    keeper: LeaseKeeper,
    run_id: int,
    names: list[str],
    skus: Sequence[str],
    due_only: bool,
    due_by: datetime | None,
    flag: _EitherFlag,
    progress: Progress | None,
    wait: bool,
    started: float,
    on_changes: ChangesHook | None = None,
) -> SweepSummary:
    def waiting(lease: LeaseInfo) -> None:
        logger.warning("sweep %d: waiting for %s: it is being swept by %s", run_id, lease.competitor, lease.describe())

    try:
        others = keeper.acquire(names, wait=wait, stop=flag, on_wait=waiting)
    except SQLAlchemyError as exc:
        _close_quietly(store, run_id, "failed", f"database: {exc}", names)
        raise DatabaseError(f"cannot take the sweep leases on {redact_url(settings.database_url)}: {exc}") from None
    skipped = {name: lease.describe() for name, lease in others.items()}
    for name, why in skipped.items():
        logger.warning("sweep %d: skipping %s: it is being swept by %s", run_id, name, why, extra={"competitor": name})
    held = [name for name in names if name not in skipped]
    now = due_by or utcnow()
    try:
        with store.session() as session:
            totals: Counter[str] = (
                Counter(count_sweep_targets(session, competitors=held, skus=list(skus), due_only=due_only, now=now))
                if held
                else Counter()
            )
    except SQLAlchemyError as exc:
        _close_quietly(store, run_id, "failed", f"database: {exc}", held)
        raise DatabaseError(f"cannot start a sweep on {redact_url(settings.database_url)}: {exc}") from None
    tally = _Tally(held, sum(totals.values()), progress, on_changes)
    workers = settings.scrape.workers or os.cpu_count() or 1
    shards = _shards(totals, min(workers, len(totals))) if totals else []
    job = _Job(settings, run_id, tuple(skus), due_only, now, logging.getLogger().getEffectiveLevel(), os.getpid())
    if not held:
        # Stopped while waiting for a lease is an interruption, not another sweep's doing.
        status, error = ("interrupted" if flag.is_set() else "skipped"), None
    elif len(shards) <= 1 or tally.total < SMALL_SWEEP:
        status, error = _run_inline(job, list(totals), flag, tally)
    else:
        status, error = _run_processes(job, shards, flag, tally)
    if status == "finished" and flag.lost.is_set():
        status, error = "interrupted", "a lease was lost: another sweep took a competitor over"
    seconds = time.perf_counter() - started
    notes = "; ".join(f"skipped {name}: being swept by {why}" for name, why in skipped.items())
    stored_error = "; ".join(part for part in (error, notes) if part) or None
    try:
        with store.session() as session:
            finish_run(session, run_id, counts=tally.counts, status=status, error=stored_error, competitors=held)
    except SQLAlchemyError as exc:
        raise DatabaseError(f"cannot close sweep {run_id}: {exc}") from None
    if status == "failed" and error and error.startswith("database:"):
        raise DatabaseError(error.removeprefix("database:").strip())
    return tally.summary(run_id, status, seconds, error, skipped)


def sweep_chunk(
    settings: Settings,
    *,
    run_id: int,
    chunk_id: int,
    competitor: str,
    listing_ids: Sequence[int],
    stop: StopFlag,
) -> tuple[str, str | None]:
    """Check one cluster chunk's listings in this process, on the sweep's event loop, with the
    competitor's politeness slot and batched writes; returns (status, error) like a shard.

    The caller holds the competitor's lease. Listings whose latest check is already `run_id`'s
    (stored by an earlier delivery of the chunk) are left out, so a chunk run again checks only
    what is missing.
    """
    if not listing_ids:  # no ids would mean no filter: every listing of the competitor
        return "finished", None
    job = _Job(
        settings,
        run_id,
        (),
        False,
        utcnow(),
        logging.getLogger().getEffectiveLevel(),
        0,
        listing_ids=tuple(listing_ids),
        chunk_id=chunk_id,
    )
    return _run_shard(job, [competitor], stop, lambda _message: None)


def _close_quietly(store: Store, run_id: int, status: str, error: str, names: list[str]) -> None:
    """Close a run that could not start; if even that fails, a later sweep closes it as abandoned."""
    try:
        with store.session() as session:
            finish_run(session, run_id, counts={}, status=status, error=error[:2000], competitors=names)
    except SQLAlchemyError:
        logger.debug("cannot close run %d either", run_id, exc_info=True)


class _EitherFlag:
    """Set when the caller's stop flag is, or when a lease was lost (stop this sweep, not the caller)."""

    def __init__(self, stop: StopFlag | None, lost: threading.Event) -> None:
        self.stop = stop
        self.lost = lost

    def is_set(self) -> bool:
        return self.lost.is_set() or (self.stop is not None and self.stop.is_set())


class SignalStop:
    """SIGTERM and SIGINT as the stop flag of a sweep run from the command line.

    The first signal takes the daemon's graceful path: nothing new starts, batches in flight
    commit, the run is closed as interrupted and the leases are given back. A second one ends
    the process at once (workers are killed; the run is closed as abandoned by the next sweep).
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signum = 0
        self._event = threading.Event()
        self._previous: dict[int, Any] = {}

    @classmethod
    def install(cls) -> SignalStop:
        stop = cls()
        if threading.current_thread() is threading.main_thread():  # only there can Python set handlers
            for signum in cls.SIGNALS:
                stop._previous[signum] = signal.signal(signum, stop._handle)
        return stop

    def _handle(self, signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.signum:
            logger.warning("%s again: stopping now", name)
            for child in multiprocessing.active_children():
                child.kill()
            os._exit(128 + signum)
        self.signum = signum
        self._event.set()
        logger.warning("%s: stopping the sweep; batches in flight commit (send it again to stop at once)", name)

    def is_set(self) -> bool:
        return self._event.is_set()

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


# -- the parent's bookkeeping ----------------------------------------------------------------------


class _Tally:
    def __init__(
        self, names: Sequence[str], total: int, progress: Progress | None, on_changes: ChangesHook | None = None
    ) -> None:
        self.counts: dict[str, dict[str, int | float]] = {name: {} for name in names}
        self.on_changes = on_changes
        self.total = total
        self.done = 0
        self.errors = 0
        self.progress = progress
        if progress:
            progress(0, total, 0)

    def handle(self, message: tuple[Any, ...]) -> None:
        """A worker's message: ("tick", checks, failures) or ("batch", competitor, outcomes, seconds,
        changed listing ids)."""
        if message[0] == "tick":
            self.done += message[1]
            self.errors += message[2]
            if self.progress:
                self.progress(min(self.done, self.total), self.total, self.errors)
        elif message[0] == "batch":
            _, competitor, outcomes, seconds, changed = message
            counts = self.counts.setdefault(competitor, {})
            for outcome, n in outcomes.items():
                counts[outcome] = int(counts.get(outcome, 0)) + n
            counts["seconds"] = round(seconds, 3)
            if changed and self.on_changes is not None:
                try:
                    self.on_changes(changed)
                except Exception:  # whoever listens must not stop the sweep
                    logger.exception("on_changes hook failed")

    def summary(
        self, run_id: int, status: str, seconds: float, error: str | None, skipped: dict[str, str]
    ) -> SweepSummary:
        checked = changed = failed = 0
        for values in self.counts.values():
            for outcome, n in values.items():
                if outcome == "seconds":
                    continue
                checked += int(n)
                changed += int(n) if outcome == "changed" else 0
                failed += int(n) if outcome in FAILURE_OUTCOMES else 0
        return SweepSummary(run_id, status, seconds, self.counts, checked, changed, failed, error, skipped)


@dataclass(frozen=True)
class _Job:
    """What every worker needs to know; picklable, so it can cross to a worker process."""

    settings: Settings
    run_id: int
    skus: tuple[str, ...]
    due_only: bool
    now: datetime
    log_level: int = logging.WARNING
    #: the sweeping process: a worker whose parent is no longer this pid exits
    parent_pid: int = 0
    #: a cluster chunk: its listings, and its row, whose counts each stored batch adds to
    listing_ids: tuple[int, ...] = ()
    chunk_id: int | None = None


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
    grace = job.settings.scheduler.grace_period.total_seconds()
    stopping_since: float | None = None
    statuses: list[tuple[str, str | None]] = []
    try:
        while len(statuses) < len(processes):
            try:
                if stopping_since is None and stop is not None and stop.is_set():
                    # Workers start nothing new; their batches in flight still commit.
                    mp_stop.set()
                    stopping_since = time.monotonic()
                if stopping_since is not None and time.monotonic() - stopping_since > grace:
                    alive = [p for p in processes if p.is_alive()]
                    logger.warning(
                        "sweep %d: grace period of %gs over; stopping %d worker process(es) now (their "
                        "uncommitted batch is rolled back and checked again by the next sweep)",
                        job.run_id,
                        grace,
                        len(alive),
                    )
                    for process in alive:
                        process.kill()
                    statuses += [("interrupted", None)] * (len(processes) - len(statuses))
                    break
                try:
                    message = messages.get(timeout=0.2)
                except queue_module.Empty:
                    if not any(p.is_alive() for p in processes) and messages.empty():
                        missing = len(processes) - len(statuses)
                        statuses += [("failed", "a worker process died")] * missing
                    continue
            except KeyboardInterrupt:
                # Ctrl-C without the CLI's handlers: the same graceful stop.
                mp_stop.set()
                stopping_since = stopping_since or time.monotonic()
                continue
            if message[0] == "done":
                statuses.append((message[1], message[2]))
            else:
                tally.handle(message)
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                # Workers ignore SIGTERM (the parent owns their stop), so this is SIGKILL.
                process.kill()
                process.join(timeout=5)
        messages.close()
    failed = [error for status, error in statuses if status == "failed"]
    if failed:
        return "failed", "; ".join(dict.fromkeys(e or "worker failed" for e in failed))
    if any(status == "interrupted" for status, _ in statuses):
        return "interrupted", None
    return "finished", None


# -- a worker ----------------------------------------------------------------------------------------

#: prctl(2) option: the signal a process gets when the thread that started it ends
PR_SET_PDEATHSIG = 1
#: how often a worker checks that its parent is still the process that started it
PARENT_CHECK_SECONDS = 0.5


def _worker_main(job: _Job, names: list[str], stop: StopFlag, messages: Any) -> None:
    # The parent owns Ctrl-C and SIGTERM: it sets `stop`, and batches in flight still commit here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from monitor.logs import configure_worker_logging

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent(job.parent_pid)
    configure_worker_logging(job.log_level, job.settings)
    _tune_gc()
    status, error = _run_shard(job, names, stop, messages.put)
    messages.put(("done", status, error))


def prepare_worker_process(parent_pid: int) -> None:
    """What a sweep worker process does once at start (a cluster worker's pool processes too):
    die with the process that started it, and make the garbage collector cheap."""
    _die_with_parent(parent_pid)
    _tune_gc()


def _die_with_parent(parent_pid: int) -> None:
    """End this worker when the sweep that started it dies, however it dies (even by SIGKILL).

    On Linux the kernel sends SIGKILL when the parent ends (PR_SET_PDEATHSIG); everywhere a
    thread watches for the parent pid to change (the worker was re-parented), which also covers
    the parent dying before the prctl call. An uncommitted batch is rolled back by the database.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
                logger.debug("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
        except (OSError, AttributeError):
            logger.debug("prctl is not available", exc_info=True)
    if not parent_pid:
        return

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(1)

    if os.getppid() != parent_pid:
        os._exit(1)
    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


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
        runner = new_loop_runner()
        with runner:
            return runner.run(_sweep_shard(job, store, names, stop, emit))
    except SQLAlchemyError as exc:
        return "failed", f"database: {str(exc).splitlines()[0][:300]}"
    except Exception as exc:  # a bug: say so, and let the other shards finish
        logger.exception("sweep worker failed")
        return "failed", f"{type(exc).__name__}: {exc}"
    finally:
        store.dispose()


def new_loop_runner() -> asyncio.Runner:
    """The event loop a sweep's worker (and a discovery) runs on: uvloop's where it is installed."""
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
                            listing_ids=job.listing_ids,
                            # A chunk delivered again skips what an earlier delivery stored.
                            not_in_run=job.run_id if job.chunk_id is not None else None,
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
    batch_began = [0.0]  # when the first result of the open batch came in
    max_wait = settings.scrape.batch_max_wait.total_seconds()
    outcomes: Counter[str] = Counter()
    commit_seconds = 0.0

    on_recorded = None
    if job.chunk_id is not None:
        from monitor.store.chunks import add_chunk_counts

        chunk_id = job.chunk_id

        def on_recorded(session: Any, recorded: RecordResult) -> None:
            add_chunk_counts(session, chunk_id, recorded.outcomes)

    def store_batch(results: list[CheckResult]) -> RecordResult:
        return record_batch(
            store.session,
            results,
            run_id=job.run_id,
            interval=competitor.interval,
            suspicious_change=settings.scrape.suspicious_change,
            on_recorded=on_recorded,
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
        changed = sorted({change.listing_id for change in recorded.changes})
        emit(("batch", competitor.name, dict(recorded.outcomes), time.perf_counter() - started, changed))

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
            if not batch:
                batch_began[0] = time.monotonic()
            batch.append(result)
            ticks[0] += 1
            ticks[1] += result.outcome in FAILURE_OUTCOMES
            if ticks[0] >= TICK:
                emit(("tick", *ticks))
                ticks[:] = [0, 0]
            # Full, or old enough: a change checked early in a long sweep reaches the store (and
            # the daemon's repricing) within batch_max_wait, not at the end of the sweep.
            if len(batch) >= settings.scrape.batch_size or time.monotonic() - batch_began[0] >= max_wait:
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
