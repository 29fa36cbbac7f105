"""CSV imports are idempotent upserts and all-or-nothing, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

CONFIG = """
[[competitors]]
name = "acme"
base_url = "http://127.0.0.1:9/"

[[competitors]]
name = "globex"
base_url = "http://127.0.0.1:9/"
"""

PRODUCTS = """sku,name,price,currency,cost,min_price,max_price,map_price,gtin,tags
A-1,Kettle,19.99,eur,12.00,15,30,18.50,4006381333931,kitchen;sale
B-2,"Drill, cordless",129.00,EUR,,,,,,
"""


@pytest.fixture
def pricemon(pricemon_cli, write_config, database_url):
    pricemon = pricemon_cli(write_config(CONFIG), database_url)
    pricemon("db", "upgrade")  # what a user runs first; SQLite would also do it by itself
    return pricemon


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_products_import_and_reimport_is_idempotent(pricemon, tmp_path: Path) -> None:
    csv_file = write(tmp_path, "products.csv", PRODUCTS)
    first = pricemon("import", "products", str(csv_file), "--json").json()
    assert (first["inserted"], first["updated"], first["unchanged"]) == (2, 0, 0)
    again = pricemon("import", "products", str(csv_file), "--json").json()
    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, 2)
    products = pricemon("products", "--json").json()
    assert products[0] == {
        "sku": "A-1",
        "name": "Kettle",
        "currency": "EUR",
        "price": "19.99",
        "cost": "12.00",
        "min_price": "15.00",
        "max_price": "30.00",
        "map_price": "18.50",
        "gtin": "4006381333931",
        "mpn": None,
        "brand": None,
        "tags": ["kitchen", "sale"],
        "active": True,
    }
    assert products[1]["name"] == "Drill, cordless" and products[1]["cost"] is None

    changed = write(tmp_path, "changed.csv", "sku,name,price,currency\nA-1,Kettle XL,21.50,EUR\n")
    summary = pricemon("import", "products", str(changed), "--json").json()
    assert (summary["inserted"], summary["updated"]) == (0, 1)
    assert pricemon("products", "--sku", "A-1", "--json").json()[0]["price"] == "21.50"


def test_a_bad_products_file_imports_nothing_and_names_every_bad_row(pricemon, tmp_path: Path) -> None:
    bad = write(
        tmp_path,
        "bad.csv",
        "sku,name,price,currency,cost\n"
        "OK-1,Fine,10.00,EUR,\n"
        "X-2,Negative,-5,EUR,\n"
        "X-3,Words,ten,EUR,\n"
        "OK-1,Again,11.00,EUR,\n"
        "X-5,Bad currency,1.00,EURO,\n"
        "X-6,Bad cost,1.00,EUR,1,5\n",
    )
    result = pricemon("import", "products", str(bad), expect=1)
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("pricemon: error: ")
    for expected in (
        f"{bad}:3: price: negative amount -5",
        f"{bad}:4: price: not a number: 'ten'",
        f"{bad}:5: sku: duplicate SKU 'OK-1' (first on line 2)",
        f"{bad}:6: currency: expected an ISO 4217 code",
        f"{bad}:7: row: more cells than header columns",
    ):
        assert expected in result.stderr
    assert pricemon("products", "--json").json() == []


def test_header_problems_are_reported(pricemon, tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.csv", "sku,title,price\nA,B,1\n")
    result = pricemon("import", "products", str(bad), expect=1)
    assert f"{bad}:1: header: missing column 'name'" in result.stderr
    assert f"{bad}:1: header: unknown column 'title'" in result.stderr
    missing = pricemon("import", "products", str(tmp_path / "nope.csv"), expect=1)
    assert "nope.csv: cannot read" in missing.stderr


def test_listings_import_upserts_and_rejects_bad_rows(pricemon, tmp_path: Path) -> None:
    pricemon("import", "products", str(write(tmp_path, "p.csv", PRODUCTS)))
    good = write(
        tmp_path,
        "l.csv",
        "sku,competitor,url\nA-1,acme,http://127.0.0.1:9/a1\nA-1,globex,https://127.0.0.1:9/x\nB-2,acme,http://127.0.0.1:9/b2\n",
    )
    assert pricemon("import", "listings", str(good), "--json").json()["inserted"] == 3
    assert pricemon("import", "listings", str(good), "--json").json()["unchanged"] == 3
    moved = write(tmp_path, "m.csv", "sku,competitor,url\nA-1,acme,http://127.0.0.1:9/a1-new\n")
    assert pricemon("import", "listings", str(moved), "--json").json()["updated"] == 1
    listings = pricemon("listings", "--json").json()
    assert [(r["sku"], r["competitor"], r["url"]) for r in listings] == [
        ("A-1", "acme", "http://127.0.0.1:9/a1-new"),
        ("A-1", "globex", "https://127.0.0.1:9/x"),
        ("B-2", "acme", "http://127.0.0.1:9/b2"),
    ]
    assert listings[0]["price"] is None and listings[0]["last_outcome"] is None

    bad = write(
        tmp_path,
        "bad.csv",
        "sku,competitor,url\nA-1,acme,http://127.0.0.1:9/new\nZZZ,acme,http://127.0.0.1:9/z\n"
        "B-2,initech,http://127.0.0.1:9/b\nB-2,globex,file:///etc/passwd\nA-1,acme,http://127.0.0.1:9/dup\n",
    )
    result = pricemon("import", "listings", str(bad), expect=1)
    assert f"{bad}:3: sku: unknown SKU 'ZZZ'" in result.stderr
    assert f"{bad}:4: competitor: unknown competitor 'initech'" in result.stderr
    assert f"{bad}:5: url: expected an http:// or https:// URL, got 'file:///etc/passwd'" in result.stderr
    assert f"{bad}:6: sku: duplicate listing for 'A-1' at 'acme' (first on line 2)" in result.stderr
    # all-or-nothing: the good first row was not applied either
    assert pricemon("listings", "--sku", "A-1", "--competitor", "acme", "--json").json()[0]["url"].endswith("a1-new")


def test_history_of_unknown_sku_is_a_clear_error(pricemon) -> None:
    result = pricemon("history", "NOPE", expect=1)
    assert result.stderr.strip() == "pricemon: error: unknown SKU 'NOPE'"


def test_sweep_target_counts_agree_with_the_targets(pricemon, tmp_path: Path, database_url: str) -> None:
    """A sweep sizes and shards itself from `count_sweep_targets`, then streams `sweep_targets`:
    both must see the same listings under every filter."""
    from datetime import timedelta

    from monitor.store.catalog import count_sweep_targets, sweep_targets
    from monitor.store.database import open_store
    from monitor.store.models import Listing, utcnow

    pricemon("import", "products", str(write(tmp_path, "p.csv", PRODUCTS)))
    listings = "sku,competitor,url\nA-1,acme,http://127.0.0.1:9/a1\nA-1,globex,http://127.0.0.1:9/x\nB-2,acme,http://127.0.0.1:9/b2\n"
    pricemon("import", "listings", str(write(tmp_path, "l.csv", listings)))
    store = open_store(database_url)
    try:
        with store.session() as session:  # one listing checked recently, so not due yet
            listing = session.query(Listing).filter(Listing.url.endswith("/b2")).one()
            listing.next_check_at = utcnow() + timedelta(hours=1)
        cases = [
            ({"competitors": ["acme", "globex"]}, {"acme": 2, "globex": 1}),
            ({"competitors": ["acme"], "skus": ["A-1"]}, {"acme": 1}),
            ({"competitors": ["acme", "globex"], "due_only": True}, {"acme": 1, "globex": 1}),
            ({"competitors": ["initech"]}, {}),
        ]
        with store.session() as session:
            for filters, expected in cases:
                streamed: dict[str, int] = {}
                for row in sweep_targets(session, **filters):
                    streamed[row.competitor] = streamed.get(row.competitor, 0) + 1
                assert count_sweep_targets(session, **filters) == streamed == expected, filters
    finally:
        store.dispose()
