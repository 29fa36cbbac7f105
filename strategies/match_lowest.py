"""`match_lowest`: take the lowest competitor price."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monitor.pricing import NoChange, Option, PricingContext, Result, Suggestion, describe_offers, lowest


class MatchLowest:
    name = "match_lowest"
    description = "Match the lowest price among the competitor offers that count."
    options: Mapping[str, Option] = {}

    def suggest(self, context: PricingContext, options: Mapping[str, Any]) -> Result:
        found = lowest(context.offers)
        if found is None:
            return NoChange("no competitor offer counts")
        price, tied = found
        return Suggestion(price, f"lowest: {describe_offers(tied)}")
