"""The whole benchmark on a few hundred pages, so `bench/run` keeps working. No figure is asserted as
a speed; only that every step ran, the sweep was accurate and an unchanged sweep wrote nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.runner import child_env, pricemon_has


def test_runner_end_to_end_on_sqlite(bench_cache: Path, tmp_path: Path) -> None:
    if not pricemon_has("scrape"):
        pytest.skip("`pricemon scrape --help` fails: the scrape engine has not landed yet")
    results = tmp_path / "RESULTS.md"
    figures = tmp_path / "figures.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--shops",
            "3",
            "--products",
            "60",
            "--database",
            "sqlite",
            "--max-concurrency",
            "4",
            "--web-seconds",
            "1",
            "--scrapy-pages",  # Scrapy crawls every shop's first 10 pages
            "30",
            "--cache-dir",
            str(bench_cache),
            "--results",
            str(results),
            "--json",
            str(figures),
        ],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=tmp_path,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads(figures.read_text())
    (sqlite,) = data["backends"]
    steps = {step["name"]: step for step in sqlite["steps"]}
    assert all(step["returncode"] == 0 for step in steps.values())
    assert sqlite["accuracy_ratio"] == 1.0
    assert steps["scrape (full sweep)"]["history_rows_added"] == 180
    assert steps["scrape (unchanged)"]["history_rows_added"] == 0
    assert steps["scrape (full sweep)"]["cpu_seconds"] > 0  # the workers, waited for by pricemon
    assert data["scrapy_accuracy_ratio"] == 1.0  # over its sample, against the sample's truth
    if Path("/dev/shm").is_dir():  # pages served from a tmpfs copy, removed afterwards
        assert data["served_from"].startswith("memory (a copy in /dev/shm/"), data["served_from"]
        assert not Path(data["served_from"].split()[4].rstrip(",")).exists()
    section = results.read_text()
    assert "3 shops x 60 products = 180 pages" in section
    assert "PASS" in section or "MISS" in section
    assert "Scrapy baseline accuracy (same extract()): 30/30 = 100.00%" in section
    assert "a sample (`--scrapy-pages`): 30 of the 180 pages, every shop's first 10" in section
    # The review workspace step: served and measured on a 180-product store, or skipped saying why.
    (web,) = data["web"]
    if web["skipped"] is None:
        assert web["error"] is None and web["products"] == 180
        assert [r["scenario"] for r in web["results"]] == [
            "review page (50 rows)", "review page, filtered", "API suggestions (50)",
            "review page, filtered, counted afresh"]
        assert all(r["load"]["ok"] > 0 and r["load"]["failed"] == 0 for r in web["results"])
        assert "Review workspace on sqlite: 180 products" in section
    else:
        assert "web step skipped" in section
