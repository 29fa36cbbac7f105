"""Each condition fires exactly when it should, on what the sweep recorded, filtered, deduplicated
and held back by the quiet period."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from monitor.alerts import evaluate_run
from monitor.errors import NotFoundError
from monitor.store.database import open_store
from monitor.store.models import AlertDelivery, AlertEvent, Product, Suggestion, utcnow
from tests.alerts.conftest import Shop, build_shop, make_settings

NOW = utcnow().replace(microsecond=0)
T0 = NOW - timedelta(hours=6)
STEP = timedelta(minutes=15)


def settings_with(*rules: dict[str, Any]) -> Any:
    return make_settings(
        alerting={"channels": [{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/hook"}]},
        alerts=[{"channels": ["hook"], "quiet_period": "0s", **rule} for rule in rules],
    )


def fired(shop: Shop, settings: Any, run_id: int, now=NOW) -> list[tuple[str, str]]:
    """(rule, subject) of what the run raised."""
    return [(a.rule, a.subject) for a in evaluate_run(settings, shop.store, run_id, now=now)]


def subject(shop: Shop, sku: str, competitor: str) -> str:
    return f"listing:{shop.listing[(sku, competitor)]}"


def test_undercut_fires_only_for_a_trusted_in_stock_lower_price_in_our_currency(shop: Shop) -> None:
    settings = settings_with({"name": "cheaper", "condition": "undercut"})
    run = shop.sweep(
        shop.seen("A", "acme", "95.00", T0),  # below our 100: fires
        shop.seen("A", "bolt", "100.00", T0),  # equal: no
        shop.seen("B", "acme", "80.00", T0, in_stock=False),  # out of stock: no
        shop.seen("B", "bolt", "70.00", T0, currency="USD"),  # other currency: no
    )
    assert fired(shop, settings, run) == [("cheaper", subject(shop, "A", "acme"))]
    alerts = evaluate_run(settings, shop.store, run, now=NOW)
    assert alerts == []  # the same run again raises nothing: at most once per rule


def test_undercut_thresholds_percent_and_amount(shop: Shop) -> None:
    settings = settings_with(
        {"name": "by-5pct", "condition": "undercut", "percent": 5},
        {"name": "by-3eur", "condition": "undercut", "amount": "3.00"},
    )
    run = shop.sweep(
        shop.seen("A", "acme", "96.00", T0),  # 4% / 4.00 below
        shop.seen("B", "acme", "94.00", T0),  # 6% / 6.00 below
        shop.seen("A", "bolt", "97.00", T0),  # exactly 3.00 below: not more than 3
    )
    got = sorted(fired(shop, settings, run))
    assert got == sorted(
        [
            ("by-5pct", subject(shop, "B", "acme")),
            ("by-3eur", subject(shop, "A", "acme")),
            ("by-3eur", subject(shop, "B", "acme")),
        ]
    )


def test_price_drop_and_rise_compare_with_the_previous_trusted_state(shop: Shop) -> None:
    settings = settings_with(
        {"name": "drop", "condition": "price_drop", "percent": 10},
        {"name": "rise", "condition": "price_rise", "percent": 10},
    )
    first = shop.sweep(shop.seen("A", "acme", "100.00", T0), shop.seen("A", "bolt", "100.00", T0))
    assert fired(shop, settings, first) == []  # a first observation moved from nothing
    run = shop.sweep(
        shop.seen("A", "acme", "85.00", T0 + STEP),  # -15%
        shop.seen("A", "bolt", "105.00", T0 + STEP),  # +5%: below the threshold
    )
    assert fired(shop, settings, run) == [("drop", subject(shop, "A", "acme"))]
    run = shop.sweep(shop.seen("A", "acme", "85.00", T0 + 2 * STEP), shop.seen("A", "bolt", "120.00", T0 + 2 * STEP))
    assert fired(shop, settings, run) == [("rise", subject(shop, "A", "bolt"))]  # acme unchanged: nothing


def test_a_suspicious_jump_is_not_trusted_until_a_later_sweep_confirms_it(shop: Shop) -> None:
    settings = settings_with({"name": "drop", "condition": "price_drop", "percent": 10})
    shop.sweep(shop.seen("A", "acme", "100.00", T0))
    glitch = shop.sweep(shop.seen("A", "acme", "10.00", T0 + STEP))  # -90%: suspicious
    assert fired(shop, settings, glitch) == []
    confirmed = shop.sweep(shop.seen("A", "acme", "10.00", T0 + 2 * STEP))
    alerts = evaluate_run(settings, shop.store, confirmed, now=NOW)
    assert [(a.rule, a.payload["previous_price"], a.payload["price"]) for a in alerts] == [("drop", "100.00", "10.00")]


def test_all_time_low_needs_a_price_below_every_earlier_one(shop: Shop) -> None:
    settings = settings_with({"name": "low", "condition": "all_time_low"})
    for step, price in enumerate(["90.00", "95.00", "92.00"]):
        run = shop.sweep(shop.seen("A", "acme", price, T0 + step * STEP))
        assert fired(shop, settings, run) == []  # first ever, then above 90
    run = shop.sweep(shop.seen("A", "acme", "89.99", T0 + 3 * STEP))
    assert fired(shop, settings, run) == [("low", subject(shop, "A", "acme"))]


def test_stock_changes(shop: Shop) -> None:
    settings = settings_with(
        {"name": "back", "condition": "back_in_stock"}, {"name": "gone", "condition": "out_of_stock"}
    )
    run = shop.sweep(shop.seen("A", "acme", "99.00", T0), shop.seen("B", "acme", "99.00", T0, in_stock=False))
    assert fired(shop, settings, run) == []  # no earlier state to change from
    run = shop.sweep(
        shop.seen("A", "acme", "99.00", T0 + STEP, in_stock=False),
        shop.seen("B", "acme", "99.00", T0 + STEP, in_stock=True),
    )
    assert sorted(fired(shop, settings, run)) == [
        ("back", subject(shop, "B", "acme")),
        ("gone", subject(shop, "A", "acme")),
    ]
    run = shop.sweep(shop.seen("A", "acme", "98.00", T0 + 2 * STEP, in_stock=None))
    assert fired(shop, settings, run) == []  # unknown stock is not "back in stock"


def test_new_suggestion_above_the_impact_threshold(shop: Shop) -> None:
    settings = settings_with({"name": "suggested", "condition": "new_suggestion", "percent": 5})
    with shop.store.session() as session:
        products = {p.sku: p.id for p in session.scalars(select(Product))}
        for sku, price in (("A", "90.00"), ("B", "97.00")):
            session.add(
                Suggestion(
                    product_id=products[sku],
                    strategy="match_lowest",
                    current_price=Decimal("100.00"),
                    suggested_price=Decimal(price),
                    currency="EUR",
                    reason="acme is cheaper",
                )
            )
    run = shop.sweep(shop.seen("A", "acme", "90.00", T0))
    alerts = evaluate_run(settings, shop.store, run, now=NOW)
    assert [(a.subject, a.payload["impact_percent"]) for a in alerts] == [("product:A", "-10.0")]
    assert evaluate_run(settings, shop.store, shop.sweep(), now=NOW) == []  # already alerted


def test_scrape_failing_for_a_listing_and_for_a_whole_competitor(shop: Shop) -> None:
    settings = settings_with(
        {"name": "listing-down", "condition": "scrape_failing", "scope": "listing", "failing_for": "1h"},
        {"name": "shop-down", "condition": "scrape_failing", "failing_for": "1h"},
    )
    ok = shop.sweep(*(shop.seen(sku, c, "99.00", T0) for sku in "AB" for c in ("acme", "bolt")))
    assert fired(shop, settings, ok) == []
    # acme fails completely, bolt only for B; 30 minutes later nothing is late yet
    failing = (
        shop.failed("A", "acme", T0 + STEP),
        shop.failed("B", "acme", T0 + STEP),
        shop.failed("B", "bolt", T0 + STEP),
    )
    run = shop.sweep(*failing, shop.seen("A", "bolt", "99.00", T0 + STEP))
    assert fired(shop, settings, run, now=T0 + 2 * STEP) == []
    later = T0 + timedelta(hours=2)
    got = sorted(fired(shop, settings, run, now=later))
    assert got == sorted(
        [
            ("listing-down", subject(shop, "A", "acme")),
            ("listing-down", subject(shop, "B", "acme")),
            ("listing-down", subject(shop, "B", "bolt")),
            ("shop-down", "competitor:acme"),
        ]
    )
    # still failing at the next sweep: the same episode does not alert again
    again = shop.sweep(shop.failed("A", "acme", later), shop.failed("B", "acme", later))
    assert fired(shop, settings, again, now=later + STEP) == []


def test_filters_by_competitor_sku_and_tag(shop: Shop) -> None:
    settings = settings_with(
        {"name": "acme-only", "condition": "undercut", "competitors": ["acme"]},
        {"name": "sku-b", "condition": "undercut", "skus": ["B"]},
        {"name": "bestsellers", "condition": "undercut", "tags": ["bestseller", "other"]},
    )
    run = shop.sweep(*(shop.seen(sku, c, "90.00", T0) for sku in "AB" for c in ("acme", "bolt")))
    got = sorted(fired(shop, settings, run))
    assert got == sorted(
        [
            ("acme-only", subject(shop, "A", "acme")),
            ("acme-only", subject(shop, "B", "acme")),
            ("sku-b", subject(shop, "B", "acme")),
            ("sku-b", subject(shop, "B", "bolt")),
            ("bestsellers", subject(shop, "A", "acme")),
            ("bestsellers", subject(shop, "A", "bolt")),
        ]
    )


def test_quiet_period_holds_back_a_flapping_price_per_subject(shop: Shop) -> None:
    settings = settings_with({"name": "drop", "condition": "price_drop", "quiet_period": "1h"})
    shop.sweep(shop.seen("A", "acme", "100.00", T0), shop.seen("B", "acme", "100.00", T0))
    run = shop.sweep(shop.seen("A", "acme", "90.00", T0 + STEP))
    assert fired(shop, settings, run, now=T0 + STEP) == [("drop", subject(shop, "A", "acme"))]
    shop.sweep(shop.seen("A", "acme", "100.00", T0 + 2 * STEP))
    run = shop.sweep(shop.seen("A", "acme", "85.00", T0 + 3 * STEP), shop.seen("B", "acme", "80.00", T0 + 3 * STEP))
    # A alerted 30 minutes ago: held back; B is another subject
    assert fired(shop, settings, run, now=T0 + 3 * STEP) == [("drop", subject(shop, "B", "acme"))]
    shop.sweep(shop.seen("A", "acme", "100.00", T0 + 6 * STEP))
    run = shop.sweep(shop.seen("A", "acme", "80.00", T0 + 7 * STEP))
    assert fired(shop, settings, run, now=T0 + 7 * STEP) == [("drop", subject(shop, "A", "acme"))]


def test_events_are_deduplicated_across_a_restart(sqlite_url: str) -> None:
    settings = settings_with({"name": "cheaper", "condition": "undercut"})
    shop = build_shop(sqlite_url)
    run = shop.sweep(shop.seen("A", "acme", "90.00", T0))
    assert len(evaluate_run(settings, shop.store, run, now=NOW)) == 1
    shop.store.dispose()
    restarted = open_store(sqlite_url)  # as a restarted daemon would
    try:
        assert evaluate_run(settings, restarted, run, now=NOW + timedelta(days=1)) == []
        with restarted.session() as session:
            assert session.scalar(select(func.count()).select_from(AlertEvent)) == 1
            assert session.scalar(select(func.count()).select_from(AlertDelivery)) == 1
    finally:
        restarted.dispose()


def test_disabled_rules_and_unknown_runs(shop: Shop) -> None:
    settings = settings_with({"name": "cheaper", "condition": "undercut", "enabled": False})
    run = shop.sweep(shop.seen("A", "acme", "90.00", T0))
    assert evaluate_run(settings, shop.store, run, now=NOW) == []
    with pytest.raises(NotFoundError, match="scrape run 999"):
        evaluate_run(settings_with({"name": "x", "condition": "undercut"}), shop.store, 999)


CHILD = """
import sys
from monitor.alerts import evaluate_run
from monitor.settings import load_settings
from monitor.store.database import open_store

settings = load_settings(sys.argv[1], database_url=sys.argv[2], environ={})
store = open_store(sys.argv[2])
print(len(evaluate_run(settings, store, int(sys.argv[3]))))
store.dispose()
"""


def test_dedup_holds_across_separate_processes(sqlite_url: str, write_config, tmp_path) -> None:
    config = write_config(
        """
[[alerting.channels]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:9/hook"

[[alerts]]
name = "cheaper"
condition = "undercut"
channels = ["hook"]
"""
    )
    shop = build_shop(sqlite_url)
    run = shop.sweep(shop.seen("A", "acme", "90.00", T0), shop.seen("B", "bolt", "91.00", T0))
    shop.store.dispose()

    def evaluate_in_a_new_process() -> str:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(config), sqlite_url, str(run)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert evaluate_in_a_new_process() == "2"
    assert evaluate_in_a_new_process() == "0"
