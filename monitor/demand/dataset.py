"""The fit's input from the database: day rows of our sales, traffic and the competitors' median.

Read a chunk of products at a time, so memory stays bounded by the chunk, not the catalogue.
The competitors' median on a day is the median over the product's listings of each listing's
price in force at the end of that day (change-only history, carried forward for at most
`CARRY_DAYS`), leaving out out-of-stock, suspicious and other-currency observations.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import Float, cast, select
from sqlalchemy.orm import Session

from monitor.store.models import Listing, PriceHistory, Product, SalesDay, TrafficDay

#: how long a listing's last seen price still counts towards the median without a newer check
CARRY_DAYS = 14
EPOCH = date(1970, 1, 1).toordinal()


@dataclass(frozen=True)
class CatalogueEntry:
    index: int
    product_id: int
    sku: str
    group: str  # first tag, "" without


def catalogue(session: Session) -> list[CatalogueEntry]:
    """Every product, in id order, with its pooling group (its first tag)."""
    rows = session.execute(select(Product.id, Product.sku, Product.tags).order_by(Product.id))
    return [CatalogueEntry(i, pid, sku, (tags or [""])[0]) for i, (pid, sku, tags) in enumerate(rows)]


@dataclass(frozen=True)
class DayRows:
    product: np.ndarray  # indexes into the catalogue
    units: np.ndarray
    price: np.ndarray
    market_median: np.ndarray
    sessions: np.ndarray


def day_rows(session: Session, entries: Sequence[CatalogueEntry]) -> DayRows:
    """The sales days of `entries` with the day's sessions and competitors' median (NaN: unknown)."""
    ids = [e.product_id for e in entries]
    index_of = {e.product_id: e.index for e in entries}
    sales = pd.DataFrame(
        session.execute(
            select(SalesDay.product_id, SalesDay.date, SalesDay.units, cast(SalesDay.price, Float)).where(
                SalesDay.product_id.in_(ids)
            )
        ).all(),
        columns=["product_id", "date", "units", "price"],
    )
    if sales.empty:
        empty = np.array([], dtype=np.float64)
        return DayRows(np.array([], dtype=np.intp), empty, empty, empty, empty)
    sales["day"] = _days(sales["date"])
    traffic = pd.DataFrame(
        session.execute(
            select(TrafficDay.product_id, TrafficDay.date, TrafficDay.sessions).where(TrafficDay.product_id.in_(ids))
        ).all(),
        columns=["product_id", "date", "sessions"],
    )
    if not traffic.empty:
        traffic["day"] = _days(traffic["date"])
        sales = sales.merge(traffic[["product_id", "day", "sessions"]], on=["product_id", "day"], how="left")
    else:
        sales["sessions"] = np.nan
    medians = market_medians(session, ids, int(sales["day"].min()), int(sales["day"].max()))
    if medians is not None:
        sales = sales.merge(medians, on=["product_id", "day"], how="left")
    else:
        sales["median"] = np.nan
    return DayRows(
        product=sales["product_id"].map(index_of).to_numpy(dtype=np.intp),
        units=sales["units"].to_numpy(dtype=np.float64),
        price=sales["price"].to_numpy(dtype=np.float64, na_value=np.nan),
        market_median=sales["median"].to_numpy(dtype=np.float64, na_value=np.nan),
        sessions=sales["sessions"].to_numpy(dtype=np.float64, na_value=np.nan),
    )


def _days(dates: pd.Series) -> pd.Series:
    return dates.map(lambda d: (d if isinstance(d, date) else date.fromisoformat(str(d))).toordinal() - EPOCH)


def market_medians(session: Session, product_ids: Sequence[int], first_day: int, last_day: int) -> pd.DataFrame | None:
    """(product_id, day, median) of the competitors' prices, for the days first_day..last_day."""
    start = datetime.combine(date.fromordinal(first_day + EPOCH), time(0), tzinfo=UTC)
    end = datetime.combine(date.fromordinal(last_day + EPOCH) + timedelta(days=1), time(0), tzinfo=UTC)
    query = (
        select(
            Listing.id,
            Listing.product_id,
            cast(PriceHistory.price, Float),
            PriceHistory.in_stock,
            PriceHistory.observed_at,
        )
        .join(Listing, PriceHistory.listing_id == Listing.id)
        .join(Product, Listing.product_id == Product.id)
        .where(
            Listing.product_id.in_(product_ids),
            PriceHistory.price.is_not(None),
            PriceHistory.suspicious.is_(False),
            PriceHistory.currency == Product.currency,
            PriceHistory.observed_at < end,
            # the state in force at the start comes from before it: look back the carry window
            PriceHistory.observed_at >= start - timedelta(days=CARRY_DAYS),
        )
    )
    history = pd.DataFrame(session.execute(query).all(), columns=["listing", "product_id", "price", "in_stock", "at"])
    if history.empty:
        return None
    history["day"] = history["at"].map(lambda t: t.astimezone(UTC).date().toordinal() - EPOCH)
    # out of stock is a state too: it ends the previous price, and is left out of the median
    history.loc[history["in_stock"].eq(False), "price"] = -1.0
    history = history.sort_values("at").drop_duplicates(["listing", "day"], keep="last")
    days = np.arange(first_day - CARRY_DAYS, last_day + 1)
    wide = history.pivot(index="day", columns="listing", values="price").reindex(days).ffill(limit=CARRY_DAYS)
    wide = wide.loc[first_day:last_day].where(wide > 0)
    product_of = history.drop_duplicates("listing").set_index("listing")["product_id"]
    long = wide.stack().rename("price").reset_index()
    long.columns = ["day", "listing", "price"]
    long["product_id"] = long["listing"].map(product_of)
    return long.groupby(["product_id", "day"], as_index=False)["price"].median().rename(columns={"price": "median"})


def chunks(entries: Sequence[CatalogueEntry], size: int) -> Iterator[Sequence[CatalogueEntry]]:
    for start in range(0, len(entries), size):
        yield entries[start : start + size]
