"""The demand fit: same numbers as statsmodels, the known elasticities back, pooling and statuses."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import statsmodels.api as sm

from bench.demand_data import DemandData, write_csvs, write_market_history
from monitor.demand.fit import DemandStats, estimates, fit_store, solve
from monitor.demand.store import load_estimates
from monitor.store.catalog import import_products
from monitor.store.database import open_store


def _stats(data: DemandData) -> DemandStats:
    stats = DemandStats(data.products)
    for chunk in data.chunks():
        stats.add(chunk.product, chunk.units, chunk.price, chunk.market_median, chunk.sessions)
    return stats


def _fit(data: DemandData, **options):
    return estimates(_stats(data), [t.sku for t in data.truth], [t.tag for t in data.truth], **options)


def test_the_closed_form_fit_equals_statsmodels_ols_per_product() -> None:
    data = DemandData(12, days=90, thin_share=0, constant_share=0, base_units=(1.0, 4.0), chunk_products=5)
    raw = solve(_stats(data))
    rows = list(data.chunks())
    product = np.concatenate([c.product for c in rows])
    units = np.concatenate([c.units for c in rows])
    price = np.concatenate([c.price for c in rows])
    median = np.concatenate([c.market_median for c in rows])
    assert (units == 0).sum() > 50, "the low base units must give zero days, which a log-log fit leaves out"
    for i in range(data.products):
        mine = (product == i) & (units > 0)  # zero days are left out of a log-log fit
        x = np.column_stack([np.log(price[mine]), np.log(price[mine] / median[mine])])
        model = sm.OLS(np.log(units[mine]), sm.add_constant(x)).fit()
        assert raw.observations[i] == mine.sum()
        assert raw.elasticity[i] == pytest.approx(model.params[1], rel=1e-7, abs=1e-9)
        assert raw.cross[i] == pytest.approx(model.params[2], rel=1e-7, abs=1e-9)
        assert raw.stderr[i] == pytest.approx(model.bse[1], rel=1e-6)
        assert raw.cross_stderr[i] == pytest.approx(model.bse[2], rel=1e-6)
        assert raw.df[i] == model.df_resid
        assert raw.sigma2[i] == pytest.approx(model.scale, rel=1e-6)


def test_known_elasticities_come_back_within_0_3_and_intervals_cover_them() -> None:
    data = DemandData(600, days=180)
    fitted = _fit(data)
    statuses = Counter(e.status for e in fitted)
    assert statuses["ok"] > 500
    covered = 0
    crosses, conversions = [], []
    for estimate, truth in zip(fitted, data.truth, strict=True):
        if truth.thin or truth.constant_price:
            assert estimate.status != "ok", estimate
            continue
        assert estimate.status == "ok", estimate
        assert estimate.observations >= 170
        assert abs(estimate.elasticity - truth.elasticity) < 0.3, (estimate, truth)
        crosses.append(estimate.cross_elasticity)
        conversions.append(estimate.conversion_elasticity)
        assert estimate.ci_low < estimate.elasticity < estimate.ci_high
        covered += estimate.ci_low <= truth.elasticity <= estimate.ci_high
        assert estimate.usable and estimate.base_units > 0 and estimate.ref_price > 0
        assert 0.02 < estimate.conversion_rate < 0.08
    assert covered / statuses["ok"] > 0.9  # 95 % intervals
    # the index's effect is measured less sharply per product (it moves less than our price); on average:
    assert np.mean(crosses) == pytest.approx(data.cross_elasticity, abs=0.05)
    assert np.mean(conversions) == pytest.approx(-0.8, abs=0.1)


def test_thin_data_is_shrunk_towards_its_tag_and_marked_thin() -> None:
    data = DemandData(600, days=180, thin_share=0.1, thin_days=8, noise=0.3)
    stats = _stats(data)
    raw = solve(stats)
    fitted = estimates(stats, [t.sku for t in data.truth], [t.tag for t in data.truth])
    thin = [(i, e, t) for i, (e, t) in enumerate(zip(fitted, data.truth, strict=True)) if t.thin]
    assert len(thin) > 30
    moved = 0
    for i, estimate, truth in thin:
        assert estimate.status == "thin_data", estimate
        assert not estimate.usable
        assert estimate.method == f"pooled:tag={truth.tag}"
        assert estimate.ci_low < estimate.elasticity < estimate.ci_high
        group = dict(data.groups)[truth.tag]
        if np.isfinite(raw.elasticity[i]):
            # pulled from its own noisy value towards the tag's elasticity
            assert abs(estimate.elasticity - group) <= abs(raw.elasticity[i] - group) + 1e-9
            moved += abs(estimate.elasticity - raw.elasticity[i]) > 0.01
        assert abs(estimate.elasticity - group) < 0.5
    assert moved > len(thin) / 2


def test_untagged_thin_products_borrow_from_the_whole_catalogue() -> None:
    data = DemandData(300, days=180, thin_share=0.1)
    stats = _stats(data)
    raw = solve(stats)
    fitted = estimates(stats, [t.sku for t in data.truth], [""] * data.products)
    catalogue = np.mean([raw.elasticity[i] for i, e in enumerate(fitted) if e.status == "ok"])
    thin = [(i, e) for i, (e, t) in enumerate(zip(fitted, data.truth, strict=True)) if t.thin]
    assert len(thin) > 10
    for i, estimate in thin:
        assert estimate.status == "thin_data" and estimate.method == "pooled:catalogue"
        if np.isfinite(raw.elasticity[i]):  # between its own value and the catalogue's
            low, high = sorted((raw.elasticity[i], catalogue))
            assert low - 1e-6 <= estimate.elasticity <= high + 1e-6
        else:
            assert estimate.elasticity == pytest.approx(catalogue, abs=0.05)


def test_constant_price_is_no_price_variation_and_no_sales_is_no_data() -> None:
    data = DemandData(200, days=180, thin_share=0, constant_share=0.1)
    stats = _stats(data)
    extra = DemandStats(data.products + 2)  # two products with no rows at all / only zero days
    for name, values in stats.sums.items():
        extra.sums[name][: data.products] = values
    extra.add(np.array([data.products + 1] * 5), np.zeros(5), np.full(5, 10.0))
    skus = [t.sku for t in data.truth] + ["NONE", "ZEROS"]
    fitted = estimates(extra, skus, [t.tag for t in data.truth] + ["", ""])
    for estimate, truth in zip(fitted, data.truth, strict=False):
        if truth.constant_price:
            assert estimate.status == "no_price_variation", estimate
            assert estimate.elasticity is None and not estimate.usable
            assert estimate.observations == 180
    assert sum(t.constant_price for t in data.truth) > 5
    assert [(e.status, e.observations, e.elasticity) for e in fitted[-2:]] == [
        ("no_data", 0, None),
        ("no_data", 0, None),
    ]


def test_fit_from_the_database_with_the_market_index_from_history(database_url: str, tmp_path: Path) -> None:
    data = DemandData(60, days=180, thin_share=0.1, constant_share=0.05)
    products, sales, traffic = write_csvs(data, tmp_path / "csv")
    store = open_store(database_url, migrate=True)
    try:
        from monitor.demand.imports import import_sales, import_traffic

        with store.session() as session:
            import_products(session, products)
        with store.session() as session:
            write_market_history(session, data)
        with store.session() as session:
            import_sales(session, sales)
            import_traffic(session, traffic)
        summary = fit_store(store, min_observations=30, chunk=25)
        assert summary.products == 60
        stored = load_estimates(store)
        in_memory = {e.sku: e for e in _fit(data)}
        for truth in data.truth:
            got, want = stored[truth.sku], in_memory[truth.sku]
            assert got.status == want.status
            if want.elasticity is not None:
                # the same model from the tables as from the generator's arrays
                assert got.elasticity == pytest.approx(want.elasticity, abs=1e-6)
                assert got.cross_elasticity == pytest.approx(want.cross_elasticity, abs=1e-6)
            if got.status == "ok":
                assert abs(got.elasticity - truth.elasticity) < 0.3
        # refitting replaces the rows
        assert fit_store(store).products == 60
        assert len(load_estimates(store)) == 60
    finally:
        store.dispose()


def test_demand_commands_end_to_end(tmp_path: Path, pricemon_cli) -> None:
    data = DemandData(30, days=180, thin_share=0.1)
    products, sales, traffic = write_csvs(data, tmp_path)
    pricemon = pricemon_cli(None, f"sqlite:///{tmp_path / 'p.db'}")
    pricemon("import", "products", str(products))
    pricemon("import", "sales", str(sales))
    pricemon("import", "traffic", str(traffic))
    fitted = pricemon("demand", "fit", "--json").json()
    assert fitted["products"] == 30 and sum(fitted["statuses"].values()) == 30
    rows = pricemon("demand", "show", "--json").json()
    assert [r["sku"] for r in rows] == sorted(t.sku for t in data.truth)
    first = pricemon("demand", "show", "--sku", "D000000", "--json").json()
    assert set(first[0]) >= {
        "elasticity",
        "ci_low",
        "ci_high",
        "cross_elasticity",
        "conversion_rate",
        "observations",
        "status",
    }
    # without competitor history the index is unknown: price-only model, no cross elasticity
    assert first[0]["status"] == "ok" and first[0]["cross_elasticity"] is None
    table = pricemon("demand", "show").stdout
    assert "30 demand model(s)" in table and "D000000" in table
    missing = pricemon("demand", "show", "--sku", "NOPE", expect=1)
    assert "no demand model for SKU(s) NOPE" in missing.stderr


def test_a_fit_told_to_stop_saves_nothing(sqlite_url: str, tmp_path: Path) -> None:
    data = DemandData(10, days=40, thin_share=0, constant_share=0)
    products, sales, _traffic = write_csvs(data, tmp_path)
    store = open_store(sqlite_url)
    try:
        from monitor.demand.fit import FitStopped
        from monitor.demand.imports import import_sales

        with store.session() as session:
            import_products(session, products)
            import_sales(session, sales)
        asked: list[bool] = []
        with pytest.raises(FitStopped):
            fit_store(store, chunk=4, should_stop=lambda: bool(asked.append(True)) or len(asked) > 2)
        assert len(asked) == 3 and load_estimates(store) == {}
        assert fit_store(store, chunk=4, should_stop=lambda: False).products == 10
    finally:
        store.dispose()
