"""`position`: place our price at a rank among competitors, or at a percentile such as the median."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from monitor.pricing import NoChange, Option, PricingContext, Result, Suggestion, format_price

CENTS = Decimal("0.01")


def percentile(prices: list[Decimal], share: Decimal) -> Decimal:
    """Linear interpolation between closest ranks (the same as numpy's default); 50 = median."""
    ordered = sorted(prices)
    position = (Decimal(len(ordered) - 1) * share / 100)
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    fraction = position - below
    return ordered[below] + (ordered[above] - ordered[below]) * fraction


class Position:
    name = "position"
    description = (
        "Price at the `rank`-th cheapest competitor price (when rank > 0), else at the `percentile` "
        "of competitor prices (50 = the market median)."
    )
    options: Mapping[str, Option] = {
        "rank": Option(int, 0, "Target rank among competitor prices, 1 = the cheapest; 0 uses percentile."),
        "percentile": Option(Decimal, Decimal("50"), "Percentile of competitor prices, 0-100 (50 = median)."),
    }

    def suggest(self, context: PricingContext, options: Mapping[str, Any]) -> Result:
        prices = sorted(o.price for o in context.offers)
        if not prices:
            return NoChange("no competitor offer counts")
        rank: int = options["rank"]
        if rank > 0:
            index = min(rank, len(prices)) - 1
            return Suggestion(prices[index], f"rank {index + 1} of {len(prices)}: {format_price(prices[index])}")
        share: Decimal = options["percentile"]
        if not 0 <= share <= 100:
            return NoChange(f"percentile {share} is outside 0-100")
        price = percentile(prices, share).quantize(CENTS, rounding=ROUND_HALF_UP)
        label = "median" if share == 50 else f"percentile {share.normalize():f}"
        return Suggestion(price, f"{label} of {len(prices)} offer(s): {format_price(price)}")
