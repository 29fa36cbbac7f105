"""`python -m bench.web` on a tiny store: the whole step runs (store, `pricemon serve`, login, load
from a second process, figures). No figure is asserted as a speed; only that every request was
served, the figures add up and a broken page is reported as such."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from bench.runner import child_env
from bench.web import pricemon_serves, scenarios
from tests.conftest import POSTGRES_ENV

pytestmark = pytest.mark.skipif(not pricemon_serves(), reason="`pricemon serve` has not landed yet")


def run_web(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    figures = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.web", "--size", "120", "--seconds", "1", "--warmup", "0.3",
         "--connections", "2", "--cache-dir", str(tmp_path / "cache"), "--results", str(tmp_path / "RESULTS.md"),
         "--json", str(figures), *args],
        capture_output=True, text=True, env=child_env(), cwd=tmp_path, timeout=600, check=False,
    )
    return done, json.loads(figures.read_text()) if figures.exists() else None


def check_served(run: dict[str, Any]) -> None:
    assert run["error"] is None and run["skipped"] is None
    assert run["products"] == 120 and run["pending"] > 100  # nearly every product has a suggestion
    assert [r["scenario"] for r in run["results"]] == [
        "review page (50 rows)", "review page, filtered", "API suggestions (50)",
        "review page, filtered, counted afresh"]
    for result in run["results"]:
        load = result["load"]
        assert load["ok"] > 0 and load["failed"] == 0, result
        assert load["statuses"] == {"200": load["ok"]}
        assert 0 < load["p50_ms"] <= load["p95_ms"] <= load["max_ms"]
        assert result["server_cpu_seconds"] > 0  # the server did the work, in its own process
        # the load's 2 connections, counted at the server's processes after the warm-up
        assert sum(result["connections_per_process"]) == 2, result["connections_per_process"]
    assert {t["name"].split(":")[0] for t in run["targets"]} == {r["scenario"] for r in run["results"]}


def test_sqlite_with_two_workers_and_a_broken_page(tmp_path: Path) -> None:
    defaults = [f"{s.name}|{s.kind}|{'|'.join(s.paths)}" for s in scenarios()]
    chosen = [a for text in [*defaults, "missing|page|/no-such-page"] for a in ("--scenario", text)]
    done, runs = run_web(tmp_path, "--database", "sqlite", "--workers", "2", *chosen)
    # A page that answers 404 fails the step and is named; the other scenarios are still measured.
    assert done.returncode == 1, done.stderr[-3000:]
    (run,) = runs
    assert "missing: GET /no-such-page answered HTTP 404" in run.pop("error")
    check_served({**run, "error": None})  # a login cookie signed by one worker is good at the other
    assert run["server"] == "pricemon serve, 2 worker(s)"
    section = (tmp_path / "RESULTS.md").read_text()
    assert "review workspace (bench.web)" in section and "| sqlite | API suggestions (50) |" in section
    assert "web step failed: `missing: GET /no-such-page answered HTTP 404" in section
    # The run's token was revoked afterwards; the store is kept for the next run.
    store = next((tmp_path / "cache").glob("sqlite-*"))
    assert (store / "ready.json").exists()
    tokens = subprocess.run(
        [str(Path(sys.executable).with_name("pricemon")), "--config", str(store / "pricemon.toml"),
         "--database-url", f"sqlite:///{store / 'pricemon.db'}", "tokens", "list", "--json"],
        capture_output=True, text=True, check=True, env=child_env())
    assert [t["active"] for t in json.loads(tokens.stdout)] == [False]


def test_postgresql(tmp_path: Path) -> None:
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"{POSTGRES_ENV} is not set")
    url = make_url(base)
    server = url.render_as_string(hide_password=False).rsplit("/", 1)[0] if url.database else str(base)
    done, runs = run_web(tmp_path, "--database", "postgresql", "--postgres-url", server, "--no-results")
    assert done.returncode == 0, done.stderr[-3000:]
    check_served(runs[0])
    assert not (tmp_path / "RESULTS.md").exists()
