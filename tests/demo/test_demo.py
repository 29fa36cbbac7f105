"""`pricemon demo` end to end, as a user runs it: a separate process, then the results read back
through the CLI."""

from __future__ import annotations

import json

from monitor.demo.scenario import CATALOGUE
from tests.conftest import run_pricemon


def test_demo_runs_a_whole_cycle(tmp_path, pricemon_cli):
    done = run_pricemon("demo", "--out", "demo", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "demo"
    assert f"Report: {folder / 'report.html'}" in done.stdout
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert 'id="suggestions-table"' in html and "Steel kettle" in html

    pricemon = pricemon_cli(folder / "pricemon.toml")
    report = pricemon("report", "--json").json()
    assert report["summary"]["runs"] == 2
    assert report["summary"]["products"] == len(CATALOGUE)
    assert report["summary"]["listings"] == sum(len(p.offers) for p in CATALOGUE)
    assert report["summary"]["pending_suggestions"] > 0 and report["suggestions"]
    assert report["charts"], "the products with suggestions are charted"

    # every page style was read; only the failing shop failed, on both sweeps
    health = {h["name"]: h for h in report["competitors"]}
    assert health["brokenshop"]["success_rate"] == 0 and health["brokenshop"]["checks"] == 8
    for shop in ("jsonmart", "microstore", "plainshop", "eurohaus"):
        assert health[shop]["success_rate"] == 1, (shop, health[shop])
    assert health["jsonmart"]["outcomes"].get("not_modified"), "the ETag shop answered 304 on sweep 2"

    # the price moves between the sweeps are in the change-only history
    history = pricemon("history", "KET-100", "--json").json()
    jsonmart = [(h["price"], h["in_stock"]) for h in history if h["competitor"] == "jsonmart"]
    assert jsonmart == [("37.90", True), ("35.90", True)]
    eurohaus = [h["price"] for h in history if h["competitor"] == "eurohaus"]
    assert eurohaus == ["41.00"]  # "41,00 €" read with the European format
    espresso = [h["price"] for h in pricemon("history", "ESP-140", "--json").json() if h["competitor"] == "eurohaus"]
    assert espresso == ["1199.00"]  # "1.199,00 €"
    knife = [(h["price"], h["in_stock"]) for h in pricemon("history", "KNI-600", "--json").json()
             if h["competitor"] == "plainshop"]
    assert knife == [("54.90", True), ("54.90", False)]  # sold out on the second sweep

    # run again in the same folder: a fresh database, not one growing across runs
    # ... and never the store PRICEMON_DATABASE_URL points at
    elsewhere = tmp_path / "production.db"
    again = run_pricemon("demo", "--out", "demo", cwd=tmp_path, env={"PRICEMON_DATABASE_URL": f"sqlite:///{elsewhere}"})
    assert again.returncode == 0, again.stderr
    assert json.loads(pricemon("report", "--json").stdout)["summary"]["runs"] == 2
    assert not elsewhere.exists()
