"""Demand models in the workflow: expected profit stored with suggestions and shown by `pricemon
suggestions` and the report; the backtest's demand simulator, one strategy and several side by side."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from monitor.demand.estimate import DemandEstimate
from monitor.pricing.workflow import backtest, compare_strategies, compute_suggestions
from monitor.settings import load_settings
from tests.pricing.conftest import Market


def model(sku: str, elasticity: float = -2.5, *, status: str = "ok", base: float = 10.0) -> DemandEstimate:
    return DemandEstimate(sku=sku, status=status, elasticity=elasticity, ci_low=elasticity - 0.3,  # type: ignore[arg-type]
                          ci_high=elasticity + 0.3, cross_elasticity=None, conversion_rate=None, observations=180,
                          base_units=base, ref_price=Decimal("30"), ref_index=1.0,
                          fitted_at=datetime(2026, 1, 1, tzinfo=UTC))


def settings_of(market: Market):
    return load_settings(market.config_path, database_url=market.database_url, environ={})


@pytest.fixture
def shop(sqlite_market: Market) -> Market:
    sqlite_market.products("sku,name,price,currency,cost\nA-1,Kettle,30.00,EUR,20.00\nB-2,Drill,50.00,EUR,30.00\n")
    sqlite_market.listings([("A-1", "acme"), ("B-2", "acme")])
    return sqlite_market


def test_suggestions_and_the_report_show_expected_profit_per_suggestion_and_in_total(shop: Market, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    shop.reconfigure('[pricing.default]\nstrategies = ["maximize_profit", "match_lowest"]\nrounding = "none"\n')
    shop.observe({("A-1", "acme"): "31.00", ("B-2", "acme"): "45.00"})
    summary = compute_suggestions(settings_of(shop), shop.store, demand={"A-1": model("A-1")})
    assert summary.suggested == 2
    rows = {r["sku"]: r for r in shop.pricemon("suggestions", "--json").json()}
    # maximize_profit at the optimum 20 * 2.5 / 1.5 = 33.33, expected +2.46/day
    a1 = rows["A-1"]
    assert (a1["strategy"], a1["suggested_price"]) == ("maximize_profit", "33.33")
    units_after = 10 * (33.33 / 30) ** -2.5
    gain = Decimal(str(round((33.33 - 20) * units_after - 100, 2)))
    assert Decimal(a1["expected_profit_change"]) == gain
    assert a1["expected"]["units_before"] == 10.0 and a1["expected"]["profit_before"] == "100.00"
    # B-2: no demand model, so no expected profit: only the price difference says anything
    assert (rows["B-2"]["strategy"], rows["B-2"]["expected_profit_change"]) == ("match_lowest", None)

    table = shop.pricemon("suggestions").stdout
    assert f"expected profit +{gain} EUR/day in total (1 with a demand model)" in " ".join(table.split())

    report = shop.pricemon("report", "--json").json()
    assert report["summary"]["expected_profit_change_total"] == {"EUR": str(gain)}
    assert report["summary"]["with_demand_model"] == 1
    # by impact: the expected profit first, although B-2's price moves further
    assert [s["sku"] for s in report["suggestions"]] == ["A-1", "B-2"]
    assert report["suggestions"][0]["expected_profit_change"] == str(gain)


def history(market: Market) -> datetime:
    """acme at 31.00 / 45.00 since ten days ago (before a 7-day backtest starts), one change 3 days ago."""
    now = datetime.now(UTC)
    market.observe({("A-1", "acme"): "31.00", ("B-2", "acme"): "45.00"}, at=now - timedelta(days=10))
    market.observe({("A-1", "acme"): "31.00", ("B-2", "acme"): "45.00"}, at=now - timedelta(days=6))  # seen again
    market.observe({("A-1", "acme"): "29.00"}, at=now - timedelta(days=3))
    return now


def test_the_backtest_simulates_expected_units_revenue_and_profit(shop: Market) -> None:
    now = history(shop)
    shop.reconfigure('[pricing.default]\nrounding = "none"\n')
    result = backtest(settings_of(shop), shop.store, "maximize_profit", days=7, now=now,
                      demand={"A-1": model("A-1"), "B-2": model("B-2", status="thin_data")})
    items = {r["sku"]: r for r in result["results"]}
    # The prices charged: 30.00 the whole week, 10 units a day: 70 units, 2,100.00, profit 700.00.
    assert items["A-1"]["demand"]["charged"] == {"units": 70.0, "revenue": "2100.00", "profit": "700.00"}
    # maximize_profit moves to 33.33 at the start and stays (the competitor does not enter the model).
    assert [e["our_price"] for e in items["A-1"]["events"]] == ["33.33", "33.33"]
    units = 10 * (33.33 / 30) ** -2.5 * 7
    assert items["A-1"]["demand"]["strategy"]["units"] == pytest.approx(units, abs=0.01)
    assert float(items["A-1"]["demand"]["strategy"]["profit"]) == pytest.approx(13.33 * units, abs=0.02)
    assert Decimal(items["A-1"]["demand"]["profit_difference"]) > 0
    # B-2's model is thin: the replay still runs (NoChange), the simulator says why it has nothing.
    assert items["B-2"]["demand"] is None and "status thin_data" in items["B-2"]["demand_note"]
    assert "status thin_data" in items["B-2"]["events"][0]["reason"]
    assert result["expected"]["products"] == 1


def test_the_backtest_compares_strategies_side_by_side(shop: Market) -> None:
    now = history(shop)
    shop.reconfigure('[pricing.default]\nrounding = "none"\n')
    demand = {"A-1": model("A-1")}
    result = compare_strategies(settings_of(shop), shop.store, ["maximize_profit", "match_lowest"], days=7, now=now,
                                demand=demand)
    rows = {r["strategy"]: r for r in result["comparison"]}
    assert set(rows) == {"maximize_profit", "match_lowest"}
    assert result["charged"] == {"units": 70.0, "revenue": "2100.00", "profit": "700.00"}
    # match_lowest follows acme down to 31.00 then 29.00: more units, less profit than the optimum
    assert rows["match_lowest"]["expected"]["units"] > rows["maximize_profit"]["expected"]["units"]
    assert Decimal(rows["maximize_profit"]["expected"]["profit"]) > Decimal(rows["match_lowest"]["expected"]["profit"])
    assert Decimal(rows["maximize_profit"]["profit_difference"]) > 0
    # each strategy's full replay is there too, and each matches its own single run
    single = backtest(settings_of(shop), shop.store, "match_lowest", days=7, now=now, demand=demand)
    assert result["strategies"][1]["expected"] == single["expected"]


def test_backtest_command_takes_several_strategies_and_keeps_the_single_one(shop: Market, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: every cell on one line
    history(shop)
    shown = shop.pricemon("backtest", "--strategy", "maximize_profit", "--strategy", "match_lowest", "--days", "7")
    assert "2 strategies over 7 day(s)" in shown.stdout
    assert "maximize_profit" in shown.stdout and "match_lowest" in shown.stdout
    both = shop.pricemon("backtest", "--strategy", "undercut", "--strategy", "match_lowest", "--json").json()
    assert [r["strategy"] for r in both["comparison"]] == ["undercut", "match_lowest"]
    one = shop.pricemon("backtest", "--strategy", "match_lowest", "--days", "7", "--json").json()
    assert one["strategy"] == "match_lowest" and one["suggestions"] >= 1 and "results" in one
    assert "unknown strategy 'nope'" in shop.pricemon("backtest", "--strategy", "match_lowest", "--strategy", "nope",
                                                       expect=1).stderr


def test_stored_demand_models_reach_suggest_and_backtest_through_the_cli(shop: Market, monkeypatch) -> None:
    from monitor.demand.store import save_estimates

    monkeypatch.setenv("COLUMNS", "200")
    save_estimates(shop.store, [model("A-1"), model("B-2", status="thin_data")])
    history(shop)
    shop.reconfigure('[pricing.default]\nstrategies = ["maximize_profit"]\nrounding = "none"\n')
    summary = shop.pricemon("suggest", "--json").json()
    assert (summary["suggested"], summary["no_change"]) == (1, 1)
    [a1] = shop.pricemon("suggestions", "--json").json()
    assert (a1["sku"], a1["suggested_price"]) == ("A-1", "33.33") and Decimal(a1["expected_profit_change"]) > 0
    assert summary["with_demand_model"] == 1
    assert summary["expected_profit_change"] == {"EUR": a1["expected_profit_change"]}
    again = shop.pricemon("suggest").stdout  # the table form says the same
    assert f"expected profit +{a1['expected_profit_change']} EUR/day from 1 with a demand model" in again
    compared = shop.pricemon("backtest", "--strategy", "maximize_profit", "--strategy", "match_lowest",
                             "--days", "7", "--json").json()
    assert compared["charged"]["units"] == pytest.approx(70.0, abs=0.05)  # the replay's clock is a moment later
    assert [r["strategy"] for r in compared["comparison"]] == ["maximize_profit", "match_lowest"]
    assert all(r["expected"] is not None for r in compared["comparison"])
    shown = shop.pricemon("backtest", "--strategy", "maximize_profit", "--days", "7").stdout
    assert "1 product(s) with a demand model" in shown
    assert "maximize_profit vs the prices charged: expected profit +" in shown


def test_from_imported_sales_through_the_fit_to_a_profit_seeking_price(shop: Market, tmp_path) -> None:
    """The whole path with the real fit: sales at known elasticity -2.5 -> `pricemon import sales` ->
    `pricemon demand fit` -> `pricemon suggest` with maximize_profit at the fitted model's optimum."""
    import numpy as np

    rng = np.random.default_rng(18)
    days = [datetime(2026, 1, 1, tzinfo=UTC).date() + timedelta(days=i) for i in range(150)]
    prices = np.round(rng.uniform(24, 36, len(days)), 2)
    units = rng.poisson(40 * (prices / 30) ** -2.5)
    sales = tmp_path / "sales.csv"
    sales.write_text("sku,date,units,revenue,price\n" + "".join(
        f"A-1,{d.isoformat()},{u},{u * p:.2f},{p:.2f}\n" for d, p, u in zip(days, prices, units, strict=True)))
    shop.pricemon("import", "sales", str(sales))
    shop.pricemon("demand", "fit")
    [fitted] = shop.pricemon("demand", "show", "--sku", "A-1", "--json").json()
    assert fitted["status"] == "ok" and abs(fitted["elasticity"] - -2.5) <= 0.3, fitted
    total = fitted["elasticity"] + (fitted["cross_elasticity"] or 0)

    shop.reconfigure('[pricing.default]\nstrategies = ["maximize_profit"]\nrounding = "none"\n')
    shop.observe({("A-1", "acme"): "31.00", ("B-2", "acme"): "45.00"})
    shop.pricemon("suggest")
    [a1] = shop.pricemon("suggestions", "--sku", "A-1", "--json").json()
    optimum = 20 * total / (1 + total)
    assert abs(float(a1["suggested_price"]) - optimum) / optimum <= 0.02, (a1, optimum)
    assert f"elasticity {fitted['elasticity']:.2f}" in a1["reason"] and a1["expected_profit_change"] is not None
