"""Synthetic daily sales from known elasticities, for the demand tests and `bench/demand.py`.

Each product has a true own-price elasticity (by group: the defaults are -2.5, -1.2 and -0.4,
each group one tag), a true cross elasticity to the price index (our price / competitors'
median), a base demand and a base price. Our price moves the way shops move prices: it holds
for a week or two, then changes by up to ±15 % (promotions, cost moves); the competitors'
median drifts around the base price. Units are Poisson draws from the constant-elasticity model of
`monitor.demand.estimate`, times a day-to-day lognormal shock. Some products have only a few
days of data (thin) and some never change their price (constant).

Chunks are numpy arrays, so 172,800 products x 180 days are produced a chunk at a time.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

GROUPS: tuple[tuple[str, float], ...] = (("elastic", -2.5), ("mid", -1.2), ("inelastic", -0.4))


@dataclass(frozen=True)
class Truth:
    """What generated one product's sales."""

    sku: str
    tag: str
    elasticity: float
    cross_elasticity: float
    thin: bool
    constant_price: bool
    base_price: float


@dataclass(frozen=True)
class Chunk:
    """Day rows of a run of products: `product` indexes `DemandData.truth`."""

    product: np.ndarray  # int32
    day: np.ndarray  # int16, days since `start`
    units: np.ndarray  # int32
    price: np.ndarray  # float64
    market_median: np.ndarray  # float64
    sessions: np.ndarray  # int32


@dataclass
class DemandData:
    products: int
    days: int = 180
    seed: int = 7
    groups: tuple[tuple[str, float], ...] = GROUPS
    cross_elasticity: float = -0.5
    thin_share: float = 0.05
    thin_days: int = 10
    constant_share: float = 0.02
    base_units: tuple[float, float] = (15.0, 60.0)
    noise: float = 0.1
    start: date = date(2026, 5, 1)
    chunk_products: int = 4000
    truth: list[Truth] = field(init=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        kinds = rng.random(self.products)
        self.truth = []
        for index in range(self.products):
            tag, elasticity = self.groups[index % len(self.groups)]
            thin = bool(kinds[index] < self.thin_share)
            constant = bool(not thin and kinds[index] < self.thin_share + self.constant_share)
            self.truth.append(
                Truth(
                    sku=f"D{index:06d}",
                    tag=tag,
                    elasticity=elasticity,
                    cross_elasticity=self.cross_elasticity,
                    thin=thin,
                    constant_price=constant,
                    base_price=round(float(rng.uniform(5, 200)), 2),
                )
            )

    def date_of(self, day: int) -> date:
        return self.start + timedelta(days=int(day))

    def chunks(self) -> Iterator[Chunk]:
        for first in range(0, self.products, self.chunk_products):
            yield self._chunk(first, min(self.products, first + self.chunk_products))

    def _chunk(self, first: int, end: int) -> Chunk:
        rng = np.random.default_rng([self.seed, first])
        n, days = end - first, self.days
        truth = self.truth[first:end]
        base_price = np.array([t.base_price for t in truth])[:, None]
        elasticity = np.array([t.elasticity for t in truth])[:, None]
        cross = np.array([t.cross_elasticity for t in truth])[:, None]
        # our price: a new level every 7-21 days, within ±15 % of the base price
        level = rng.uniform(-0.15, 0.15, size=(n, days))
        changes = rng.random((n, days)) < 1 / 14
        changes[:, 0] = True
        run = np.maximum.accumulate(np.where(changes, np.arange(days)[None, :], 0), axis=1)
        log_ratio = np.take_along_axis(level, run, axis=1)
        constant = np.array([t.constant_price for t in truth])
        log_ratio[constant] = 0.0
        price = np.round(base_price * np.exp(log_ratio), 2)
        # competitors' median: drifts around the base price (AR(1), daily steps of 2.5 %, about 8 %
        # spread), rounded like shop prices
        steps = rng.normal(0, 0.025, size=(n, days))
        walk = np.empty((n, days))
        walk[:, 0] = rng.normal(0, 0.08, size=n)
        for day in range(1, days):
            walk[:, day] = 0.95 * walk[:, day - 1] + steps[:, day]
        median = np.round(base_price * np.exp(walk), 2)
        index = price / median
        base_units = rng.uniform(*self.base_units, size=(n, 1))
        log_mean = (
            np.log(base_units)
            + elasticity * np.log(price / base_price)
            + cross * np.log(index)
            + rng.normal(0, self.noise, size=(n, days))
        )
        units = rng.poisson(np.exp(log_mean)).astype(np.int32)
        # product page sessions: conversion falls as our index rises (elasticity -0.8 of conversion)
        conversion = 0.04 * index**-0.8
        sessions = np.maximum(units, rng.poisson(np.exp(log_mean) / conversion)).astype(np.int32)
        keep = np.ones((n, days), dtype=bool)
        thin = np.array([t.thin for t in truth])
        keep[thin, : days - self.thin_days] = False
        product = np.broadcast_to(np.arange(first, end, dtype=np.int32)[:, None], (n, days))
        day = np.broadcast_to(np.arange(days, dtype=np.int16)[None, :], (n, days))
        return Chunk(
            product=product[keep],
            day=day[keep],
            units=units[keep],
            price=price[keep],
            market_median=median[keep],
            sessions=sessions[keep],
        )


def write_csvs(data: DemandData, folder: Path) -> tuple[Path, Path, Path]:
    """products.csv (tagged by group), sales.csv (with the price) and traffic.csv for the imports."""
    folder.mkdir(parents=True, exist_ok=True)
    products, sales, traffic = folder / "products.csv", folder / "sales.csv", folder / "traffic.csv"
    with products.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sku", "name", "price", "currency", "cost", "tags"])
        for t in data.truth:
            writer.writerow(
                [t.sku, f"Product {t.sku}", f"{t.base_price:.2f}", "EUR", f"{t.base_price * 0.6:.2f}", t.tag]
            )
    dates = [data.date_of(d).isoformat() for d in range(data.days)]
    with sales.open("w", newline="") as s_handle, traffic.open("w", newline="") as t_handle:
        s_writer, t_writer = csv.writer(s_handle), csv.writer(t_handle)
        s_writer.writerow(["sku", "date", "units", "revenue", "price"])
        t_writer.writerow(["sku", "date", "sessions"])
        for chunk in data.chunks():
            for product, day, units, price, sessions in zip(
                chunk.product.tolist(), chunk.day.tolist(), chunk.units.tolist(), chunk.price.tolist(),
                chunk.sessions.tolist(), strict=True,
            ):  # fmt: skip
                sku = data.truth[product].sku
                s_writer.writerow([sku, dates[day], units, f"{units * price:.2f}", f"{price:.2f}"])
                t_writer.writerow([sku, dates[day], sessions])
    return products, sales, traffic


def write_market_history(session: Session, data: DemandData, competitor: str = "market") -> int:
    """One competitor listing per product whose price is the day's market median (change-only
    history rows, observed at noon UTC), so the fit finds the index in the database. Returns rows."""
    from monitor.store.models import Competitor, Listing, PriceHistory, Product

    shop = Competitor(name=competitor, base_url="http://127.0.0.1:9/")
    session.add(shop)
    session.flush()
    ids = {sku: product_id for sku, product_id in session.execute(select(Product.sku, Product.id))}
    listings = [
        Listing(product_id=ids[t.sku], competitor_id=shop.id, url=f"http://127.0.0.1:9/{t.sku}") for t in data.truth
    ]
    session.add_all(listings)
    session.flush()
    rows: list[dict[str, object]] = []
    for chunk in data.chunks():
        last: dict[int, float] = {}
        for product, day, median in zip(
            chunk.product.tolist(), chunk.day.tolist(), chunk.market_median.tolist(), strict=True
        ):
            if last.get(product) == median:
                continue
            last[product] = median
            seen = datetime.combine(data.date_of(day), time(12), tzinfo=UTC)
            rows.append(
                {
                    "listing_id": listings[product].id,
                    "price": Decimal(f"{median:.2f}"),
                    "currency": "EUR",
                    "in_stock": True,
                    "observed_at": seen,
                    "last_seen_at": seen,
                    "suspicious": False,
                    "currency_mismatch": False,
                }
            )
    for start in range(0, len(rows), 5000):
        session.execute(insert(PriceHistory), rows[start : start + 5000])
    return len(rows)
