"""`python -m bench.micro` on a few pages per style, so the per-part benchmark keeps working. No figure
is asserted as a speed; only that every part was measured and written to the results file."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import make_url

from bench.runner import child_env
from tests.conftest import POSTGRES_ENV


def test_micro_benchmark_measures_every_part(bench_cache: Path, tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    command = [sys.executable, "-m", "bench.micro", "--products", "12", "--cache-dir", str(bench_cache)]
    stores = {"storing (SQLite)"}
    if os.environ.get(POSTGRES_ENV):  # the server of the test database; bench.micro makes its own database there
        server = make_url(os.environ[POSTGRES_ENV]).set(database="").render_as_string(hide_password=False)
        command += ["--database", "both", "--postgres-url", server]
        stores.add("storing (PostgreSQL)")
    else:
        command += ["--database", "sqlite"]
    done = subprocess.run(
        [*command, "--results", str(results)],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    section = results.read_text()
    assert "Command: `python -m bench.micro --products 12" in section
    figures = {
        (part, case): float(value.replace(",", ""))
        for part, case, value in re.findall(r"^\| ([^|]+?) \| ([^|]+?) \| ([\d,.]+) \|$", section, re.M)
    }
    parts = {part for part, _ in figures}
    assert parts == {"extraction", "fetching (CPU)", "body hash", *stores}
    styles = {case for part, case in figures if part == "extraction"}
    assert styles == {"jsonld", "jsonld_graph", "microdata", "opengraph", "plain", "plain_eu"}
    assert ("fetching (CPU)", "Fetcher on httpx's transport (proxies)") in figures
    assert all(value > 0 for value in figures.values())
