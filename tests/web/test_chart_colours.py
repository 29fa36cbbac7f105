"""A competitor keeps its colour in every chart, and unconfirmed prices are a series of their own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.report.build import align_chart
from monitor.report.charts import PALETTE, chart_payload, competitor_colour
from monitor.store.reporting import chart_data, product_ids_for_skus
from tests.pricing.conftest import Market


def test_colour_comes_from_the_name_not_the_position() -> None:
    assert competitor_colour("acme") == competitor_colour("acme")
    assert competitor_colour("acme") in PALETTE
    assert len({competitor_colour(f"shop-{i}") for i in range(40)}) > len(PALETTE) // 2


def test_same_competitor_same_colour_and_unconfirmed_marked(sqlite_market: Market) -> None:
    market = sqlite_market
    market.products("sku,name,price,currency\nA-1,a,50.00,EUR\nB-2,b,50.00,EUR\n")
    # acme is the only competitor of B-2 but the second of A-1: a positional palette would differ
    market.listings([("A-1", "globex"), ("A-1", "acme"), ("B-2", "acme")])
    start = datetime.now(UTC) - timedelta(hours=3)
    market.observe({("A-1", "globex"): "40.00", ("A-1", "acme"): "41.00", ("B-2", "acme"): "42.00"}, at=start)
    # a 90 % drop is held as suspicious (unconfirmed) until seen again
    market.observe({("B-2", "acme"): "4.20"}, at=start + timedelta(hours=1), suspicious_change=0.5)
    with market.store.session() as session:
        ids = product_ids_for_skus(session, ["A-1", "B-2"])
        charts = chart_data(session, [ids["A-1"], ids["B-2"]], start=start - timedelta(days=1), now=datetime.now(UTC))
    payloads = [chart_payload(align_chart(c)) for c in charts]
    colours = [{s["label"]: s["colour"] for s in p["series"]} for p in payloads]
    assert colours[0]["acme"] == colours[1]["acme"] == competitor_colour("acme")
    assert colours[0]["globex"] == competitor_colour("globex")
    kinds = {s["kind"] for s in payloads[1]["series"]}
    assert "unconfirmed" in kinds, kinds
    doubt = next(s for s in payloads[1]["series"] if s["kind"] == "unconfirmed")
    assert 4.2 in doubt["values"] and doubt["colour"] == competitor_colour("acme")
