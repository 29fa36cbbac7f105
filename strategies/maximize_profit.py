"""`maximize_profit`: the price with the highest expected profit under the product's fitted demand model."""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

from monitor.pricing import (
    DemandEstimate,
    NoChange,
    Option,
    PricingContext,
    Result,
    Suggestion,
    format_price,
    market_median,
)

CENTS = Decimal("0.01")
#: log-spaced points of the first pass over the interval; golden-section search refines the best one
GRID_POINTS = 241
GOLDEN = (math.sqrt(5) - 1) / 2


class MaximizeProfit:
    name = "maximize_profit"
    description = (
        "The price that maximises expected profit (price - cost) x expected units per day under the "
        "product's fitted demand model (`pricemon demand fit`), searched within the guardrails."
    )
    options: Mapping[str, Option] = {
        "search_percent": Option(
            Decimal, Decimal("50"),
            "Where the guardrails set no limit, search at most this many percent around our price.",
        ),
        "min_profit_change": Option(
            Decimal, Decimal("0.01"), "Smallest expected gain in profit per day worth a price change."
        ),
        "use_market": Option(
            bool, True, "Let the competitors' median move the expected units (the model's price-index term)."
        ),
    }

    def suggest(self, context: PricingContext, options: Mapping[str, Any]) -> Result:
        product = context.product
        demand = context.demand
        if demand is None:
            return NoChange("no demand model for this product (see `pricemon demand fit`)")
        if not demand.usable:
            return NoChange(f"demand model not usable: status {demand.status}, {demand.observations} "
                            f"observation(s){_elasticity(demand)}")
        if product.cost is None:
            return NoChange(f"cost unknown: expected profit cannot be computed{_elasticity(demand)}")
        median = market_median(context.offers) if options["use_market"] else None
        low, high = context.allowed_range()
        share = options["search_percent"] / 100
        low = max(low if low is not None else product.price * (1 - share), product.cost + CENTS, CENTS)
        high = high if high is not None else product.price * (1 + share)
        if low > high:
            return NoChange(f"the guardrails leave no price above cost ({format_price(low)} > {format_price(high)})")

        def profit(price: float) -> float:
            decimal_price = Decimal(repr(price))
            return (price - float(product.cost)) * demand.expected_units(decimal_price, median)  # type: ignore[arg-type]

        best = _maximise(profit, float(low), float(high))
        price = Decimal(repr(best)).quantize(CENTS, rounding=ROUND_HALF_UP)
        price = min(max(price, low.quantize(CENTS)), high.quantize(CENTS, rounding=ROUND_FLOOR))
        units_now = demand.expected_units(product.price, median)
        units_new = demand.expected_units(price, median)
        profit_now = (product.price - product.cost) * Decimal(repr(units_now))
        profit_new = (price - product.cost) * Decimal(repr(units_new))
        change = (profit_new - profit_now).quantize(CENTS, rounding=ROUND_HALF_UP)
        summary = (
            f"{_elasticity(demand).removeprefix('; ')}; expected {units_now:.2f} -> {units_new:.2f} units/day; "
            f"expected profit {_signed(change)}/day ({format_price(profit_now.quantize(CENTS))} -> "
            f"{format_price(profit_new.quantize(CENTS))})"
        )
        if price == product.price or change < options["min_profit_change"]:
            return NoChange(f"{format_price(product.price)} is at or near the expected-profit optimum "
                            f"{format_price(price)}: {summary}")
        return Suggestion(price, f"max expected profit in {format_price(low)}..{format_price(high)} at "
                                 f"{format_price(price)}: {summary}")


def _maximise(profit: Any, low: float, high: float) -> float:
    """The price in [low, high] with the highest `profit`: a log-spaced grid, then golden-section
    search between the best point's neighbours (exact for the unimodal curves of constant elasticity,
    and safe for any model a plugin's estimate might describe)."""
    if high <= low:
        return low
    step = (math.log(high) - math.log(low)) / (GRID_POINTS - 1)
    grid = [math.exp(math.log(low) + i * step) for i in range(GRID_POINTS)]
    grid[-1] = high
    values = [profit(p) for p in grid]
    best = max(range(GRID_POINTS), key=values.__getitem__)
    a, b = grid[max(best - 1, 0)], grid[min(best + 1, GRID_POINTS - 1)]
    c, d = b - GOLDEN * (b - a), a + GOLDEN * (b - a)
    fc, fd = profit(c), profit(d)
    for _ in range(60):
        if b - a < 1e-4:
            break
        if fc >= fd:
            b, d, fd = d, c, fc
            c = b - GOLDEN * (b - a)
            fc = profit(c)
        else:
            a, c, fc = c, d, fd
            d = a + GOLDEN * (b - a)
            fd = profit(d)
    candidate = (a + b) / 2
    return candidate if profit(candidate) >= values[best] else grid[best]


def _elasticity(demand: DemandEstimate) -> str:
    if demand.elasticity is None:
        return ""
    interval = ""
    if demand.ci_low is not None and demand.ci_high is not None:
        interval = f" (CI {demand.ci_low:.2f}..{demand.ci_high:.2f})"
    cross = f", price-index elasticity {demand.cross_elasticity:.2f}" if demand.cross_elasticity else ""
    return f"; elasticity {demand.elasticity:.2f}{interval}{cross}"


def _signed(amount: Decimal) -> str:
    return f"+{format_price(amount)}" if amount >= 0 else format_price(amount)
