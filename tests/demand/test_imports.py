"""`pricemon import sales` / `import traffic`: all-or-nothing, FILE:LINE errors, idempotent upserts."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from monitor.demand.imports import import_sales, import_traffic
from monitor.errors import ImportDataError
from monitor.store.database import open_store
from monitor.store.models import PriceChange, Product, SalesDay, TrafficDay


def _catalogue(tmp_path: Path, pricemon) -> None:
    products = tmp_path / "products.csv"
    products.write_text("sku,name,price,currency\nA-1,a,10.00,EUR\nB-2,b,20.00,EUR\n", encoding="utf-8")
    pricemon("import", "products", str(products))


def _rows(url: str, model: type) -> list[tuple]:
    store = open_store(url)
    try:
        with store.session() as session:
            columns = [c for c in model.__table__.columns if c.name != "id"]
            return [tuple(r) for r in session.execute(select(*columns).order_by(model.product_id, model.date))]
    finally:
        store.dispose()


def test_bad_rows_are_reported_with_file_and_line_and_nothing_is_written(tmp_path: Path, pricemon_cli) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    pricemon = pricemon_cli(None, url)
    _catalogue(tmp_path, pricemon)
    sales = tmp_path / "sales.csv"
    sales.write_text(
        "sku,date,units,revenue,price\n"
        "A-1,2026-11-01,3,30.00,10.00\n"  # good: must not be written either
        "A-1,2026-13-01,3,30.00,\n"  # line 3: bad date
        "A-1,2026-11-02,-1,0,\n"  # line 4: negative units
        "ZZZ,2026-11-02,1,10,\n"  # line 5: unknown sku
        "A-1,2026-11-01,4,40.00,10.00\n"  # line 6: duplicate of line 2
        "B-2,2026-11-01,1,abc,\n"  # line 7: bad revenue
        "B-2,2026-11-02,1.5,10,\n",  # line 8: units not whole
        encoding="utf-8",
    )
    result = pricemon("import", "sales", str(sales), expect=1)
    err = result.stderr
    assert "nothing imported" in err
    assert f"{sales}:3: date: expected a date as YYYY-MM-DD, got '2026-13-01'" in err
    assert f"{sales}:4: units: negative count -1" in err
    assert f"{sales}:5: sku: unknown SKU 'ZZZ'" in err
    assert f"{sales}:6: date: duplicate row for 'A-1' on 2026-11-01 (first on line 2)" in err
    assert f"{sales}:7: revenue: not a number: 'abc'" in err
    assert f"{sales}:8: units: expected a whole number, got '1.5'" in err
    # reported in file order
    assert err.index(f"{sales}:3:") < err.index(f"{sales}:5:") < err.index(f"{sales}:8:")
    assert "Traceback" not in err
    assert _rows(url, SalesDay) == []

    traffic = tmp_path / "traffic.csv"
    traffic.write_text(
        "sku,date,sessions,clicks\nA-1,2026-11-01,100,7\nA-1,11/02/2026,5,\nB-2,2026-11-01,,\n", encoding="utf-8"
    )
    err = pricemon("import", "traffic", str(traffic), expect=1).stderr
    assert f"{traffic}:3: date: expected a date as YYYY-MM-DD, got '11/02/2026'" in err
    assert f"{traffic}:4: sessions: required value is empty" in err
    assert _rows(url, TrafficDay) == []

    missing = tmp_path / "header.csv"
    missing.write_text("sku,day,units\nA-1,2026-11-01,1\n", encoding="utf-8")
    err = pricemon("import", "sales", str(missing), expect=1).stderr
    assert f"{missing}:1: header: missing column 'date'" in err
    assert f"{missing}:1: header: missing column 'revenue'" in err


def test_reimport_is_idempotent_and_a_changed_file_updates_in_place(tmp_path: Path, pricemon_cli) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    pricemon = pricemon_cli(None, url)
    _catalogue(tmp_path, pricemon)
    sales = tmp_path / "sales.csv"
    sales.write_text(
        "sku,date,units,revenue,price\nA-1,2026-11-01,3,30.00,10.00\nA-1,2026-11-02,5,45.00,9.00\n"
        "B-2,2026-11-01,0,0,20.00\n",
        encoding="utf-8",
    )
    first = pricemon("import", "sales", str(sales), "--json").json()
    assert (first["inserted"], first["updated"]) == (3, 0)
    rows = _rows(url, SalesDay)
    second = pricemon("import", "sales", str(sales), "--json").json()
    assert (second["inserted"], second["updated"]) == (0, 3)
    assert _rows(url, SalesDay) == rows
    sales.write_text("sku,date,units,revenue,price\nA-1,2026-11-02,6,54.00,9.00\n", encoding="utf-8")
    third = pricemon("import", "sales", str(sales), "--json").json()
    assert (third["inserted"], third["updated"]) == (0, 1)
    after = _rows(url, SalesDay)
    assert len(after) == 3
    assert next(r for r in after if r[1] == date(2026, 11, 2))[2:] == (6, Decimal("54.0000"), Decimal("9.0000"))

    traffic = tmp_path / "traffic.csv"
    traffic.write_text("sku,date,sessions,clicks\nA-1,2026-11-01,100,7\nB-2,2026-11-01,40,\n", encoding="utf-8")
    assert pricemon("import", "traffic", str(traffic), "--json").json()["inserted"] == 2
    before = _rows(url, TrafficDay)
    assert pricemon("import", "traffic", str(traffic), "--json").json() == {
        "file": str(traffic),
        "inserted": 0,
        "updated": 2,
    }
    assert _rows(url, TrafficDay) == before
    assert [r[2:] for r in before] == [(100, 7), (40, None)]


def test_a_row_without_price_takes_pricemons_applied_price_of_that_day(database_url: str, tmp_path: Path) -> None:
    store = open_store(database_url, migrate=True)
    try:
        with store.session() as session:
            product = Product(sku="A-1", name="a", currency="EUR", price=Decimal("12.00"))
            other = Product(sku="B-2", name="b", currency="EUR", price=Decimal("30.00"))
            session.add_all([product, other])
            session.flush()
            for when, old, new in (
                (datetime(2026, 11, 2, 9, 0, tzinfo=UTC), "10.00", "11.00"),
                (datetime(2026, 11, 4, 23, 30, tzinfo=UTC), "11.00", "12.00"),
            ):
                session.add(
                    PriceChange(
                        product_id=product.id,
                        old_price=Decimal(old),
                        new_price=Decimal(new),
                        currency="EUR",
                        applied_by="test",
                        applied_at=when,
                    )
                )
        sales = tmp_path / "sales.csv"
        sales.write_text(
            "sku,date,units,revenue\n"
            "A-1,2026-11-01,1,10\nA-1,2026-11-02,1,11\nA-1,2026-11-03,1,11\nA-1,2026-11-04,1,12\n"
            "A-1,2026-11-05,1,12\nB-2,2026-11-01,2,60\n",
            encoding="utf-8",
        )
        with store.session() as session:
            summary = import_sales(session, sales)
        assert (summary.inserted, summary.prices_from_history) == (6, 6)
        with store.session() as session:
            prices = [
                str(p) for p in session.scalars(select(SalesDay.price).order_by(SalesDay.product_id, SalesDay.date))
            ]
        # before any change: the first change's old price; then the price in force at the end of the day;
        # a product pricemon never repriced: its catalogue price
        assert prices == ["10.0000", "11.0000", "11.0000", "12.0000", "12.0000", "30.0000"]
        with pytest.raises(ImportDataError):
            bad = tmp_path / "bad.csv"
            bad.write_text("sku,date,sessions\nA-1,2026-11-01,x\n", encoding="utf-8")
            with store.session() as session:
                import_traffic(session, bad)
        with store.session() as session:
            assert session.scalar(select(func.count()).select_from(TrafficDay)) == 0
    finally:
        store.dispose()
