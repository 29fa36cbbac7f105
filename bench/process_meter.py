"""Running one benchmark step as a child process and measuring it: wall seconds and peak RSS of its tree.

The peak is the largest sum of resident memory over the child and all its descendants, sampled by
psutil every 50 ms, so worker processes a sweep forks are counted too. Listing the descendants scans
every process on the machine (about 3 ms), so the list is refreshed only every second; the
measured run and the meter share 2 cores, and the meter must not take CPU the sweep would use.
"""

from __future__ import annotations

import logging
import resource
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

logger = logging.getLogger(__name__)

SAMPLE_INTERVAL_S = 0.05
#: how often the list of descendants is rebuilt (a sweep starts its workers once, at the start)
MEMBERS_INTERVAL_S = 1.0


@dataclass(frozen=True)
class MeasuredRun:
    """What one measured child did."""

    command: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss_bytes: int
    cpu_seconds: float = 0.0  # user + system of the child and every descendant it waited for

    @property
    def peak_rss_mb(self) -> float:
        return self.peak_rss_bytes / 1024 / 1024


def tree_members(process: psutil.Process) -> list[psutil.Process]:
    try:
        return [process, *process.children(recursive=True)]
    except psutil.Error:
        return []


def tree_rss(process: psutil.Process, members: list[psutil.Process] | None = None) -> int:
    """Resident memory of `process` and its descendants (or of `members`, a list taken earlier)."""
    total = 0
    if members is None:
        members = tree_members(process)
    for member in members:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            # A child that exited between listing and sampling simply no longer counts.
            continue
    return total


def run_measured(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout_s: float | None = None,
) -> MeasuredRun:
    """Run `command` to completion, sampling its process tree's RSS; output is captured via files."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        child = subprocess.Popen(list(command), stdout=out, stderr=err, env=env, cwd=cwd)
        peak = 0
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            try:
                watched = psutil.Process(child.pid)
            except psutil.Error:
                return
            members: list[psutil.Process] = []
            listed = float("-inf")
            while not done.is_set():
                if time.monotonic() - listed >= MEMBERS_INTERVAL_S:
                    members, listed = tree_members(watched), time.monotonic()
                peak = max(peak, tree_rss(watched, members))
                done.wait(SAMPLE_INTERVAL_S)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            returncode = child.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            child.kill()
            returncode = child.wait()
            logger.error("%s killed after %.0f s", command[0], timeout_s)
        except BaseException:
            # Ctrl-C or SIGTERM on the bench: the step stops with it (pricemon closes its run on
            # SIGTERM), so nothing keeps sweeping a server that is being taken down.
            child.terminate()
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            done.set()
            raise
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        done.set()
        sampler.join()
        out.seek(0)
        err.seek(0)
        return MeasuredRun(
            command=tuple(command),
            returncode=returncode,
            stdout=out.read().decode("utf-8", errors="replace"),
            stderr=err.read().decode("utf-8", errors="replace"),
            seconds=seconds,
            peak_rss_bytes=peak,
            cpu_seconds=cpu,
        )
