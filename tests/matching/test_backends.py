"""Discovery, matching and review on each backend (PostgreSQL when PRICEMON_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from tests.conftest import Pricemon
from tests.matching.conftest import ITEMS, PRODUCTS_CSV
from tests.reliability.conftest import sql
from tests.scrape.conftest import Reply


def test_discover_match_accept_and_rematch(database_url: str, tmp_path: Path, matching_shop) -> None:
    config = tmp_path / "pricemon.toml"
    config.write_text(
        f'[scrape]\nretries = 0\n[[competitors]]\nname = "acme"\nbase_url = "{matching_shop.base}"\nmin_delay = "0s"\n',
        encoding="utf-8",
    )
    (tmp_path / "products.csv").write_text(PRODUCTS_CSV, encoding="utf-8")
    pricemon = Pricemon(config=config, database_url=database_url)
    pricemon("db", "upgrade")
    pricemon("import", "products", str(tmp_path / "products.csv"))
    summary = pricemon("discover", "acme", "--json").json()
    assert summary["products"] == len(ITEMS) and summary["match"]["auto_accepted"] == 3
    proposed = pricemon("matches", "--status", "proposed", "--json").json()
    assert [m["sku"] for m in proposed] == ["SSD-1"]
    pricemon("matches", "accept", "--min-score", "0.6")
    listings = {row["sku"]: row["url"] for row in pricemon("listings", "--json").json()}
    assert listings == {
        "XM4-B": matching_shop.url("/p/sony-xm4-black"),
        "XM4-S": matching_shop.url("/p/sony-xm4-silver"),
        "DRILL": matching_shop.url("/p/bosch-drill"),
        "SSD-1": matching_shop.url("/p/ssd-1tb"),
    }
    matching_shop.pages.pop("/p/ssd-1tb")
    assert pricemon("discover", "acme", "--json").json()["rematch"] == 1
    rematch = [m for m in pricemon("matches", "--json").json() if m["rematch"]]
    assert [(m["sku"], m["status"], m["page"]["status"]) for m in rematch] == [("SSD-1", "proposed", "gone")]


def _background(config: Path, database_url: str, *args: str) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).with_name("pricemon")
    command = [str(exe), "--config", str(config), "--database-url", database_url, *args]
    return subprocess.Popen(
        command, cwd=config.parent, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _served_together(shop, paths: list[str]) -> None:
    """Each of `paths` answers only once two requests for it arrived: two processes reading the
    same pages go on to store them at the same time."""
    for path in paths:
        page = shop.pages[path]
        both = threading.Barrier(2, timeout=60)

        def reply(_handler: object, page: str = page, both: threading.Barrier = both) -> Reply:
            both.wait()
            return Reply(body=page)

        shop.pages[path] = reply


def _finished(*runs: subprocess.Popen[bytes]) -> list[dict]:
    outputs = [run.communicate(timeout=120) for run in runs]
    for run, (_out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err.decode()
    return [json.loads(out) for out, _ in outputs]


def _shop_config(tmp_path: Path, database_url: str, shop) -> tuple[Path, Pricemon]:
    config = tmp_path / "pricemon.toml"
    config.write_text(
        f'[scrape]\nretries = 0\n[[competitors]]\nname = "acme"\nbase_url = "{shop.base}"\nmin_delay = "0s"\n',
        encoding="utf-8",
    )
    (tmp_path / "products.csv").write_text(PRODUCTS_CSV, encoding="utf-8")
    pricemon = Pricemon(config=config, database_url=database_url)
    pricemon("db", "upgrade")
    pricemon("import", "products", str(tmp_path / "products.csv"))
    return config, pricemon


def test_two_discoveries_of_one_shop_at_once(database_url: str, tmp_path: Path, matching_shop) -> None:
    """Two `pricemon discover` processes on one database: both finish, the pages are stored once
    and every product gets one accepted page (each writes under the competitor's lock). Before
    that lock the second one failed on discovered_pages' unique (competitor, url)."""
    config, pricemon = _shop_config(tmp_path, database_url, matching_shop)
    _served_together(matching_shop, [f"/p/{item.slug}" for item in ITEMS])
    summaries = _finished(*(_background(config, database_url, "discover", "acme", "--json") for _ in range(2)))
    assert all(s["products"] == len(ITEMS) for s in summaries)
    assert sum(s["new"] for s in summaries) == len(ITEMS)  # one stored them, the other found them stored
    assert sum(s["match"]["auto_accepted"] for s in summaries) == 3
    assert sql(database_url, "SELECT count(*), count(DISTINCT url) FROM discovered_pages") == [(len(ITEMS), len(ITEMS))]
    assert sql(database_url, "SELECT count(*) FROM discovered_pages WHERE needs_matching") == [(0,)]
    accepted = sql(
        database_url, "SELECT product_id, count(*) FROM match_candidates WHERE status = 'accepted' GROUP BY 1"
    )
    assert len(accepted) == 3 and all(n == 1 for _, n in accepted)
    listings = {row["sku"] for row in pricemon("listings", "--json").json()}
    assert listings == {"XM4-B", "XM4-S", "DRILL"}


def test_a_discovery_beside_a_sweep_of_the_same_shop(database_url: str, tmp_path: Path, matching_shop) -> None:
    """A sweep of two listings and a discovery that accepts matches (listings) for the same
    products, reading the same pages at the same moment: both finish, each with its result."""
    config, pricemon = _shop_config(tmp_path, database_url, matching_shop)
    (tmp_path / "listings.csv").write_text(
        "sku,competitor,url\n"
        f"XM4-B,acme,{matching_shop.url('/p/sony-xm4-black')}\nDRILL,acme,{matching_shop.url('/p/bosch-drill')}\n",
        encoding="utf-8",
    )
    pricemon("import", "listings", str(tmp_path / "listings.csv"))
    _served_together(matching_shop, ["/p/sony-xm4-black", "/p/bosch-drill"])
    sweep, discovery = _finished(
        _background(config, database_url, "scrape", "--json"),
        _background(config, database_url, "discover", "acme", "--json"),
    )
    assert sweep["status"] == "finished" and sweep["checked"] == 2
    assert discovery["products"] == len(ITEMS) and discovery["match"]["auto_accepted"] == 3
    rows = {row["sku"]: row for row in pricemon("listings", "--json").json()}
    assert set(rows) == {"XM4-B", "XM4-S", "DRILL"}
    assert rows["XM4-B"]["url"] == matching_shop.url("/p/sony-xm4-black")
    observed = sql(database_url, "SELECT count(*) FROM price_history")
    assert observed == [(2,)]
