"""The backtest's demand simulator: expected units, revenue and profit of a price path over a period.

Prices and the market median are step functions of time (each value holds from its moment until
the next); the fitted model gives the expected units per day of each stretch, weighted by how
long the stretch lasted. Pure computation over `DemandEstimate` values.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from monitor.demand.estimate import DemandEstimate
from monitor.demand.profit import expect

SECONDS_PER_DAY = 86_400

Steps = Sequence[tuple[datetime, Decimal | None]]  # (from when, value), oldest first


@dataclass
class Totals:
    """Expected sales over a period; `profit` is None when the cost is unknown."""

    units: float = 0.0
    revenue: Decimal = Decimal(0)
    profit: Decimal | None = Decimal(0)

    def add(self, other: Totals) -> None:
        self.units += other.units
        self.revenue += other.revenue
        if other.profit is not None:  # a total's profit covers the stretches whose cost is known
            self.profit = other.profit if self.profit is None else self.profit + other.profit


def _value_at(steps: Steps, when: datetime) -> Decimal | None:
    value: Decimal | None = None
    for start, step_value in steps:
        if start > when:
            break
        value = step_value
    return value


def simulate(
    demand: DemandEstimate,
    cost: Decimal | None,
    since: datetime,
    until: datetime,
    prices: Steps,
    market: Steps = (),
) -> Totals:
    """Expected totals from `since` to `until` for our price path `prices` against the market
    median path `market` (no median known: the model's market term is left out)."""
    if not demand.usable or until <= since:
        return Totals(profit=None if cost is None else Decimal(0))
    moments = [t for t, _ in (*prices, *market) if since < t < until]
    cuts = sorted({since, until, *moments})
    totals = Totals(profit=None if cost is None else Decimal(0))
    for begin, end in itertools.pairwise(cuts):
        price = _value_at(prices, begin)
        if price is None or price <= 0:
            continue
        days = (end - begin).total_seconds() / SECONDS_PER_DAY
        rate = expect(demand, price, cost, _value_at(market, begin))
        share = Decimal(repr(days))
        totals.add(
            Totals(rate.units * days, rate.revenue * share, rate.profit * share if rate.profit is not None else None)
        )
    return totals
