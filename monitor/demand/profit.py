"""What a price is expected to sell and earn under a product's demand model (units and money per day).

Used by the engine (the expected impact stored with each suggestion), the backtest's demand
simulator and the reports. Pure computation over `DemandEstimate` values: no session here.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from monitor.demand.estimate import DemandEstimate
from monitor.money import format_amount

CENTS = Decimal("0.01")


@dataclass(frozen=True)
class Expectation:
    """Expected sales at one price, per day."""

    price: Decimal
    units: float
    revenue: Decimal
    profit: Decimal | None  # None when the cost is unknown


def expect(demand: DemandEstimate, price: Decimal, cost: Decimal | None, median: Decimal | None) -> Expectation:
    """Expected units, revenue and profit per day at `price` (ValueError: the model is not usable)."""
    units = demand.expected_units(price, median)
    units_d = Decimal(repr(units))
    revenue = price * units_d
    profit = (price - cost) * units_d if cost is not None else None
    return Expectation(price, units, revenue, profit)


def money(value: Decimal | None) -> str | None:
    """An expected amount as JSON keeps money: a string, to the cent."""
    return format_amount(value.quantize(CENTS, rounding=ROUND_HALF_UP)) if value is not None else None


def profit_impact(
    demand: DemandEstimate | None,
    old_price: Decimal,
    new_price: Decimal,
    cost: Decimal | None,
    median: Decimal | None,
) -> dict[str, Any] | None:
    """The expected effect of moving from `old_price` to `new_price`, per day, as stored in a
    suggestion's `details["expected"]`; None when there is no usable model or no cost."""
    if demand is None or not demand.usable or cost is None or old_price <= 0 or new_price <= 0:
        return None
    before = expect(demand, old_price, cost, median)
    after = expect(demand, new_price, cost, median)
    assert before.profit is not None and after.profit is not None
    return {
        "per": "day",
        "elasticity": round(demand.elasticity or 0.0, 3),
        "status": demand.status,
        "units_before": round(before.units, 3),
        "units_after": round(after.units, 3),
        "revenue_before": money(before.revenue),
        "revenue_after": money(after.revenue),
        "profit_before": money(before.profit),
        "profit_after": money(after.profit),
        "profit_change": money(after.profit - before.profit),
    }
