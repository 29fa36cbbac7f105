"""Change-only history: the same state writes no row, a change adds one, reads are exact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from monitor.settings import Competitor as CompetitorConfig
from monitor.store.catalog import sync_competitors
from monitor.store.database import Store, open_store
from monitor.store.history import CheckResult, history_between, price_at, record_checks, seen_until
from monitor.store.models import Listing, PriceHistory, Product

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
EVERY = timedelta(minutes=15)


@pytest.fixture
def store(database_url: str) -> Store:
    store = open_store(database_url, migrate=True)
    with store.session() as session:
        ids = sync_competitors(session, [CompetitorConfig(name="acme", base_url="http://127.0.0.1:1")])
        for n in range(3):
            product = Product(sku=f"SKU{n}", name=f"Item {n}", currency="EUR", price=Decimal("10.00"))
            session.add(product)
            session.flush()
            session.add(Listing(product_id=product.id, competitor_id=ids["acme"], url=f"http://127.0.0.1:1/{n}"))
    yield store
    store.dispose()


def observed(listing_id: int, price: str | None, at: datetime, in_stock: bool | None = True) -> CheckResult:
    return CheckResult(
        listing_id=listing_id,
        outcome="observed",
        checked_at=at,
        price=None if price is None else Decimal(price),
        currency="EUR",
        in_stock=in_stock,
    )


def record(store: Store, *results: CheckResult, run_id: int | None = None):
    with store.session() as session:
        return record_checks(session, results, run_id=run_id, interval=EVERY)


def history(store: Store, listing_id: int) -> list[PriceHistory]:
    with store.session() as session:
        return list(
            session.scalars(select(PriceHistory).where(PriceHistory.listing_id == listing_id).order_by(PriceHistory.id))
        )


def seen(store: Store, listing_id: int) -> list[datetime]:
    """Until when each of a listing's states was seen, oldest first, as every reader reads it."""
    with store.session() as session:
        return list(
            session.scalars(
                select(seen_until())
                .join(Listing, Listing.id == PriceHistory.listing_id)
                .where(PriceHistory.listing_id == listing_id)
                .order_by(PriceHistory.id)
            )
        )


def test_same_state_writes_no_history(store: Store) -> None:
    first = record(store, observed(1, "19.99", T0))
    assert first.outcomes == {"changed": 1}
    for k in range(1, 5):
        again = record(store, observed(1, "19.99", T0 + k * EVERY))
        assert again.outcomes == {"unchanged": 1}
        assert again.rows_inserted == 0
    rows = history(store, 1)
    assert len(rows) == 1
    assert rows[0].price == Decimal("19.99")
    assert rows[0].observed_at == T0
    assert rows[0].last_seen_at == T0  # the checks that saw it again did not rewrite it...
    assert seen(store, 1) == [T0 + 4 * EVERY]  # ...the listing's last success says until when


def test_price_stock_and_currency_changes_add_rows(store: Store) -> None:
    record(store, observed(1, "19.99", T0))
    record(store, observed(1, "18.49", T0 + EVERY))
    record(store, observed(1, "18.49", T0 + 2 * EVERY, in_stock=False))
    other = observed(1, "18.49", T0 + 3 * EVERY, in_stock=False)
    other.currency = "USD"
    record(store, other)
    rows = history(store, 1)
    assert [(r.price, r.in_stock, r.currency) for r in rows] == [
        (Decimal("19.99"), True, "EUR"),
        (Decimal("18.49"), True, "EUR"),
        (Decimal("18.49"), False, "EUR"),
        (Decimal("18.49"), False, "USD"),
    ]
    with store.session() as session:
        listing = session.get_one(Listing, 1)
        assert listing.latest_history_id == rows[-1].id
        assert listing.next_check_at == T0 + 4 * EVERY


def test_not_modified_and_unchanged_body_extend_the_latest_state(store: Store) -> None:
    record(store, observed(2, "5.00", T0))
    record(store, CheckResult(listing_id=2, outcome="not_modified", checked_at=T0 + EVERY))
    result = record(store, CheckResult(listing_id=2, outcome="unchanged", checked_at=T0 + 2 * EVERY))
    assert result.outcomes == {"unchanged": 1}
    rows = history(store, 2)
    assert len(rows) == 1 and seen(store, 2) == [T0 + 2 * EVERY]


def test_a_superseded_state_keeps_when_it_was_last_seen(store: Store) -> None:
    record(store, observed(1, "5.00", T0))
    record(store, CheckResult(listing_id=1, outcome="not_modified", checked_at=T0 + EVERY))
    record(store, observed(1, "5.00", T0 + 2 * EVERY))
    record(store, CheckResult(listing_id=1, outcome="timeout", checked_at=T0 + 3 * EVERY, error="read timed out"))
    record(store, observed(1, "5.50", T0 + 4 * EVERY))
    record(store, observed(1, "5.50", T0 + 5 * EVERY))
    rows = history(store, 1)
    # the failed check at T0 + 3 * EVERY saw nothing, so the first state was last seen before it
    assert [(r.price, r.last_seen_at) for r in rows] == [
        (Decimal("5.00"), T0 + 2 * EVERY),
        (Decimal("5.50"), T0 + 4 * EVERY),
    ]
    assert seen(store, 1) == [T0 + 2 * EVERY, T0 + 5 * EVERY]


def test_price_at_and_changes_between_are_exact(store: Store) -> None:
    prices = ["10.00", "10.00", "9.50", "9.50", "9.50", "11.00", "11.00"]
    for k, price in enumerate(prices):
        record(store, observed(3, price, T0 + k * EVERY))
    with store.session() as session:
        assert price_at(session, 3, T0 - timedelta(seconds=1)) is None
        assert price_at(session, 3, T0 + EVERY).price == Decimal("10.00")
        assert price_at(session, 3, T0 + 2 * EVERY).price == Decimal("9.50")
        assert price_at(session, 3, T0 + 4 * EVERY + timedelta(minutes=1)).price == Decimal("9.50")
        assert price_at(session, 3, T0 + 10 * EVERY).price == Decimal("11.00")
        between = history_between(session, 3, T0 + EVERY, T0 + 6 * EVERY)
        assert [r.price for r in between] == [Decimal("10.00"), Decimal("9.50"), Decimal("11.00")]
        assert session.scalar(select(func.count()).select_from(PriceHistory)) == 3


def test_suspicious_jump_is_flagged_then_confirmed(store: Store) -> None:
    record(store, observed(1, "100.00", T0))
    jump = record(store, observed(1, "10.00", T0 + EVERY), run_id=None)
    assert jump.outcomes == {"suspicious": 1}
    assert jump.changes == []  # not trusted yet
    assert history(store, 1)[-1].suspicious is True
    confirm = record(store, observed(1, "10.00", T0 + 2 * EVERY))
    assert confirm.outcomes == {"changed": 1}
    assert [c.new_price for c in confirm.changes] == [Decimal("10.00")]
    rows = history(store, 1)
    assert len(rows) == 2 and rows[-1].suspicious is False and seen(store, 1) == [T0, T0 + 2 * EVERY]


def test_failures_count_up_and_reset(store: Store) -> None:
    record(store, observed(1, "1.00", T0))
    for k in range(1, 4):
        record(store, CheckResult(listing_id=1, outcome="timeout", checked_at=T0 + k * EVERY, error="read timed out"))
    with store.session() as session:
        listing = session.get_one(Listing, 1)
        assert (listing.consecutive_failures, listing.last_outcome, listing.last_error) == (
            3,
            "timeout",
            "read timed out",
        )
        assert listing.last_success_at == T0
    record(store, observed(1, "1.00", T0 + 5 * EVERY))
    with store.session() as session:
        listing = session.get_one(Listing, 1)
        assert (listing.consecutive_failures, listing.last_outcome, listing.last_error) == (0, "unchanged", None)
    assert len(history(store, 1)) == 1


def test_a_batch_is_recorded_together(store: Store) -> None:
    result = record(store, observed(1, "1.00", T0), observed(2, "2.00", T0), observed(3, None, T0, in_stock=False))
    assert result.outcomes == {"changed": 3}
    assert result.rows_inserted == 3
    with pytest.raises(ValueError, match="unknown check outcome"):
        record(store, CheckResult(listing_id=1, outcome="fine", checked_at=T0))


def test_money_and_times_round_trip_exactly(store: Store) -> None:
    record(store, observed(1, "1234567890.1234", T0.astimezone(tz=UTC)))
    row = history(store, 1)[0]
    assert row.price == Decimal("1234567890.1234")
    assert row.observed_at.tzinfo is not None and row.observed_at == T0


def test_every_reader_sees_until_when_the_latest_state_was_confirmed(store: Store) -> None:
    """Strategies (offers, history since), the report's charts, `listings` and `history` all read
    the latest state's last sighting from its listing, not from the row no check rewrites."""
    from monitor.store.catalog import history_rows, listing_rows
    from monitor.store.reporting import chart_data
    from monitor.store.suggestions import latest_offers, read_history

    record(store, observed(1, "7.00", T0))
    record(store, observed(1, "6.50", T0 + EVERY))
    record(store, CheckResult(listing_id=1, outcome="not_modified", checked_at=T0 + 5 * EVERY))
    confirmed = T0 + 5 * EVERY
    with store.session() as session:
        offers = next(p for p in latest_offers(session, skus=["SKU0"])).offers
        assert [(o[2], o[6]) for o in offers] == [(Decimal("6.50"), confirmed)]
        assert [(r["price"], r["last_seen_at"]) for r in listing_rows(session, skus=["SKU0"])] == [
            ("6.50", confirmed.isoformat())
        ]
        assert [(r["price"], r["last_seen_at"]) for r in history_rows(session, "SKU0")] == [
            ("7.00", T0.isoformat()),
            ("6.50", confirmed.isoformat()),
        ]
        (chart,) = chart_data(session, [1], start=T0 + 3 * EVERY, now=T0 + 6 * EVERY)
        line = next(s for s in chart.series if s.kind == "competitor")
        assert line.points == [(T0 + 3 * EVERY, Decimal("6.50")), (confirmed, Decimal("6.50"))]
    # only the latest state was still seen at T0 + 2 * EVERY
    rows = read_history(store, 1, since=T0 + 2 * EVERY)
    assert [(r[1], r[5]) for r in rows] == [(Decimal("6.50"), confirmed)]
