"""Discovery, matching and review on each backend (PostgreSQL when PRICEMON_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Pricemon
from tests.matching.conftest import ITEMS, PRODUCTS_CSV


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


def test_two_discoveries_of_one_shop_at_once(database_url: str, tmp_path: Path, matching_shop) -> None:
    """Two `pricemon discover` processes on one database: both finish, the pages are stored once
    and every product gets one accepted page (each writes under the competitor's lock)."""
    import json
    import os
    import subprocess
    import sys
    import threading
    from collections.abc import Callable

    from tests.reliability.conftest import sql
    from tests.scrape.conftest import Reply

    config = tmp_path / "pricemon.toml"
    config.write_text(
        f'[scrape]\nretries = 0\n[[competitors]]\nname = "acme"\nbase_url = "{matching_shop.base}"\nmin_delay = "0s"\n',
        encoding="utf-8",
    )
    (tmp_path / "products.csv").write_text(PRODUCTS_CSV, encoding="utf-8")
    pricemon = Pricemon(config=config, database_url=database_url)
    pricemon("db", "upgrade")
    pricemon("import", "products", str(tmp_path / "products.csv"))
    # Each product page waits until both discoveries asked for it: they store and match together.
    both = threading.Barrier(2, timeout=60)

    def served_to_both(page: str) -> Callable[[object], Reply]:
        def reply(_handler: object) -> Reply:
            both.wait()
            return Reply(body=page)

        return reply

    for item in ITEMS:
        path = f"/p/{item.slug}"
        matching_shop.pages[path] = served_to_both(matching_shop.pages[path])
    exe = Path(sys.executable).with_name("pricemon")
    command = [str(exe), "--config", str(config), "--database-url", database_url, "discover", "acme", "--json"]
    runs = [
        subprocess.Popen(command, cwd=tmp_path, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=120) for run in runs]
    for run, (_out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err.decode()
    summaries = [json.loads(out) for out, _ in outputs]
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
