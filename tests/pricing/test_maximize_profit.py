"""`maximize_profit` and `context.demand` through the real engine (and its worker processes):
the analytic optimum of constant elasticity, the guardrails, and NoChange when the model cannot say."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.demand.estimate import DemandEstimate
from monitor.pricing import Product
from monitor.pricing.engine import Outcome, PricingEngine
from monitor.pricing.invariants import invariant_breaches
from monitor.pricing.loader import StrategyManager
from monitor.settings import Assignment, settings_from_mapping
from tests.pricing.conftest import NOW
from tests.pricing.test_guardrails_table import GUARDRAILS, MODES, bounds


def estimate(elasticity: float = -2.5, *, status: str = "ok", cross: float | None = None, base: float = 10.0,
             ref_price: str = "30", observations: int = 180) -> DemandEstimate:
    return DemandEstimate(
        sku="A-1", status=status, elasticity=elasticity if status != "no_data" else None,  # type: ignore[arg-type]
        ci_low=elasticity - 0.2, ci_high=elasticity + 0.2, cross_elasticity=cross, conversion_rate=0.03,
        observations=observations, base_units=base, ref_price=Decimal(ref_price), ref_index=1.0, fitted_at=NOW,
        method="loglog",
    )


def offer(competitor: str, price: str) -> tuple[Any, ...]:
    seen = NOW - timedelta(minutes=5)
    return (competitor, f"http://127.0.0.1:9/{competitor}", Decimal(price), "EUR", True, seen - timedelta(hours=1),
            seen, False)


def engine_for(pricing: dict[str, Any] | None = None, **top: Any) -> PricingEngine:
    config = {"default": {"strategies": ["maximize_profit"], "guardrails": [], **(pricing or {})}, **top}
    return PricingEngine(settings_from_mapping({"pricing": config}).pricing, StrategyManager())


def price(demand: DemandEstimate | None, *, our: str = "30.00", cost: str | None = "20.00",
          pricing: dict[str, Any] | None = None, offers: list[tuple[Any, ...]] | None = None,
          **product: Any) -> Outcome:
    view = Product(sku="A-1", name="Kettle", price=Decimal(our), currency="EUR",
                   cost=Decimal(cost) if cost else None, **product)
    return engine_for(pricing).price(1, view, offers or [offer("acme", "31.00")], NOW, lambda _s: (), demand=demand)


def optimum(cost: str, elasticity: float) -> Decimal:
    return Decimal(cost) * Decimal(elasticity) / (1 + Decimal(elasticity))


@pytest.mark.parametrize(("elasticity", "cost", "our"), [
    (-2.5, "20.00", "30.00"),   # p* = 33.33, a raise
    (-1.2, "10.00", "45.00"),   # p* = 60.00, far above: within the default 50% search
    (-4.0, "50.00", "80.00"),   # p* = 66.67, a cut
    (-1.5, "7.35", "19.99"),    # p* = 22.05
])
def test_lands_within_2_percent_of_the_analytic_optimum(elasticity: float, cost: str, our: str) -> None:
    out = price(estimate(elasticity), our=our, cost=cost, pricing={"rounding": "none"})
    assert out.kind == "suggested", out.reason
    target = optimum(cost, elasticity)
    assert abs(out.price - target) / target <= Decimal("0.02"), (out.price, target)
    # ... and with the default guardrails, .99 rounding included
    out = price(estimate(elasticity), our=our, cost=cost, pricing={"guardrails": list(GUARDRAILS)})
    assert out.kind == "suggested" and abs(out.price - target) / target <= Decimal("0.02"), (out.price, target)


def test_the_price_index_term_counts_in_the_total_elasticity() -> None:
    # Own -1.5 plus -1.0 through the price index: the market fixed, demand falls as (p)^-2.5.
    out = price(estimate(-1.5, cross=-1.0), pricing={"rounding": "none"})
    target = optimum("20.00", -2.5)
    assert abs(out.price - target) / target <= Decimal("0.02"), (out.price, target)
    # ... unless told to leave the market out
    out = price(estimate(-1.5, cross=-1.0), our="50.00",
                pricing={"rounding": "none", "options": {"maximize_profit": {"use_market": False}}})
    target = optimum("20.00", -1.5)
    assert abs(out.price - target) / target <= Decimal("0.02"), (out.price, target)


def test_the_reason_shows_elasticity_units_and_profit_change_and_details_store_it() -> None:
    out = price(estimate(-2.5), pricing={"rounding": "none"})
    assert "elasticity -2.50" in out.reason
    assert "units/day" in out.reason and "expected profit +" in out.reason
    expected = out.details["expected"]
    units_before = 10.0 * (30 / 30) ** -2.5
    assert expected["units_before"] == pytest.approx(units_before, rel=1e-3)
    assert expected["profit_before"] == "100.00"  # (30 - 20) * 10
    assert Decimal(expected["profit_change"]) > 0
    assert Decimal(expected["profit_after"]) - Decimal(expected["profit_before"]) == Decimal(expected["profit_change"])


def test_a_guardrail_in_the_way_stops_the_search_at_it() -> None:
    out = price(estimate(-2.5), pricing={"rounding": "none", "guardrails": ["min_max"]}, max_price=Decimal("32.00"))
    assert (out.kind, out.price) == ("suggested", Decimal("32.00"))
    out = price(estimate(-2.5), pricing={"rounding": "none", "guardrails": ["max_change"], "max_change": 5})
    assert (out.kind, out.price) == ("suggested", Decimal("31.50"))


@pytest.mark.parametrize(("demand", "cost", "words"), [
    (None, "20.00", "no demand model"),
    (estimate(-2.5, status="thin_data", observations=6), "20.00", "status thin_data, 6 observation(s)"),
    (estimate(-2.5, status="no_price_variation"), "20.00", "status no_price_variation"),
    (estimate(-2.5, status="no_data", observations=0), "20.00", "status no_data"),
    (estimate(-2.5), None, "cost unknown"),
])
def test_no_change_with_the_reason_when_the_model_cannot_say(demand, cost, words) -> None:
    out = price(demand, cost=cost)
    assert out.kind == "no_change" and out.price is None
    assert words in out.reason
    assert "expected" not in out.details


def test_no_change_at_the_optimum() -> None:
    out = price(estimate(-2.5), our="33.33", pricing={"rounding": "none"})
    assert out.kind == "no_change" and "optimum" in out.reason and "elasticity -2.50" in out.reason


def test_the_demand_model_reaches_strategies_in_worker_processes() -> None:
    engine = engine_for({"rounding": "none"}, workers=1)
    view = Product(sku="A-1", name="Kettle", price=Decimal("30.00"), currency="EUR", cost=Decimal("20.00"))
    items = [(1, view, [offer("acme", "31.00")], lambda _s: (), estimate(-2.5)),
             (2, view, [offer("acme", "31.00")], lambda _s: (), None),
             (3, view, [offer("acme", "31.00")], lambda _s: ())]  # the older 4-field shape still works
    with engine:
        first, second, third = engine.price_many(items, NOW)
    assert first.kind == "suggested" and "elasticity -2.50" in first.reason and "expected" in first.details
    assert second.kind == third.kind == "no_change" and "no demand model" in second.reason


# --- the guardrails still hold, whatever the model says ----------------------------------------------

money = st.decimals(min_value=Decimal("0.50"), max_value=Decimal("3000"), places=2, allow_nan=False,
                    allow_infinity=False)


@st.composite
def cases(draw: st.DrawFn) -> tuple[Product, Assignment, DemandEstimate]:
    current = draw(money)
    near = st.decimals(min_value=max(Decimal("0.01"), current / 2), max_value=current * 2, places=2)

    def maybe(values: st.SearchStrategy[Decimal]) -> Decimal | None:
        return draw(st.none() | values)

    item = Product(sku="A-1", name="P", price=current, currency="EUR", cost=draw(near),
                   map_price=maybe(near), min_price=maybe(near), max_price=maybe(near))
    order = draw(st.permutations(GUARDRAILS))
    assignment = Assignment(
        strategies=("maximize_profit",),
        guardrails=order[: draw(st.integers(min_value=0, max_value=len(order)))],
        min_margin=draw(st.sampled_from([0, 2.5, 35])),
        max_change=draw(st.none() | st.sampled_from([1, 5, 15, 50])),
        rounding=draw(st.sampled_from([m for m in MODES if m != "ladder"])),
    )
    model = estimate(draw(st.floats(min_value=-6, max_value=-0.1)), cross=draw(st.none() | st.floats(-2, 0)),
                     base=draw(st.floats(min_value=0.01, max_value=500)), ref_price=str(current))
    return item, assignment, model


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_the_guardrails_hold_on_every_profit_seeking_price(case) -> None:
    item, assignment, model = case
    engine = PricingEngine(settings_from_mapping({"pricing": {"default": assignment.model_dump()}}).pricing,
                           StrategyManager())
    out = engine.price(1, item, [offer("acme", str(item.price))], NOW, lambda _s: (), demand=model)
    assert out.kind in ("suggested", "unchanged", "no_change", "held"), out.error
    if out.kind != "suggested":
        return
    floors, ceilings = bounds(item, engine.assignment_for("A-1", ()).assignment)
    assert all(out.price >= f for f in floors) and all(out.price <= c for c in ceilings)
    strategy_price = Decimal(out.details["strategy_price"])
    assert invariant_breaches(out.price, strategy_price, item, engine.assignment_for("A-1", ()).assignment) == []
