"""A store filled with a small market: products, competitors, history over two weeks, runs,
pending suggestions and applied changes, with hostile strings where scraped text goes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from monitor.store.database import open_store
from monitor.store.models import (
    Competitor,
    Listing,
    PriceChange,
    PriceHistory,
    Product,
    ScrapeRun,
    Suggestion,
)

NOW = datetime.now(UTC).replace(microsecond=0)
HOSTILE_NAME = "<script>alert('name')</script>Kettle"
HOSTILE_COMPETITOR = "\"'><img src=x onerror=alert(1)>"
HOSTILE_ERROR = "</script><script>alert('error')</script>"


def seed_market(url: str, *, extra_products: int = 0) -> None:
    """Three products at three competitors, with a history, two runs, suggestions and a change."""
    store = open_store(url, migrate=True)
    try:
        with store.session() as session:
            products = [
                Product(sku="KET-1", name=HOSTILE_NAME, currency="EUR", price=Decimal("49.99"), cost=Decimal("30")),
                Product(sku="TOA-2", name="Toaster 2 slots", currency="EUR", price=Decimal("30.00")),
                Product(sku="MUG-3", name="Mug & saucer", currency="EUR", price=Decimal("9.50")),
            ]
            products += [
                Product(sku=f"BULK-{i:05d}", name=f"Bulk item {i}", currency="EUR", price=Decimal("10.00"))
                for i in range(extra_products)
            ]
            shops = [
                Competitor(name="acme", base_url="http://127.0.0.1:1/acme"),
                Competitor(name=HOSTILE_COMPETITOR, base_url="http://127.0.0.1:1/evil?a=<b>"),
                Competitor(name="zeta", base_url="http://127.0.0.1:1/zeta"),
            ]
            session.add_all(products + shops)
            session.flush()
            runs = [
                ScrapeRun(
                    trigger="cli",
                    started_at=NOW - timedelta(days=d),
                    finished_at=NOW - timedelta(days=d),
                    status="finished",
                    counts={
                        "acme": {"changed": 2, "unchanged": 1, "seconds": 0.5},
                        HOSTILE_COMPETITOR: {"changed": 1, "http_error": 2, "seconds": 1.0},
                        "zeta": {"timeout": 3, "seconds": 9.0},
                    },
                )
                for d in (10, 1)
            ]
            session.add_all(runs)
            session.flush()
            prices = {
                # (product, shop): [(days ago, price, in stock)]
                (0, 0): [(12, "45.00", True), (5, "44.00", True), (2, "44.00", False)],
                (0, 1): [(12, "47.50", True), (3, "46.00", True)],
                (1, 0): [(12, "28.00", True)],
                (2, 2): [(12, "9.00", True)],
            }
            for (p, c), states in prices.items():
                last_success = NOW - timedelta(hours=1) if c != 2 else NOW - timedelta(days=3)
                listing = Listing(
                    product_id=products[p].id,
                    competitor_id=shops[c].id,
                    url=f"http://127.0.0.1:1/{shops[c].name}/{products[p].sku}",
                    last_checked_at=NOW - timedelta(hours=1),
                    last_success_at=last_success,
                    last_outcome="unchanged" if c != 2 else "timeout",
                    last_error=None if c != 2 else HOSTILE_ERROR,
                    consecutive_failures=0 if c != 2 else 4,
                )
                session.add(listing)
                session.flush()
                rows = []
                for i, (days, price, stock) in enumerate(states):
                    # a superseded state was last seen an hour before the next began; the latest, at the last success
                    last_seen = NOW - timedelta(days=states[i + 1][0], hours=1) if i + 1 < len(states) else last_success
                    rows.append(
                        PriceHistory(
                            listing_id=listing.id,
                            price=Decimal(price),
                            currency="EUR",
                            in_stock=stock,
                            observed_at=NOW - timedelta(days=days),
                            last_seen_at=last_seen,
                            run_id=runs[0].id,
                        )
                    )
                session.add_all(rows)
                session.flush()
                listing.latest_history_id = rows[-1].id
            session.add_all(
                [
                    Suggestion(
                        product_id=products[0].id,
                        strategy="undercut",
                        current_price=Decimal("49.99"),
                        suggested_price=Decimal("43.99"),
                        currency="EUR",
                        reason="lowest in-stock: <b>acme</b> 44.00; undercut 1 -> 43.00; round .99 -> 43.99",
                        details={},
                    ),
                    Suggestion(
                        product_id=products[1].id,
                        strategy="raise_to_market",
                        current_price=Decimal("30.00"),
                        suggested_price=Decimal("27.99"),
                        currency="EUR",
                        reason="lowest in-stock: acme 28.00",
                        details={"min": "28.00", "median": "28.00", "max": "28.00", "rank": 2, "offers": 1},
                    ),
                    Suggestion(
                        product_id=products[2].id,
                        strategy="old",
                        current_price=Decimal("9.50"),
                        suggested_price=Decimal("1.00"),
                        currency="EUR",
                        reason="superseded",
                        status="superseded",
                    ),
                ]
                + [
                    Suggestion(
                        product_id=product.id,
                        strategy="match_lowest",
                        current_price=Decimal("10.00"),
                        suggested_price=Decimal("10.00") + Decimal(i % 97) / 100,
                        currency="EUR",
                        reason="bulk",
                    )
                    for i, product in enumerate(products[3:])
                ]
            )
            session.add(
                PriceChange(
                    product_id=products[0].id,
                    old_price=Decimal("52.00"),
                    new_price=Decimal("49.99"),
                    currency="EUR",
                    strategy="undercut",
                    reason="applied <i>by hand</i>",
                    applied_by="lead",
                    applied_at=NOW - timedelta(days=4),
                )
            )
    finally:
        store.dispose()


@pytest.fixture
def market_url(sqlite_url: str) -> str:
    seed_market(sqlite_url)
    return sqlite_url
