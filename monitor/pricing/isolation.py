"""Running strategies in worker processes, so that no plugin can take pricemon down.

A plugin may raise, hang, call `os._exit()` or crash the interpreter; only its worker process
goes. The parent (`StrategyWorkers`) hands each worker a chunk of up to 1,000 products and goes
on reading the next batch from the store while they work; the worker prices them one by one
and, before each product and each strategy call, writes which product and strategy it is in to
a small shared page. So when a worker dies or overruns
`pricing.timeout`, the parent knows the SKU and the strategy without re-running anything to find
them: that product fails (by strategy name and SKU), a fresh worker is started, and the rest of
the chunk is priced there.

Workers are plain `python -c` processes (not multiprocessing's spawn, which would re-import the
`pricemon` console script and with it the whole CLI in every worker). They talk to the parent
over a socket pair with `multiprocessing.connection.Connection` framing. A strategy's
`context.price_history()` is answered by the parent, which owns the database session: workers
never open one.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import mmap
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import IO, Any

from monitor.pricing import HistoryPoint
from monitor.pricing.engine import Outcome, PricingEngine, PricingItem
from monitor.pricing.loader import StrategyManager
from monitor.settings import PricingSettings

logger = logging.getLogger(__name__)

Item = PricingItem

#: Products per chunk at most: small enough that a crash re-prices little, large enough that
#: the per-message cost (a few hundred microseconds) vanishes next to the work.
CHUNK_MAX = 1000
#: `pricing.workers = 0` never starts more than this many (each costs ~35 MB and ~0.4 s to start).
AUTO_WORKERS_MAX = 8
#: A worker runs the cyclic garbage collector once per this many chunks (see serve()).
GC_EVERY_CHUNKS = 20
#: How long a new worker may take to import pricemon and the plugins before it counts as broken.
START_TIMEOUT_S = 60.0
#: A worker that fails to start this many times in a row makes every later product fail at once.
START_ATTEMPTS = 3

# The shared progress page: chunk number, index in the chunk, when the current step began
# (time.monotonic(), the same clock in every process), and the running strategy's name.
_MARK = struct.Struct("<qqd64s")
_STEP = struct.Struct("<qd64s")  # from the index on
_LABEL = struct.Struct("<d64s")  # from the time on
_MARK_SIZE = mmap.PAGESIZE

_BOOT = "from monitor.pricing.isolation import serve; serve()"


def worker_count(configured: int) -> int:
    """`pricing.workers`, where 0 means one per CPU this process may use, at most AUTO_WORKERS_MAX."""
    if configured > 0:
        return configured
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, AUTO_WORKERS_MAX))


@dataclass
class _Chunk:
    run: PendingBatch
    number: int
    indices: list[int]
    attempts: int = 0


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    conn: Connection
    mark_file: IO[bytes]
    marks: mmap.mmap
    started: float
    ready: bool = False
    chunk: _Chunk | None = None
    sent_at: float = 0.0
    answered_at: float = 0.0  # when the parent last answered it: time waiting on us is not the strategy's
    suspect: tuple[Any, ...] | None = None

    def read_mark(self) -> tuple[int, int, float, str]:
        chunk, index, began, raw = _MARK.unpack_from(self.marks, 0)
        return chunk, index, began, raw.rstrip(b"\0").decode("utf-8", "replace")

    def close(self, *, kill: bool = False) -> int | None:
        if kill and self.process.poll() is None:
            self.process.kill()
        self.conn.close()
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.marks.close()
        self.mark_file.close()
        return code


@dataclass
class PendingBatch:
    """One submitted batch: the items and what came back for them."""

    items: Sequence[Item]
    now: datetime
    results: list[Outcome | None]
    remaining: int

    def settle(self, index: int, outcome: Outcome) -> None:
        if self.results[index] is None:
            self.remaining -= 1
        self.results[index] = outcome


def _how_it_ended(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class StrategyWorkers:
    """A small supervised pool of strategy worker processes (started on first use)."""

    def __init__(self, pricing: PricingSettings, manager: StrategyManager, workers: int) -> None:
        self.timeout = pricing.timeout.total_seconds()
        self.size = max(1, workers)
        self.poll = min(0.05, max(self.timeout / 10, 0.005))
        strategies_dir = str(manager.strategies_dir) if manager.strategies_dir is not None else None
        self._init = (pricing, strategies_dir, manager.group, list(sys.path))
        self._workers: list[_Worker] = []
        self._queue: deque[_Chunk] = deque()
        self._chunks = 0
        self._failed_starts = 0
        self._broken: str | None = None

    # -- the parent's loop ---------------------------------------------------------------------

    def price_many(self, items: Sequence[Item], now: datetime) -> list[Outcome]:
        """Price `items` in the workers; every item gets an Outcome, whatever the plugins do."""
        return self.collect(self.submit(items, now))

    def submit(self, items: Sequence[Item], now: datetime) -> PendingBatch:
        """Hand `items` to the workers and return at once; collect() waits for their outcomes.

        One chunk per worker: the caller reads its next batch while the workers price this one.
        """
        run = PendingBatch(items, now, [None] * len(items), len(items))
        size = max(1, min(CHUNK_MAX, math.ceil(len(items) / self.size)))
        for begin in range(0, len(items), size):
            self._queue.append(self._new_chunk(run, list(range(begin, min(begin + size, len(items))))))
        self._dispatch()
        return run

    def collect(self, run: PendingBatch) -> list[Outcome]:
        """Supervise the workers until every item of `run` has its Outcome."""
        while run.remaining > 0:
            if self._broken is not None:
                self._fail_all(self._broken)
                break
            self._dispatch()
            ready = wait([w.conn for w in self._workers], timeout=self.poll) if self._workers else []
            for worker in [w for w in self._workers if w.conn in ready]:
                self._receive(worker)
            for worker in list(self._workers):
                self._check_deadline(worker)
        self._dispatch()  # workers freed by this run start on the next one's chunks
        return [outcome for outcome in run.results if outcome is not None]

    def _dispatch(self) -> None:
        self._start_workers(len(self._queue) + sum(1 for w in self._workers if w.chunk is not None))
        for worker in list(self._workers):
            if worker.ready and worker.chunk is None and self._queue:
                self._send(worker, self._queue.popleft())

    def start(self) -> None:
        """Start every worker without waiting for it, so that their start-up (importing pricemon
        and the plugins, ~0.5 s) overlaps the caller's reading of the first batch."""
        self._start_workers(self.size)

    def _new_chunk(self, run: PendingBatch, indices: list[int], attempts: int = 0) -> _Chunk:
        self._chunks += 1
        return _Chunk(run, self._chunks, indices, attempts)

    def _start_workers(self, wanted: int) -> None:
        while len(self._workers) < min(self.size, wanted):
            self._workers.append(self._start())

    def _start(self) -> _Worker:
        parent_end, child_end = socket.socketpair()
        mark_file = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the worker; closed in _Worker.close)
        os.ftruncate(mark_file.fileno(), _MARK_SIZE)
        marks = mmap.mmap(mark_file.fileno(), _MARK_SIZE)
        _MARK.pack_into(marks, 0, -1, -1, 0.0, b"")
        package_root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        try:
            os.fstat(2)
            out: int = 2  # a plugin's print() goes to our stderr, never into `--json` on stdout
        except OSError:
            out = subprocess.DEVNULL
        process = subprocess.Popen(
            [sys.executable, "-P", "-c", _BOOT, str(child_end.fileno()), str(mark_file.fileno())],
            stdin=subprocess.DEVNULL,
            stdout=out,
            env=env,
            pass_fds=(child_end.fileno(), mark_file.fileno()),
        )
        child_end.close()
        conn = Connection(parent_end.detach())
        conn.send(self._init)
        return _Worker(process, conn, mark_file, marks, time.monotonic())

    def _send(self, worker: _Worker, chunk: _Chunk) -> None:
        payload = _encode([chunk.run.items[i] for i in chunk.indices])
        worker.chunk, worker.suspect = chunk, None
        worker.sent_at = worker.answered_at = time.monotonic()
        try:
            worker.conn.send(("price", chunk.number, chunk.run.now, payload))
        except OSError:
            self._lost(worker, timed_out=False)

    def _receive(self, worker: _Worker) -> None:
        try:
            message = worker.conn.recv()
        except (EOFError, OSError):
            self._lost(worker, timed_out=False)
            return
        kind = message[0]
        if kind == "ready":
            worker.ready = True
            self._failed_starts = 0
        elif kind == "history" and worker.chunk is not None:
            _, position, since = message
            history = worker.chunk.run.items[worker.chunk.indices[position]][3]
            try:
                reply: tuple[str, Any] = ("history", tuple(history(since)))
            except Exception as exc:  # the strategy sees it as its own call failing
                reply = ("history_error", f"reading the price history failed: {type(exc).__name__}: {exc}")
            worker.answered_at, worker.suspect = time.monotonic(), None
            try:
                worker.conn.send(reply)
            except OSError:
                self._lost(worker, timed_out=False)
        elif kind == "done" and worker.chunk is not None and message[1] == worker.chunk.number:
            for index, outcome in zip(worker.chunk.indices, message[2], strict=True):
                worker.chunk.run.settle(index, outcome)
            worker.chunk = None

    def _check_deadline(self, worker: _Worker) -> None:
        now = time.monotonic()
        if not worker.ready:
            if now - worker.started > max(START_TIMEOUT_S, self.timeout):
                self._lost(worker, timed_out=True)
            return
        if worker.chunk is None:
            return
        chunk_no, index, began, label = worker.read_mark()
        limit = self.timeout
        if chunk_no != worker.chunk.number or not 0 <= index < len(worker.chunk.indices):
            # Receiving the chunk or sending its outcomes: no strategy runs, only a stuck worker is stopped.
            limit = max(self.timeout, START_TIMEOUT_S)
            if chunk_no != worker.chunk.number:
                began = worker.sent_at
        began = max(began, worker.answered_at)
        snapshot = (chunk_no, index, began, label)
        if now - began <= limit:
            worker.suspect = None
            return
        # Two polls in a row: the page is written without a lock, so one read may be torn.
        if worker.suspect == snapshot:
            self._lost(worker, timed_out=True)
        else:
            worker.suspect = snapshot

    def _lost(self, worker: _Worker, *, timed_out: bool) -> None:
        """A worker died or overran: blame the product it was on, price the rest elsewhere."""
        chunk_no, index, _began, label = worker.read_mark()
        code = worker.close(kill=True)
        self._workers.remove(worker)
        chunk = worker.chunk
        if not worker.ready:
            self._failed_starts += 1
            how = (
                f"did not start within {max(START_TIMEOUT_S, self.timeout):g}s"
                if timed_out
                else f"failed to start ({_how_it_ended(code)})"
            )
            logger.error("strategy worker process %s", how)
            if self._failed_starts >= START_ATTEMPTS:
                self._broken = f"the strategy worker process {how}"
            return
        if chunk is None:
            logger.warning("an idle strategy worker process ended (%s); starting a new one", _how_it_ended(code))
            return
        run = chunk.run
        if chunk_no != chunk.number or not 0 <= index < len(chunk.indices):
            # Not on any product of the chunk (receiving it, or sending its outcomes): try it once more.
            if chunk.attempts >= 1:
                for i in chunk.indices:
                    item = run.items[i]
                    run.settle(
                        i,
                        Outcome(
                            item[1].sku,
                            item[0],
                            "failed",
                            None,
                            error=f"the strategy worker process ended ({_how_it_ended(code)})",
                        ),
                    )
            else:
                self._queue.appendleft(self._new_chunk(run, chunk.indices, chunk.attempts + 1))
            return
        culprit = chunk.indices[index]
        pid, product = run.items[culprit][0], run.items[culprit][1]
        who = f"strategy {label}" if label else "pricing"
        if timed_out:
            error = f"{who} timed out after {self.timeout:g}s"
            logger.warning(
                "%s on %s: the worker process was killed; starting a new one",
                error,
                product.sku,
                extra={"sku": product.sku, "strategy": label or None},
            )
        else:
            error = f"{who} crashed its worker process ({_how_it_ended(code)})"
            logger.warning(
                "%s on %s; starting a new one",
                error,
                product.sku,
                extra={"sku": product.sku, "strategy": label or None},
            )
        run.settle(culprit, Outcome(product.sku, pid, "failed", label or None, error=error))
        rest = chunk.indices[:index] + chunk.indices[index + 1 :]
        if rest:
            self._queue.appendleft(self._new_chunk(run, rest))

    def _fail_all(self, error: str) -> None:
        for chunk in [*self._queue, *(w.chunk for w in self._workers if w.chunk is not None)]:
            run = chunk.run
            for i in chunk.indices:
                if run.results[i] is None:
                    run.settle(i, Outcome(run.items[i][1].sku, run.items[i][0], "failed", None, error=error))
        self._queue.clear()
        for worker in self._workers:
            worker.chunk = None

    def close(self) -> None:
        """Stop every worker: ask, then kill what does not go."""
        for worker in self._workers:
            try:
                if worker.chunk is None:
                    worker.conn.send(("stop",))
            except OSError:
                pass
        for worker in self._workers:
            worker.close(kill=worker.chunk is not None)
        self._workers.clear()


# -- what goes over the socket ------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _encode(items: Sequence[Item]) -> tuple[bool, list[tuple[Any, ...]]]:
    """Items without their history readers, offers as plain str/int fields where they can be.

    Pickling a Decimal or an aware datetime costs ~2.5 us each (their reduce protocol), most of
    what the parent spends handing a catalogue to the workers; as str and microseconds since
    the epoch the same offers cost a third. Exactly reversible: `_decode` rebuilds equal values.
    """
    try:
        return True, [
            (
                pid,
                product,
                [
                    (c, u, str(p), cur, stock, (o - _EPOCH) // _MICROSECOND, (s - _EPOCH) // _MICROSECOND, sus)
                    for c, u, p, cur, stock, o, s, sus in raw
                ],
            )
            for pid, product, raw, _history in items
        ]
    except (TypeError, ValueError, AttributeError):  # not the store's shape (naive times, floats): send as is
        return False, [(pid, product, raw) for pid, product, raw, _history in items]


def _decode(encoded: tuple[bool, list[tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
    compact, items = encoded
    if not compact:
        return items
    return [
        (
            pid,
            product,
            [
                (
                    c,
                    u,
                    Decimal(p),
                    cur,
                    stock,
                    _EPOCH + timedelta(microseconds=o),
                    _EPOCH + timedelta(microseconds=s),
                    sus,
                )
                for c, u, p, cur, stock, o, s, sus in raw
            ],
        )
        for pid, product, raw in items
    ]


# -- the worker process -------------------------------------------------------------------------


def _exit_with_parent(parent: int) -> None:
    """A worker whose parent is gone (even by SIGKILL) has nobody to answer: it ends itself."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(0)


class _Marks:
    """The worker's side of the progress page."""

    def __init__(self, marks: mmap.mmap) -> None:
        self.marks = marks
        self.labels: dict[str, bytes] = {}

    def chunk(self, number: int) -> None:
        _MARK.pack_into(self.marks, 0, number, -1, time.monotonic(), b"")

    def product(self, index: int) -> None:
        _STEP.pack_into(self.marks, 8, index, time.monotonic(), b"")

    def strategy(self, name: str) -> None:
        label = self.labels.get(name)
        if label is None:
            label = self.labels[name] = name.encode("utf-8")[:64]
        _LABEL.pack_into(self.marks, 16, time.monotonic(), label)


def serve() -> None:
    """The worker's main loop: `python -c "...serve()" SOCKET_FD MARK_FD` (started by StrategyWorkers)."""
    # The parent closed our socket: it has stopped (or killed) us, nothing to report.
    with contextlib.suppress(EOFError, BrokenPipeError, ConnectionResetError):
        _serve()


def _serve() -> None:
    conn = Connection(int(sys.argv[1]))
    mark_fd = int(sys.argv[2])
    marks = _Marks(mmap.mmap(mark_fd, _MARK_SIZE))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent decides
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    # The parent already logged every plugin file that failed to import; say it once, not per worker.
    logging.getLogger("monitor.pricing.loader").disabled = True
    pricing, strategies_dir, group, path = conn.recv()
    sys.path[:] = path
    engine = PricingEngine(pricing, StrategyManager(strategies_dir, group=group))
    # As in the parent (workflow._cyclic_gc_paused): pricing makes many short-lived acyclic objects
    # that reference counting frees; left on, the cyclic collector re-scanned the whole heap and
    # doubled the worker's time. What pricemon and the plugins loaded is frozen out of its sight,
    # and a collection between chunks now and then still frees any cycles a plugin leaves.
    gc.freeze()
    gc.disable()
    conn.send(("ready",))
    chunks = 0
    while True:
        chunks += 1
        if chunks % GC_EVERY_CHUNKS == 0:
            gc.collect()
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message[0] != "price":
            return
        _, number, now, encoded = message
        marks.chunk(number)
        payload = _decode(encoded)
        outcomes = [_price_one(engine, conn, marks, position, item, now) for position, item in enumerate(payload)]
        marks.product(len(payload))  # past the last product: sending the outcomes gets a fresh time limit
        _send_outcomes(conn, number, outcomes)


def _price_one(
    engine: PricingEngine, conn: Connection, marks: _Marks, position: int, item: tuple[Any, ...], now: datetime
) -> Outcome:
    pid, product, raw = item
    current: list[str | None] = [None]

    def mark(name: str) -> None:
        current[0] = name
        marks.strategy(name)

    def history(since: datetime | None) -> Sequence[HistoryPoint]:
        conn.send(("history", position, since))
        kind, value = conn.recv()
        if kind != "history":
            raise RuntimeError(value)
        return value  # type: ignore[no-any-return]

    marks.product(position)
    try:
        return engine.price(pid, product, raw, now, history, mark)
    except Exception as exc:  # outside the strategy call (which the engine guards): still this product's
        after = f" after strategy {current[0]}" if current[0] else ""
        return Outcome(
            product.sku, pid, "failed", current[0], error=f"pricing failed{after}: {type(exc).__name__}: {exc}"
        )
    except BaseException as exc:  # SystemExit, KeyboardInterrupt from a plugin: the product fails, not the worker
        who = f"strategy {current[0]}" if current[0] else "pricing"
        return Outcome(product.sku, pid, "failed", current[0], error=f"{who} raised {type(exc).__name__}: {exc}")


def _send_outcomes(conn: Connection, number: int, outcomes: list[Outcome]) -> None:
    try:
        conn.send(("done", number, outcomes))
    except (pickle.PicklingError, TypeError, AttributeError, ValueError, RecursionError):
        # Something a plugin put in a reason or detail does not pickle: fail that product only.
        kept = []
        for outcome in outcomes:
            try:
                pickle.dumps(outcome)
                kept.append(outcome)
            except Exception as exc:
                kept.append(
                    Outcome(
                        outcome.sku,
                        outcome.product_id,
                        "failed",
                        outcome.strategy,
                        error=f"strategy {outcome.strategy} returned a result that cannot be passed "
                        f"back ({type(exc).__name__})",
                    )
                )
        conn.send(("done", number, kept))
