"""One product's fitted demand model, as strategies and reports see it.

The model is constant-elasticity (log-log):

    log(units per day) = log(base_units) + elasticity * log(price / ref_price)
                         + cross_elasticity * log(index / ref_index)

where `index` is our price over the competitors' median price that day. `ref_price` and
`ref_index` are the centres the fit used (the product's mean log price and index), so
`base_units` is the expected daily demand at the typical price. With the market fixed, a
price change moves both regressors: the total price elasticity is `elasticity +
cross_elasticity` (the index moves with our price).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

Status = Literal["ok", "thin_data", "no_price_variation", "no_data"]
STATUSES: tuple[Status, ...] = ("ok", "thin_data", "no_price_variation", "no_data")


@dataclass(frozen=True)
class DemandEstimate:
    """A product's demand model; only `status == "ok"` estimates should drive prices."""

    sku: str
    status: Status
    elasticity: float | None
    ci_low: float | None
    ci_high: float | None
    cross_elasticity: float | None
    conversion_rate: float | None
    observations: int
    base_units: float | None
    ref_price: Decimal | None
    ref_index: float | None
    fitted_at: datetime | None
    method: str = ""  # e.g. "loglog", "poisson", "pooled:tag=…"
    #: how the conversion rate (units / sessions) moves with the price index: d log(conv) / d log(index)
    conversion_elasticity: float | None = None

    @property
    def usable(self) -> bool:
        return (
            self.status == "ok"
            and self.elasticity is not None
            and self.base_units is not None
            and self.ref_price is not None
            and self.ref_price > 0
        )

    def expected_units(self, price: Decimal, market_median: Decimal | None = None) -> float:
        """Expected units per day at `price`, given the competitors' median (None: market term left out)."""
        if not self.usable or price <= 0:
            raise ValueError(f"{self.sku}: no usable demand model (status {self.status})")
        assert self.elasticity is not None and self.base_units is not None and self.ref_price is not None
        log_units = math.log(self.base_units) + self.elasticity * math.log(float(price / self.ref_price))
        if self.cross_elasticity and market_median is not None and market_median > 0 and self.ref_index:
            index = float(price / market_median)
            log_units += self.cross_elasticity * math.log(index / self.ref_index)
        return math.exp(log_units)
