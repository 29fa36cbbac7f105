"""POST /api/v1/sales and /traffic against a real `pricemon serve`: rows go through the same
checks and upsert as `pricemon import sales|traffic`; all-or-nothing, idempotent, 422 problems
naming each bad row's index and field."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import select, update

from monitor.store.models import Product, SalesDay, Suggestion, TrafficDay
from tests.web.served import Served

SALES = [
    {"sku": "A-1", "date": "2026-11-01", "units": 3, "revenue": "150.00", "price": "50.00"},
    {"sku": "A-1", "date": "2026-11-02", "units": "5", "revenue": 225.5},
    {"sku": "D-4", "date": "2026-11-01", "units": 0, "revenue": "0", "price": None},
]


def _sales(served: Served) -> list[tuple[str, date, int, Decimal, Decimal | None]]:
    with served.market.store.session() as session:
        rows = session.execute(
            select(Product.sku, SalesDay.date, SalesDay.units, SalesDay.revenue, SalesDay.price)
            .join(Product, Product.id == SalesDay.product_id)
            .order_by(Product.sku, SalesDay.date)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def test_sales_upsert_is_idempotent_and_matches_the_csv_import(served: Served) -> None:
    with served.client("admin") as admin:
        first = admin.post("/api/v1/sales", json={"rows": SALES})
        assert first.status_code == 200, first.text
        # two rows without a price took pricemon's applied price (the product's price: nothing applied yet)
        assert first.json() == {"inserted": 3, "updated": 0, "prices_from_history": 2}
        written = _sales(served)
        assert written == [
            ("A-1", date(2026, 11, 1), 3, Decimal("150.00"), Decimal("50.00")),
            ("A-1", date(2026, 11, 2), 5, Decimal("225.50"), Decimal("50.00")),
            ("D-4", date(2026, 11, 1), 0, Decimal("0"), Decimal("20.00")),
        ]
        again = admin.post("/api/v1/sales", json={"rows": SALES})
        assert again.json() == {"inserted": 0, "updated": 3, "prices_from_history": 2}
        assert _sales(served) == written
    # the CSV import of the same rows sees them as already there: one table, one upsert
    csv = served.market.tmp_path / "sales.csv"
    csv.write_text(
        "sku,date,units,revenue,price\nA-1,2026-11-01,3,150.00,50.00\nA-1,2026-11-02,5,225.50,\nD-4,2026-11-01,0,0,\n",
        encoding="utf-8",
    )
    summary = served.market.pricemon("import", "sales", str(csv), "--json").json()
    assert (summary["inserted"], summary["updated"]) == (0, 3)
    assert _sales(served) == written


def test_bad_rows_are_named_by_index_and_field_and_nothing_is_written(served: Served) -> None:
    bad = [
        {"sku": "A-1", "date": "2026-11-01", "units": 3, "revenue": "150.00"},
        {"sku": "A-1", "date": "2026-13-01", "units": -1, "revenue": "1.00"},
        {"sku": "NOPE", "date": "2026-11-01", "units": 1, "revenue": "x"},
        {"sku": "NOPE-2", "date": "2026-11-01", "units": 1, "revenue": "1.00"},
        {"sku": "A-1", "date": "2026-11-01", "units": 1, "revenue": "1.00"},
        {"sku": "B-2", "date": "2026-11-01", "units": "1.5", "revenue": "1.00", "price": "0"},
    ]
    with served.client("admin") as admin:
        answer = admin.post("/api/v1/sales", json={"rows": bad})
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        body = answer.json()
        assert body["type"] == "urn:pricemon:problem:validation"
        found = {(e["loc"][2], e["loc"][3]) for e in body["errors"]}
        assert all(e["loc"][:2] == ["body", "rows"] for e in body["errors"])
        assert found == {(1, "date"), (1, "units"), (2, "revenue"), (3, "sku"), (4, "date"), (5, "units"), (5, "price")}
        messages = {(e["loc"][2], e["loc"][3]): e["msg"] for e in body["errors"]}
        assert "YYYY-MM-DD" in messages[(1, "date")]
        assert "duplicate" in messages[(4, "date")] and "first on row 0" in messages[(4, "date")]
        assert "unknown SKU 'NOPE-2'" in messages[(3, "sku")]
        assert "rows[1].date" in body["detail"]
        assert _sales(served) == []  # row 0 was good, but nothing is written
        # a row missing a required field, or with one the CSV has not: refused before the checks
        missing = admin.post("/api/v1/sales", json={"rows": [{"sku": "A-1", "date": "2026-11-01", "units": 1}]})
        assert missing.status_code == 422
        assert missing.json()["errors"][0]["loc"] == ["body", "rows", 0, "revenue"]
        boolean = admin.post("/api/v1/sales", json={"rows": [{**SALES[0], "units": True}]})
        assert boolean.status_code == 422
        assert {tuple(e["loc"][:4]) for e in boolean.json()["errors"]} == {("body", "rows", 0, "units")}
        extra = admin.post(
            "/api/v1/traffic", json={"rows": [{"sku": "A-1", "date": "2026-11-01", "sessions": 1, "x": 1}]}
        )
        assert extra.status_code == 422
        assert extra.json()["errors"][0]["loc"] == ["body", "rows", 0, "x"]


def test_traffic_upsert_and_roles(served: Served) -> None:
    rows = [
        {"sku": "E-5", "date": "2026-11-03", "sessions": 120, "clicks": 9},
        {"sku": "E-5", "date": "2026-11-04", "sessions": "80"},
    ]
    with served.client("approver") as approver:
        refused = approver.post("/api/v1/traffic", json={"rows": rows})
        assert refused.status_code == 403
    with served.client("admin") as admin:
        answer = admin.post("/api/v1/traffic", json={"rows": rows})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"inserted": 2, "updated": 0, "prices_from_history": None}
        rows[1]["clicks"] = 4
        assert admin.post("/api/v1/traffic", json={"rows": rows}).json()["updated"] == 2
        bad = admin.post("/api/v1/traffic", json={"rows": [{"sku": "E-5", "date": "2026-11-05", "sessions": 2**31}]})
        assert bad.status_code == 422
        assert bad.json()["errors"] == [
            {"loc": ["body", "rows", 0, "sessions"], "msg": f"too large: {2**31}", "type": "value_error"}
        ]
    with served.market.store.session() as session:
        written = session.execute(
            select(TrafficDay.date, TrafficDay.sessions, TrafficDay.clicks).order_by(TrafficDay.date)
        ).all()
    assert [tuple(r) for r in written] == [(date(2026, 11, 3), 120, 9), (date(2026, 11, 4), 80, 4)]


def test_suggestions_and_review_page_show_expected_profit_and_its_filtered_total(served: Served) -> None:
    # the figures the pricing run stores under a demand model (tests/pricing covers how they are made)
    figures = {"A-1": Decimal("12.5000"), "B-2": Decimal("-2.2500"), "D-4": Decimal("4.0000")}
    with served.market.store.session() as session:
        ids = {sku: pid for sku, pid in session.execute(select(Product.sku, Product.id))}
        for sku, figure in figures.items():
            session.execute(
                update(Suggestion)
                .where(Suggestion.product_id == ids[sku], Suggestion.status == "pending")
                .values(expected_profit_change=figure)
            )
    with served.client("viewer") as viewer:
        page = viewer.get("/api/v1/suggestions", params={"limit": 2, "include_total": 1}).json()
        assert page["total"] >= 4 and len(page["items"]) == 2
        # the total is the whole filtered set's, not this page's
        assert page["expected_profit_total"] == {"EUR": "14.25"} and page["with_profit_figure"] == 3
        every = viewer.get("/api/v1/suggestions", params={"limit": 100}).json()["items"]
        shown = {s["sku"]: s["expected_profit_change"] for s in every}
        assert {k: shown[k] for k in figures} == {"A-1": "12.50", "B-2": "-2.25", "D-4": "4.00"}
        assert all(v is None for k, v in shown.items() if k not in figures)
        kitchen = viewer.get("/api/v1/suggestions", params={"tag": "kitchen", "include_total": 1}).json()
        assert kitchen["expected_profit_total"] == {"EUR": "10.25"} and kitchen["with_profit_figure"] == 2
        office = viewer.get("/api/v1/suggestions", params={"tag": "office", "include_total": 1}).json()
        assert office["expected_profit_total"] == {} and office["with_profit_figure"] == 0
        html = viewer.get("/", params={"tag": "kitchen"}, headers={"Accept": "text/html"}).text
    head, table = html.split('id="review-table"')
    total = head.split('id="profit-total"')[1].split("</span></span>")[0]
    assert "+10.25 EUR" in total and "2 of 2 with a demand model" in total
    assert "Exp. profit/day" in table
    a1 = next(r for r in table.split("<tr") if ">A-1</a>" in r)
    assert '<td class="num exp-profit">+12.50</td>' in a1
    b2 = next(r for r in table.split("<tr") if ">B-2</a>" in r)
    assert '<td class="num exp-profit">-2.25</td>' in b2
