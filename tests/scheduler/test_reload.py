"""Reloading the config reschedules exactly what changed (in-process, the daemon's real scheduler).

The scraper is replaced by a recorder here: these tests are about which jobs exist and how they
are triggered; the sweeps themselves are exercised end to end in test_daemon.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.errors import DatabaseError
from monitor.scheduler import Daemon
from monitor.scrape.sweep import SweepSummary
from monitor.settings import Settings, load_settings
from tests.conftest import Pricemon


def competitors_toml(*blocks: str) -> str:
    return "".join(f'\n[[competitors]]\nbase_url = "http://127.0.0.1:9"\n{block}\n' for block in blocks)


class Recorder:
    """Stands in for run_sweep: remembers which competitors were swept, can fail on demand."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.fail_times = 0
        self.swept = threading.Event()

    def __call__(self, settings: Settings, *, competitors: list[str], **kwargs: Any) -> Any:
        assert kwargs["due_only"] is True and kwargs["trigger"] == "daemon"
        if self.fail_times:
            self.fail_times -= 1
            raise DatabaseError("database is locked")
        self.calls.append(tuple(competitors))
        self.swept.set()
        return SweepSummary(None, "finished", 0.0, {}, checked=0, changed=0, failed=0)


@pytest.fixture
def daemon_for(tmp_path: Path) -> Iterator[Any]:
    started: list[Daemon] = []
    config = tmp_path / "pricemon.toml"
    url = f"sqlite:///{tmp_path / 'pricemon.db'}"

    def make(text: str, sweep: Recorder | None = None, *, listing_of: str | None = None) -> tuple[Daemon, Path]:
        config.write_text(f'database_url = "{url}"\n[scheduler]\ndatabase_retry_max = "1s"\n' + text)
        if listing_of is not None:
            # A due listing, so that the first sweep at start-up has something to do.
            products = tmp_path / "products.csv"
            products.write_text("sku,name,price,currency\nK1,k,10,EUR\n")
            listings = tmp_path / "listings.csv"
            listings.write_text(f"sku,competitor,url\nK1,{listing_of},http://127.0.0.1:9/k1\n")
            Pricemon(config)("import", "products", str(products))
            Pricemon(config)("import", "listings", str(listings))
        daemon = Daemon(load_settings(config), load_settings=lambda: load_settings(config), sweep=sweep or Recorder())
        daemon.start()
        started.append(daemon)
        return daemon, config

    yield make
    for daemon in started:
        daemon.shutdown()


def test_reload_adds_removes_and_reschedules(daemon_for) -> None:
    daemon, config = daemon_for(
        competitors_toml('name = "a"\nevery = "1h"', 'name = "b"\nevery = "1h"', 'name = "c"\nenabled = false')
    )
    assert set(daemon.scheduled()) == {"a", "b"}
    assert "1:00:00" in daemon.scheduled()["a"]

    config.write_text(
        config.read_text().split("[[competitors]]")[0]
        + competitors_toml('name = "a"\nevery = "30m"', 'name = "c"\ncron = "*/5 * * * *"')
    )
    assert daemon.reload() is True
    jobs = daemon.scheduled()
    assert set(jobs) == {"a", "c"}
    assert "0:30:00" in jobs["a"]
    assert jobs["c"].startswith("cron[") and "minute='*/5'" in jobs["c"]


def test_invalid_reload_keeps_the_running_config(daemon_for, caplog) -> None:
    daemon, config = daemon_for(competitors_toml('name = "a"\nevery = "1h"'))
    before = daemon.scheduled()
    config.write_text(config.read_text().replace('every = "1h"', 'every = "1h"\nmax_concurrency = 0'))
    assert daemon.reload() is False
    assert daemon.scheduled() == before
    assert daemon.settings.competitors[0].max_concurrency == 4
    assert "config reload rejected" in caplog.text and "max_concurrency" in caplog.text


def test_a_database_error_is_retried_not_fatal(daemon_for) -> None:
    sweep = Recorder()
    sweep.fail_times = 2
    daemon_for(competitors_toml('name = "a"\nevery = "1h"'), sweep, listing_of="a")
    assert sweep.swept.wait(timeout=30), "the sweep never succeeded after the database errors"
    assert sweep.calls == [("a",)]
    assert sweep.fail_times == 0
