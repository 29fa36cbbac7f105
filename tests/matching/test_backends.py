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
