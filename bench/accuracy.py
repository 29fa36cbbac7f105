"""Checking what a sweep stored (or Scrapy extracted) against the synthetic web's truth file."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from bench.synthetic_web import TruthRow

logger = logging.getLogger(__name__)

Key = tuple[str, str]  # (competitor, sku)


@dataclass(frozen=True)
class Observation:
    """A listing's latest state as recorded by the system under test."""

    price: Decimal | None
    currency: str | None
    in_stock: bool | None


@dataclass
class Accuracy:
    """How many truth rows were reproduced exactly, and examples of those that were not."""

    total: int
    correct: int = 0
    missing: int = 0
    wrong: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def percent(self) -> str:
        return f"{100 * self.ratio:.2f}%"


def compare_to_truth(
    observed: Mapping[Key, Observation], truth: Mapping[Key, TruthRow], *, max_examples: int = 10
) -> Accuracy:
    """Every truth row must be observed with exactly its price, currency and stock state."""
    accuracy = Accuracy(total=len(truth))
    for key, expected in sorted(truth.items()):
        seen = observed.get(key)
        if seen is None:
            accuracy.missing += 1
            problem = "no observation"
        elif seen.price == expected.price and seen.currency == expected.currency and seen.in_stock == expected.in_stock:
            accuracy.correct += 1
            continue
        else:
            accuracy.wrong += 1
            problem = (
                f"got {seen.price} {seen.currency} in_stock={seen.in_stock}, "
                f"want {expected.price} {expected.currency} in_stock={expected.in_stock}"
            )
        if len(accuracy.examples) < max_examples:
            accuracy.examples.append(f"{key[0]} {key[1]} ({expected.path}): {problem}")
    return accuracy


def observations_from_database(database_url: str) -> dict[Key, Observation]:
    """Each listing's newest price-history row, read through monitor.store's models."""
    from sqlalchemy import func, select

    from monitor.store.database import make_engine
    from monitor.store.models import Competitor, Listing, PriceHistory, Product

    engine = make_engine(database_url)
    try:
        latest = (
            select(PriceHistory.listing_id, func.max(PriceHistory.id).label("history_id"))
            .group_by(PriceHistory.listing_id)
            .subquery()
        )
        query = (
            select(Competitor.name, Product.sku, PriceHistory.price, PriceHistory.currency, PriceHistory.in_stock)
            .join(Listing, Listing.competitor_id == Competitor.id)
            .join(Product, Product.id == Listing.product_id)
            .join(latest, latest.c.listing_id == Listing.id)
            .join(PriceHistory, PriceHistory.id == latest.c.history_id)
        )
        with engine.connect() as connection:
            return {
                (name, sku): Observation(price=price, currency=currency, in_stock=in_stock)
                for name, sku, price, currency, in_stock in connection.execute(query)
            }
    finally:
        engine.dispose()


def observations_from_jsonl(path: Path) -> dict[Key, Observation]:
    """Items written by bench.scrapy_baseline."""
    observed = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            item = json.loads(line)
            try:
                price = None if item["price"] is None else Decimal(item["price"])
            except InvalidOperation:
                price = None
            observed[(item["competitor"], item["sku"])] = Observation(
                price=price, currency=item["currency"], in_stock=item["in_stock"]
            )
    return observed
