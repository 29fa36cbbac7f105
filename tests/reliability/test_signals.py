"""Signals on `pricemon scrape`: SIGTERM/SIGINT stop it gracefully, and when it dies by SIGKILL its
worker processes notice and stop fetching; the run it left open is closed as interrupted."""

from __future__ import annotations

import json
import signal
import time

import psutil
import pytest

from tests.reliability.conftest import pricemon, sql, start_pricemon, wait_for, write_world

#: two competitors of 300 listings: more than SMALL_SWEEP, so the sweep runs in 2 worker processes
WORLD = {"alpha": 300, "beta": 300}


def _workers(pid: int) -> list[psutil.Process]:
    """The sweep's worker processes (multiprocessing's spawned children, not its resource tracker)."""
    workers = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                workers.append(child)
        except psutil.NoSuchProcess:
            continue
    return workers


def _gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _start_sweep(tmp_path, shop, sqlite_url):
    config = write_world(tmp_path, sqlite_url, shop, WORLD, scrape="workers = 2\nbatch_size = 10", concurrency=2)
    shop.delay = 0.05  # ~8 s per competitor: still fetching when the signal comes
    log = tmp_path / "scrape.log"
    scrape = start_pricemon(config, "scrape", "--json", cwd=tmp_path, log=log)
    wait_for(lambda: len(_workers(scrape.pid)) >= 2 and shop.total >= 20, "the workers to fetch", timeout=60)
    return config, scrape, _workers(scrape.pid), log


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_scrape_gracefully(tmp_path, shop, sqlite_url, signum) -> None:
    _config, scrape, workers, log = _start_sweep(tmp_path, shop, sqlite_url)
    scrape.send_signal(signum)
    out, _ = scrape.communicate(timeout=30)
    exited = time.monotonic()
    assert scrape.returncode == 128 + signum, log.read_text()
    summary = json.loads(out)
    assert summary["status"] == "interrupted"
    assert "Traceback" not in log.read_text()
    # The workers finished their batches and left with the parent; nothing fetches any more.
    wait_for(lambda: all(_gone(worker) for worker in workers), "the workers to be gone", timeout=5)
    time.sleep(1.5)
    assert shop.requests_since(exited) == 0
    assert shop.total < sum(WORLD.values())
    # The run is closed as interrupted with what was committed, and its leases are given back.
    runs = sql(sqlite_url, "SELECT status, checked FROM scrape_runs ORDER BY id")
    assert runs[-1] == ("interrupted", summary["checked"])
    assert summary["checked"] > 0
    assert sql(sqlite_url, "SELECT count(*) FROM sweep_leases")[0][0] == 0


def test_workers_stop_when_scrape_is_killed_and_the_next_sweep_closes_its_run(tmp_path, shop, sqlite_url) -> None:
    config, scrape, workers, _log = _start_sweep(tmp_path, shop, sqlite_url)
    scrape.send_signal(signal.SIGKILL)
    scrape.wait(timeout=10)
    killed = time.monotonic()
    wait_for(lambda: all(_gone(worker) for worker in workers), "the orphaned workers to exit", timeout=10)
    assert time.monotonic() - killed < 10
    settled = time.monotonic()
    time.sleep(1.5)
    assert shop.requests_since(settled) == 0
    assert sql(sqlite_url, "SELECT status FROM scrape_runs") == [("running",)]

    # The dead sweep's leases and run do not wait for their expiry: its process is gone.
    shop.delay = 0.0
    again = pricemon(config, "scrape", "--sku", "S0000", "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["checked"] == 2
    runs = sql(sqlite_url, "SELECT status, error FROM scrape_runs ORDER BY id")
    assert runs[0] == ("interrupted", "the process stopped before the sweep finished")
    assert runs[1][0] == "finished"
