"""Fitting the demand models: per product, a log-log regression of daily units on our price and
on the market's price index, pooled towards the product's tag where its data are thin.

For each product the model is (see `monitor.demand.estimate`)

    log(units) = a + elasticity * log(price) + cross_elasticity * log(price / competitors' median)

fitted by ordinary least squares on the days with units > 0. The fit is vectorised over all
products at once: rows are reduced to per-product sufficient statistics (n, sums, sums of
squares and cross products) with `numpy.bincount`, chunk by chunk, and the normal equations of
every product are solved together in closed form, giving the same coefficients and standard
errors as `statsmodels.OLS` per product (tests/demand checks that), at a fraction of its cost:
172,800 per-product statsmodels fits take minutes on their own.

Partial pooling (empirical Bayes): each product's estimate is combined with its group's prior
(the first tag, or the whole catalogue when the tag has too few well-measured products),
weighted by precision. Products with plenty of data barely move; thin ones borrow the group's
elasticity. Intervals are 95 %: Student-t from the product's own fit, normal for pooled values.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from monitor.demand.estimate import DemandEstimate, Status
from monitor.store.database import Store
from monitor.store.models import MONEY_PLACES, utcnow

logger = logging.getLogger(__name__)

#: below this spread of log price (about 0.1 % moves) a product's price counts as constant
MIN_LOG_PRICE_VARIANCE = 1e-6
#: the index enters the model only when it is not (almost) a copy of our own price: |corr| below this
MAX_REGRESSOR_CORRELATION = 0.98
#: a tag needs this many well-measured products to be its own pool; others use the whole catalogue
MIN_POOL_PRODUCTS = 5
#: floor of the between-products variance of the elasticity, so a pool is never taken as exact
MIN_PRIOR_VARIANCE = 0.01
Z95 = 1.959963984540054
CATALOGUE = "*"

# Per-product sums. a_*: days with units > 0 and a price (the price-only model); b_*: of those,
# days with the competitors' median too (the model with the index); c_*: days with units and
# sessions > 0 and the median (conversion against the index); conv_units/conv_sessions: days with
# sessions; days: every row.
_SUMS = (
    "days",
    "a_n", "a_y", "a_yy", "a_1", "a_11", "a_1y",
    "b_n", "b_y", "b_yy", "b_1", "b_2", "b_11", "b_12", "b_22", "b_1y", "b_2y",
    "c_n", "c_y", "c_yy", "c_2", "c_22", "c_2y",
    "conv_units", "conv_sessions",
)  # fmt: skip


class DemandStats:
    """Per-product sufficient statistics, accumulated from day rows a chunk at a time."""

    def __init__(self, products: int) -> None:
        self.products = products
        self.sums = {name: np.zeros(products) for name in _SUMS}

    def _add(self, name: str, index: np.ndarray, weights: np.ndarray | None = None) -> None:
        self.sums[name] += np.bincount(index, weights=weights, minlength=self.products)

    def add(
        self,
        product: np.ndarray,
        units: np.ndarray,
        price: np.ndarray,
        market_median: np.ndarray | None = None,
        sessions: np.ndarray | None = None,
    ) -> None:
        """Add day rows: `product` are indexes in [0, products); price/median/sessions may be NaN (unknown)."""
        product = np.asarray(product, dtype=np.intp)
        units = np.asarray(units, dtype=np.float64)
        price = np.asarray(price, dtype=np.float64)
        n = len(product)
        median = np.full(n, np.nan) if market_median is None else np.asarray(market_median, dtype=np.float64)
        visits = np.full(n, np.nan) if sessions is None else np.asarray(sessions, dtype=np.float64)
        self._add("days", product)
        with np.errstate(divide="ignore", invalid="ignore"):
            a = (units > 0) & (price > 0)
            y = np.log(units[a])
            x1 = np.log(price[a])
            pa = product[a]
            for name, w in (
                ("a_n", None),
                ("a_y", y),
                ("a_yy", y * y),
                ("a_1", x1),
                ("a_11", x1 * x1),
                ("a_1y", x1 * y),
            ):
                self._add(name, pa, w)
            has_median = median[a] > 0
            yb, x1b, pb = y[has_median], x1[has_median], pa[has_median]
            x2b = x1b - np.log(median[a][has_median])
            for name, w in (
                ("b_n", None), ("b_y", yb), ("b_yy", yb * yb), ("b_1", x1b), ("b_2", x2b), ("b_11", x1b * x1b),
                ("b_12", x1b * x2b), ("b_22", x2b * x2b), ("b_1y", x1b * yb), ("b_2y", x2b * yb),
            ):  # fmt: skip
                self._add(name, pb, w)
            seen = visits > 0
            self._add("conv_units", product[seen], units[seen])
            self._add("conv_sessions", product[seen], visits[seen])
            c = seen & (units > 0) & (price > 0) & (median > 0)
            yc = np.log(units[c] / visits[c])
            x2c = np.log(price[c] / median[c])
            pc = product[c]
            for name, w in (
                ("c_n", None),
                ("c_y", yc),
                ("c_yy", yc * yc),
                ("c_2", x2c),
                ("c_22", x2c * x2c),
                ("c_2y", x2c * yc),
            ):
                self._add(name, pc, w)


@dataclass(frozen=True)
class RawFit:
    """Each product's own least-squares fit, before pooling (arrays over products)."""

    observations: np.ndarray
    elasticity: np.ndarray
    stderr: np.ndarray
    df: np.ndarray
    cross: np.ndarray  # NaN where the index did not enter the model
    cross_stderr: np.ndarray
    mean_y: np.ndarray
    sigma2: np.ndarray
    mean_log_price: np.ndarray
    mean_log_index: np.ndarray  # NaN without the index
    price_varies: np.ndarray
    conversion_rate: np.ndarray
    conversion_elasticity: np.ndarray


def solve(stats: DemandStats) -> RawFit:
    """Every product's OLS fit from its sums, in closed form."""
    s = stats.sums
    with np.errstate(divide="ignore", invalid="ignore"):
        # price-only model
        na = s["a_n"]
        a11 = s["a_11"] - s["a_1"] ** 2 / na
        a1y = s["a_1y"] - s["a_1"] * s["a_y"] / na
        ayy = s["a_yy"] - s["a_y"] ** 2 / na
        a_beta = a1y / a11
        a_df = na - 2
        a_sigma2 = np.maximum(ayy - a_beta * a1y, 0) / a_df
        a_se = np.sqrt(a_sigma2 / a11)
        price_varies = (a11 / na) > MIN_LOG_PRICE_VARIANCE
        # model with the index
        nb = s["b_n"]
        b11 = s["b_11"] - s["b_1"] ** 2 / nb
        b22 = s["b_22"] - s["b_2"] ** 2 / nb
        b12 = s["b_12"] - s["b_1"] * s["b_2"] / nb
        b1y = s["b_1y"] - s["b_1"] * s["b_y"] / nb
        b2y = s["b_2y"] - s["b_2"] * s["b_y"] / nb
        byy = s["b_yy"] - s["b_y"] ** 2 / nb
        det = b11 * b22 - b12**2
        b_beta1 = (b22 * b1y - b12 * b2y) / det
        b_beta2 = (b11 * b2y - b12 * b1y) / det
        b_df = nb - 3
        b_sigma2 = np.maximum(byy - b_beta1 * b1y - b_beta2 * b2y, 0) / b_df
        b_se1 = np.sqrt(b_sigma2 * b22 / det)
        b_se2 = np.sqrt(b_sigma2 * b11 / det)
        correlation2 = b12**2 / (b11 * b22)
        use_b = (
            (b_df >= 1)
            & (b22 / nb > MIN_LOG_PRICE_VARIANCE)
            & (b11 / nb > MIN_LOG_PRICE_VARIANCE)
            & (correlation2 < MAX_REGRESSOR_CORRELATION**2)
            & (nb >= 0.8 * na)
        )
        # conversion against the index
        nc = s["c_n"]
        c22 = s["c_22"] - s["c_2"] ** 2 / nc
        c2y = s["c_2y"] - s["c_2"] * s["c_y"] / nc
        conversion_elasticity = np.where((nc >= 3) & (c22 / nc > MIN_LOG_PRICE_VARIANCE), c2y / c22, np.nan)
        conversion_rate = np.where(s["conv_sessions"] > 0, s["conv_units"] / s["conv_sessions"], np.nan)
        return RawFit(
            observations=np.where(use_b, nb, na).astype(np.int64),
            elasticity=np.where(use_b, b_beta1, a_beta),
            stderr=np.where(use_b, b_se1, a_se),
            df=np.where(use_b, b_df, a_df),
            cross=np.where(use_b, b_beta2, np.nan),
            cross_stderr=np.where(use_b, b_se2, np.nan),
            mean_y=np.where(use_b, s["b_y"] / nb, s["a_y"] / na),
            sigma2=np.where(use_b, b_sigma2, a_sigma2),
            mean_log_price=np.where(use_b, s["b_1"] / nb, s["a_1"] / na),
            mean_log_index=np.where(use_b, s["b_2"] / nb, np.nan),
            price_varies=price_varies,
            conversion_rate=conversion_rate,
            conversion_elasticity=conversion_elasticity,
        )


@dataclass(frozen=True)
class Pool:
    """A group's prior for the elasticity (and the mean cross elasticity)."""

    mean: float
    variance: float
    cross: float | None
    products: int


def pools(raw: RawFit, groups: Sequence[str], ok: np.ndarray) -> dict[str, Pool]:
    """The prior of each group (and of the whole catalogue, CATALOGUE) from its well-measured products."""
    frame = pd.DataFrame(
        {"group": np.asarray(groups, dtype=object), "e": raw.elasticity, "v": raw.stderr**2, "x": raw.cross}
    )[ok]
    found: dict[str, Pool] = {}

    def pool(part: pd.DataFrame) -> Pool:
        mean = float(part["e"].mean())
        spread = float(part["e"].var(ddof=1)) if len(part) > 1 else 0.0
        variance = max(spread - float(part["v"].mean()), MIN_PRIOR_VARIANCE)
        cross = part["x"].dropna()
        return Pool(mean, variance, float(cross.mean()) if len(cross) else None, len(part))

    if len(frame):
        found[CATALOGUE] = pool(frame)
        for name, part in frame.groupby("group", sort=False):
            if len(part) >= MIN_POOL_PRODUCTS:
                found[str(name)] = pool(part)
    return found


def estimates(
    stats: DemandStats,
    skus: Sequence[str],
    groups: Sequence[str],
    *,
    min_observations: int = 30,
    fitted_at: datetime | None = None,
) -> list[DemandEstimate]:
    """Fit every product of `stats` (index i is `skus[i]`, pooled in `groups[i]`, "" for none)."""
    started = time.perf_counter()
    raw = solve(stats)
    fitted_at = fitted_at or utcnow()
    n = raw.observations
    has_fit = (n >= 3) & np.isfinite(raw.elasticity) & np.isfinite(raw.stderr) & raw.price_varies
    ok = has_fit & (n >= min_observations)
    priors = pools(raw, groups, ok)
    catalogue = priors.get(CATALOGUE)
    # vectorised pooling: each product's prior, then the precision-weighted combination
    pool_of = [priors.get(g) or catalogue for g in groups]
    prior_mean = np.array([p.mean if p else np.nan for p in pool_of])
    prior_var = np.array([p.variance if p else np.nan for p in pool_of])
    with np.errstate(divide="ignore", invalid="ignore"):
        own_var = raw.stderr**2
        weight = np.where(np.isfinite(prior_var), prior_var / (prior_var + own_var), 1.0)
        pooled = np.where(has_fit, prior_mean + weight * (raw.elasticity - prior_mean), prior_mean)
        pooled = np.where(has_fit & ~np.isfinite(prior_mean), raw.elasticity, pooled)
        pooled_var = np.where(
            has_fit, np.where(np.isfinite(prior_var), 1 / (1 / own_var + 1 / prior_var), own_var), prior_var
        )
    t95 = _t_quantiles(raw.df)
    base_units = np.exp(raw.mean_y + np.nan_to_num(raw.sigma2) / 2)
    days = stats.sums["days"]
    out: list[DemandEstimate] = []
    for i, sku in enumerate(skus):
        pool = pool_of[i]
        status: Status
        if days[i] == 0 or stats.sums["a_n"][i] == 0:
            status = "no_data"
        elif ok[i]:
            status = "ok"
        elif not raw.price_varies[i] and n[i] >= min_observations:
            status = "no_price_variation"  # enough days, but nothing to learn the price's effect from
        else:
            status = "thin_data"  # too few days (or a constant price on too few): the pool's elasticity
        elasticity = ci_low = ci_high = cross = None
        method = ""
        if status == "ok":
            # the product's own interval (t), narrowed by the prior's precision through the pooled variance
            half = t95[i] * math.sqrt(pooled_var[i]) if pool else t95[i] * raw.stderr[i]
            elasticity = float(pooled[i])
            ci_low, ci_high = elasticity - float(half), elasticity + float(half)
            cross = _finite(raw.cross[i])
            method = "loglog+index" if cross is not None else "loglog"
            if pool:
                method += f"; pooled:{_pool_name(groups[i], priors)}"
        elif status == "thin_data" and pool is not None:
            elasticity = float(pooled[i])
            half = Z95 * math.sqrt(pooled_var[i])
            ci_low, ci_high = elasticity - float(half), elasticity + float(half)
            cross = pool.cross
            method = f"pooled:{_pool_name(groups[i], priors)}"
        fitted = status in ("ok", "thin_data") and n[i] > 0
        out.append(
            DemandEstimate(
                sku=sku,
                status=status,
                elasticity=elasticity,
                ci_low=ci_low,
                ci_high=ci_high,
                cross_elasticity=cross,
                conversion_rate=_finite(raw.conversion_rate[i]),
                observations=int(n[i]) if n[i] > 0 else int(stats.sums["a_n"][i]),
                base_units=_finite(base_units[i]) if fitted else None,
                ref_price=_money(math.exp(raw.mean_log_price[i])) if np.isfinite(raw.mean_log_price[i]) else None,
                ref_index=_finite(math.exp(raw.mean_log_index[i])) if np.isfinite(raw.mean_log_index[i]) else None,
                fitted_at=fitted_at,
                method=method,
                conversion_elasticity=_finite(raw.conversion_elasticity[i]),
            )
        )
    logger.info("demand: fitted %d products in %.1fs", len(out), time.perf_counter() - started)
    return out


def _pool_name(group: str, priors: dict[str, Pool]) -> str:
    return f"tag={group}" if group and group in priors else "catalogue"


def _t_quantiles(df: np.ndarray) -> np.ndarray:
    from scipy.stats import t  # statsmodels' own dependency

    with np.errstate(invalid="ignore"):
        return np.where(df >= 1, t.ppf(0.975, np.maximum(df, 1)), np.nan)


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _money(value: float) -> Decimal:
    return Decimal(repr(value)).quantize(MONEY_PLACES)


@dataclass(frozen=True)
class FitSummary:
    products: int
    statuses: dict[str, int]
    seconds: float


class FitStopped(Exception):
    """`should_stop` said so between two chunks: nothing was saved."""


def fit_store(
    store: Store, *, min_observations: int = 30, chunk: int = 900, should_stop: Callable[[], bool] | None = None
) -> FitSummary:
    """Fit every product's demand model from the database and save the estimates (one transaction).

    `should_stop` is asked between chunks (the daemon passes its stop event), so a daemon that is
    told to stop does not wait for a whole fit: the transaction is rolled back, nothing is saved.
    """
    from monitor.demand import dataset
    from monitor.demand.store import save_estimates

    started = time.perf_counter()
    with store.session() as session:
        entries = dataset.catalogue(session)
        stats = DemandStats(len(entries))
        for part in dataset.chunks(entries, chunk):
            if should_stop is not None and should_stop():
                raise FitStopped("stopped before the fit was done; nothing saved")
            rows = dataset.day_rows(session, part)
            stats.add(rows.product, rows.units, rows.price, rows.market_median, rows.sessions)
        fitted = estimates(
            stats, [e.sku for e in entries], [e.group for e in entries], min_observations=min_observations
        )
        save_estimates(session, fitted)
    statuses: dict[str, int] = {}
    for estimate in fitted:
        statuses[estimate.status] = statuses.get(estimate.status, 0) + 1
    seconds = time.perf_counter() - started
    logger.info("demand: fitted and saved %d product(s) in %.1fs: %s", len(fitted), seconds, statuses)
    return FitSummary(len(fitted), statuses, seconds)
