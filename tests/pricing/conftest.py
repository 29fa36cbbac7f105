"""Fixtures for pricing: a catalogue with competitor observations stored through the real store."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from monitor.store.database import Store, open_store
from monitor.store.history import CheckResult, record_checks
from monitor.store.models import Competitor, Listing, Product

COMPETITORS = ("acme", "globex", "initech")
CONFIG = "".join(f'[[competitors]]\nname = "{name}"\nbase_url = "http://127.0.0.1:9/"\n\n' for name in COMPETITORS)
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Market:
    """Writes products, listings and observations the way `pricemon import` and a sweep do."""

    def __init__(self, tmp_path: Path, pricemon_cli, write_config, database_url: str, extra_config: str = "") -> None:
        self.tmp_path = tmp_path
        self.database_url = database_url
        self.config_path = write_config(CONFIG + extra_config)
        self.pricemon = pricemon_cli(self.config_path, database_url)
        self.store: Store = open_store(database_url, migrate=True)

    def reconfigure(self, extra_config: str) -> None:
        self.config_path.write_text(CONFIG + extra_config, encoding="utf-8")

    def products(self, csv_text: str) -> None:
        path = self.tmp_path / "products.csv"
        path.write_text(csv_text, encoding="utf-8")
        self.pricemon("import", "products", str(path))

    def listings(self, pairs: Iterable[tuple[str, str]]) -> None:
        path = self.tmp_path / "listings.csv"
        lines = ["sku,competitor,url"] + [f"{sku},{c},http://127.0.0.1:9/{c}/{sku}" for sku, c in pairs]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.pricemon("import", "listings", str(path))

    def observe(
        self,
        prices: dict[tuple[str, str], tuple[str, str, bool | None] | str],
        at: datetime | None = None,
        *,
        suspicious_change: float = 10.0,
    ) -> None:
        """Record one check per (sku, competitor): "19.99" or ("19.99", "EUR", in_stock); default now."""
        at = at or datetime.now(UTC)
        with self.store.session() as session:
            ids = {
                (sku, comp): lid
                for lid, sku, comp in session.execute(
                    select(Listing.id, Product.sku, Competitor.name)
                    .join(Product, Product.id == Listing.product_id)
                    .join(Competitor, Competitor.id == Listing.competitor_id)
                )
            }
            results = []
            for key, value in prices.items():
                price, currency, in_stock = (value, "EUR", True) if isinstance(value, str) else value
                results.append(
                    CheckResult(ids[key], "observed", at, Decimal(price), currency=currency, in_stock=in_stock)
                )
            record_checks(session, results, run_id=None, interval=timedelta(minutes=15),
                          suspicious_change=suspicious_change)


@pytest.fixture
def market(tmp_path, pricemon_cli, write_config, database_url) -> Market:
    m = Market(tmp_path, pricemon_cli, write_config, database_url)
    yield m
    m.store.dispose()


@pytest.fixture
def sqlite_market(tmp_path, pricemon_cli, write_config, sqlite_url) -> Market:
    m = Market(tmp_path, pricemon_cli, write_config, sqlite_url)
    yield m
    m.store.dispose()
