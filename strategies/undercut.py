"""`undercut`: go below the lowest competitor price by an amount or a percentage."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from monitor.pricing import NoChange, Option, PricingContext, Result, Suggestion, describe_offers, format_price, lowest

CENTS = Decimal("0.01")


class Undercut:
    name = "undercut"
    description = "Undercut the lowest competitor price by `percent` (when set) or else by `amount`."
    options: Mapping[str, Option] = {
        "amount": Option(Decimal, Decimal("0.01"), "Amount to go below the lowest price."),
        "percent": Option(Decimal, Decimal("0"), "Percentage to go below the lowest price (wins over amount)."),
    }

    def suggest(self, context: PricingContext, options: Mapping[str, Any]) -> Result:
        found = lowest(context.offers)
        if found is None:
            return NoChange("no competitor offer counts")
        low, tied = found
        percent: Decimal = options["percent"]
        if percent > 0:
            price = (low * (1 - percent / 100)).quantize(CENTS, rounding=ROUND_HALF_UP)
            step = f"undercut {percent.normalize():f}%"
        else:
            price = low - options["amount"]
            step = f"undercut {format_price(options['amount'])}"
        if price <= 0:
            return NoChange(f"lowest: {describe_offers(tied)}; {step} leaves nothing")
        return Suggestion(price, f"lowest: {describe_offers(tied)}; {step} -> {format_price(price)}")
