"""`raise_to_market`: when we are the cheapest by a wide margin, move up just below the next price."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from monitor.pricing import NoChange, Option, PricingContext, Result, Suggestion, describe_offers, format_price, lowest


class RaiseToMarket:
    name = "raise_to_market"
    description = (
        "When our price is below the lowest competitor by more than `gap_percent`, raise it to "
        "that competitor's price minus `below`."
    )
    options: Mapping[str, Option] = {
        "gap_percent": Option(Decimal, Decimal("5"), "How far below the market (in %) we must be to move up."),
        "below": Option(Decimal, Decimal("0.01"), "Stay this amount under the next competitor price."),
    }

    def suggest(self, context: PricingContext, options: Mapping[str, Any]) -> Result:
        found = lowest(context.offers)
        if found is None:
            return NoChange("no competitor offer counts")
        low, tied = found
        ours = context.product.price
        gap = (low - ours) / low * 100 if low > 0 else Decimal(0)
        if gap <= options["gap_percent"]:
            return NoChange(f"we are not more than {options['gap_percent']}% below {describe_offers(tied)}")
        price = low - options["below"]
        return Suggestion(price, f"{gap:.1f}% below lowest {describe_offers(tied)}; raise to {format_price(price)}")
