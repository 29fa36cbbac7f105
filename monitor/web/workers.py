"""The processes of `pricemon serve --workers N`: a parent that holds the port and supervises, and N
spawned uvicorn workers that each listen on a socket of their own (SO_REUSEPORT), so that the
kernel, not whichever worker wakes first, spreads new connections across them."""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from monitor.errors import PricemonError

logger = logging.getLogger(__name__)

#: the kernel balances connections across SO_REUSEPORT listeners (Linux 3.9+); elsewhere the
#: option exists with other meanings (BSD: the last socket bound takes everything) or not at all
REUSEPORT_BALANCING = sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")
#: how long stopping workers may take to finish their requests before they are killed
STOP_SECONDS = 10.0
#: how often the parent looks at its workers when nothing wakes it
POLL_SECONDS = 0.5
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def shown_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET  # as uvicorn decides


def _bound(host: str, port: int, *, reuse_address: bool, reuse_port: bool) -> socket.socket:
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        if reuse_address:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


@contextmanager
def reserved_port(host: str, port: int) -> Iterator[socket.socket]:
    """A bound, never listening SO_REUSEPORT socket on (host, port) that keeps the port (and the one
    `port` 0 was given) for the workers while the parent lives; PricemonError if the port is taken.

    The check binds without SO_REUSEPORT (with SO_REUSEADDR, as uvicorn binds, so that connections
    still in TIME_WAIT do not count): it fails against any listening socket, ours or anyone's,
    and against another parent's reservation, which has no SO_REUSEADDR for exactly that reason.
    """
    try:
        with _bound(host, port, reuse_address=True, reuse_port=False) as probe:
            port = probe.getsockname()[1]
        try:
            reservation = _bound(host, port, reuse_address=False, reuse_port=True)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            # The probe passed, so what is left are connections in TIME_WAIT of a server that
            # listened without SO_REUSEPORT (`--workers 1`, or an older pricemon) in the last minute.
            reservation = _bound(host, port, reuse_address=True, reuse_port=True)
    except OSError as exc:
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        raise PricemonError(f"cannot listen on {shown_address(host, port)}: {reason}") from exc
    with reservation:
        yield reservation


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process needs (pickled to it): the app factory's import path and uvicorn's options."""

    app: str
    options: dict[str, Any]
    parent_pid: int


def _die_with_parent(parent_pid: int) -> None:
    """Have the kernel SIGTERM this worker when the parent dies (even by SIGKILL), so no orphan keeps the port."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # it died before we asked
        os.kill(os.getpid(), signal.SIGTERM)


def serve_worker(spec: WorkerSpec, ready: Connection) -> None:
    """One worker: its own SO_REUSEPORT listening socket, and uvicorn serving on it; `ready` hears
    once the server has started, which is what tells a start-up failure from a later death."""
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE

    _die_with_parent(spec.parent_pid)

    async def notify_started() -> None:  # uvicorn calls it from its main loop, once started
        if not ready.closed:
            ready.send(True)
            ready.close()

    config = uvicorn.Config(spec.app, factory=True, callback_notify=notify_started, **spec.options)
    try:
        config.load()  # here rather than in Server.run, to tell the user a PricemonError without a traceback
    except PricemonError as exc:
        from monitor.redact import redact_text

        print(f"pricemon: error: {redact_text(str(exc))}", file=sys.stderr, flush=True)
        sys.exit(STARTUP_FAILURE)
    sock = _bound(spec.options["host"], spec.options["port"], reuse_address=True, reuse_port=True)
    uvicorn.Server(config).run(sockets=[sock])


@dataclass
class _Worker:
    slot: int
    process: BaseProcess
    ready: Connection
    started: bool = False


WorkerTarget = Callable[[WorkerSpec, Connection], None]


class WorkerGroup:
    """Keeps `count` workers running on the reserved port until SIGINT/SIGTERM: a worker that dies
    after it started is replaced; one that dies before stops them all (PricemonError)."""

    def __init__(self, spec: WorkerSpec, count: int, target: WorkerTarget = serve_worker) -> None:
        self.spec = spec
        self.count = count
        self.target = target
        self.context = get_context("spawn")  # as uvicorn: no fork of a process with open connections
        self.workers: dict[int, _Worker] = {}
        self.stop_signal: int | None = None
        self._wake_read, self._wake_write = socket.socketpair()

    def run(self) -> None:
        previous = {sig: signal.signal(sig, self._ask_to_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for slot in range(self.count):
                self._start(slot)
            while self.stop_signal is None:
                self._watch()
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._wake_read.close()
            self._wake_write.close()
        logger.info("workers stopped (%s)", signal.Signals(self.stop_signal).name)

    def _ask_to_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop_signal = signum
        self._wake_write.send(b"\0")  # ends the wait below at once

    def _start(self, slot: int) -> None:
        ready, ready_in_worker = self.context.Pipe(duplex=False)
        process = self.context.Process(
            target=self.target, args=(self.spec, ready_in_worker), name=f"pricemon-serve-{slot}", daemon=False
        )
        process.start()
        ready_in_worker.close()  # the worker has its own copy: EOF here once it is gone
        self.workers[slot] = _Worker(slot, process, ready)

    def _watch(self) -> None:
        waiting: list[Any] = [self._wake_read]
        for worker in self.workers.values():
            waiting.append(worker.process.sentinel)
            if not worker.started:
                waiting.append(worker.ready)
        wait(waiting, timeout=POLL_SECONDS)
        if self.stop_signal is not None:
            return
        for worker in list(self.workers.values()):
            if not worker.started and worker.ready.poll():
                try:
                    worker.started = worker.ready.recv()
                except EOFError:
                    pass  # it exited before it started: the sentinel says so below
                else:
                    logger.info("worker %d started (pid %d)", worker.slot, worker.process.pid)
                    worker.ready.close()
            code = worker.process.exitcode
            if code is None:
                continue
            if not worker.started:
                raise PricemonError(
                    f"a server worker could not start (pid {worker.process.pid}, exit code {code}; its error is above)"
                )
            logger.warning(
                "worker %d (pid %d) exited with code %s: starting another",
                worker.slot,
                worker.process.pid,
                code,
                extra={"pid": worker.process.pid, "exit_code": code},
            )
            self._start(worker.slot)

    def _stop_all(self) -> None:
        alive = [w.process for w in self.workers.values() if w.process.exitcode is None]
        for process in alive:
            process.terminate()  # uvicorn finishes the requests in flight, then exits
        deadline = time.monotonic() + STOP_SECONDS
        for process in alive:
            process.join(max(0.0, deadline - time.monotonic()))
        for process in alive:
            if process.exitcode is None:
                logger.warning("worker pid %d did not stop within %.0f s: killed", process.pid, STOP_SECONDS)
                process.kill()
                process.join()
        for worker in self.workers.values():
            worker.ready.close()


def serve_workers(app: str, options: dict[str, Any], count: int, on_listening: Callable[[int], None]) -> None:
    """Serve the app factory `app` ("module:function") in `count` worker processes on
    options["host"], options["port"] until SIGINT/SIGTERM; `on_listening(port)` is called once the
    port is held (with the real port when given 0). PricemonError if the port is taken or a worker
    cannot start."""
    if not REUSEPORT_BALANCING:
        import uvicorn

        logger.info(
            "SO_REUSEPORT balancing is Linux-only: the %d workers share one listening socket on %s",
            count,
            sys.platform,
        )
        on_listening(options["port"])
        uvicorn.run(app, factory=True, workers=count, **options)
        return
    with reserved_port(options["host"], options["port"]) as reservation:
        port = reservation.getsockname()[1]
        on_listening(port)
        WorkerGroup(WorkerSpec(app, {**options, "port": port}, os.getpid()), count).run()
