"""Saving and loading fitted demand models, on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from monitor.demand.estimate import DemandEstimate
from monitor.demand.store import load_estimates, save_estimates
from monitor.store.database import open_store
from monitor.store.models import Product


def _estimate(sku: str, elasticity: float, status: str = "ok") -> DemandEstimate:
    return DemandEstimate(
        sku=sku,
        status=status,  # type: ignore[arg-type]
        elasticity=elasticity,
        ci_low=elasticity - 0.2,
        ci_high=elasticity + 0.2,
        cross_elasticity=-0.3,
        conversion_rate=0.05,
        observations=180,
        base_units=12.5,
        ref_price=Decimal("19.9900"),
        ref_index=1.02,
        fitted_at=datetime(2026, 12, 1, 3, 0, tzinfo=UTC),
        method="loglog",
        conversion_elasticity=-0.7,
    )


def test_save_then_load_by_sku_and_id_and_upsert(database_url: str) -> None:
    store = open_store(database_url, migrate=True)
    try:
        with store.session() as session:
            for sku in ("A", "B", "C"):
                session.add(Product(sku=sku, name=sku, currency="EUR", price=Decimal("10")))
        assert save_estimates(store, [_estimate("A", -2.5), _estimate("B", -1.2)]) == 2
        loaded = load_estimates(store, ["A", "B", "C"])
        assert set(loaded) == {"A", "B"}
        assert loaded["A"] == _estimate("A", -2.5)
        with store.session() as session:
            ids = {p.sku: p.id for p in session.query(Product)}
        assert set(load_estimates(store, [ids["B"]])) == {"B"}
        # a second fit replaces the first, it does not add a row
        save_estimates(store, [_estimate("A", -0.4, status="thin_data")])
        everything = load_estimates(store)
        assert everything["A"].elasticity == pytest.approx(-0.4)
        assert everything["A"].status == "thin_data"
        assert len(everything) == 2
        with pytest.raises(ValueError, match="unknown SKU"):
            save_estimates(store, [_estimate("nope", -1.0)])
    finally:
        store.dispose()
