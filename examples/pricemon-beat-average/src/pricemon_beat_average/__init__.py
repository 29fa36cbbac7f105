"""`beat_average`: price `percent` below the average of the competitor offers that count."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from monitor.pricing import NoChange, Option, PricingContext, Result, Suggestion, format_price

CENTS = Decimal("0.01")


class BeatAverage:
    name = "beat_average"
    description = "Price `percent` below the average competitor price (needs `min_offers` offers)."
    options: Mapping[str, Option] = {
        "percent": Option(Decimal, Decimal("1"), "How far below the average, in percent."),
        "min_offers": Option(int, 2, "Fewest offers for an average worth following."),
    }

    def suggest(self, context: PricingContext, options: Mapping[str, Any]) -> Result:
        prices = [offer.price for offer in context.offers]
        if len(prices) < options["min_offers"]:
            return NoChange(f"only {len(prices)} offer(s), need {options['min_offers']}")
        average = sum(prices, Decimal(0)) / len(prices)
        price = (average * (1 - options["percent"] / 100)).quantize(CENTS, rounding=ROUND_HALF_UP)
        return Suggestion(
            price, f"average of {len(prices)}: {format_price(average.quantize(CENTS))}; "
            f"{options['percent'].normalize():f}% below -> {format_price(price)}"
        )
