"""One bad value never stops a batch: hostile prices from real pages on 127.0.0.1, bad amounts in
CSV imports and settings, and a row the database itself refuses, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from monitor.store.database import open_store
from monitor.store.history import CheckResult, record_batch
from monitor.store.models import Listing, PriceHistory, utcnow
from tests.scrape.conftest import Shop, jsonld_page, microdata_page
from tests.scrape.test_sweep import SCRAPE, by_sku, competitor_block, setup_catalog


@pytest.fixture
def shop() -> Iterator[Shop]:
    server = Shop()
    yield server
    server.close()


def raw_jsonld(price_json: str) -> str:
    """A JSON-LD page whose price is written as given: a JSON number like 1e308 stays one."""
    block = (
        '{"@context": "https://schema.org", "@type": "Product", "name": "Kettle", "offers": '
        f'{{"@type": "Offer", "price": {price_json}, "priceCurrency": "EUR"}}}}'
    )
    return f'<html><head><script type="application/ld+json">{block}</script></head><body>Kettle</body></html>'


def opengraph_page(amount: str) -> str:
    return (
        f'<html><head><meta property="product:price:amount" content="{amount}">'
        '<meta property="product:price:currency" content="EUR"></head><body>Kettle</body></html>'
    )


HOSTILE = {
    "NUM308": (raw_jsonld("1e308"), "exponent notation"),
    "DIGITS": (raw_jsonld(json.dumps("9" * 400)), "above the largest amount"),
    "EXP5": (jsonld_page("1e5"), "exponent notation"),
    "TENDIG": (jsonld_page("12345678901"), "above the largest amount"),
    "MICRO": (microdata_page("1E+308"), "exponent notation"),
    "OG": (opengraph_page("99999999999.50"), "above the largest amount"),
    "PLACES": (jsonld_page("19.99999"), "more than 4 decimal places"),
}
GOOD = {"G1": "19.99", "G2": "9999999999.9999", "G3": "0.50", "G4": "1299.00", "G5": "7.25"}


def test_hostile_prices_fail_their_own_listing_and_the_rest_of_the_batch_is_recorded(
    tmp_path, shop, pricemon_cli, write_config, database_url
) -> None:
    for sku, (page, _) in HOSTILE.items():
        shop.pages[f"/p/{sku}"] = page
    for sku, price in GOOD.items():
        shop.pages[f"/p/{sku}"] = jsonld_page(price)
    # Hostile and good listings interleaved, batches of 4: every batch holds both kinds.
    skus = [s for pair in zip(HOSTILE, [*GOOD, "", ""], strict=True) for s in pair if s]
    config = write_config(SCRAPE + competitor_block("acme", shop))
    pricemon = pricemon_cli(config, database_url)
    pricemon("db", "upgrade")
    setup_catalog(tmp_path, pricemon, [(sku, "acme", shop.url(f"/p/{sku}")) for sku in skus])

    summary = pricemon("scrape", "--json").json()

    assert summary["status"] == "finished"
    assert summary["checked"] == len(skus)
    rows = by_sku(pricemon)
    for sku, price in GOOD.items():
        assert rows[sku]["last_outcome"] == "changed", rows[sku]
        assert Decimal(rows[sku]["price"]) == Decimal(price)
    for sku, (_, reason) in HOSTILE.items():
        assert rows[sku]["last_outcome"] == "invalid_price", rows[sku]
        assert reason in rows[sku]["last_error"], rows[sku]
        assert rows[sku]["price"] is None
        assert len(rows[sku]["last_error"]) < 200  # the 400 digits are not copied into the error
    store = open_store(database_url)
    try:
        with store.session() as session:
            assert session.scalar(select(func.count()).select_from(PriceHistory)) == len(GOOD)
    finally:
        store.dispose()
    # A second sweep finds the same: nothing is retried for ever, nothing new is written.
    again = pricemon("scrape", "--json").json()
    assert again["status"] == "finished"
    assert by_sku(pricemon)["EXP5"]["consecutive_failures"] == 2


def test_a_check_the_database_refuses_fails_its_listing_and_the_rest_are_stored(database_url) -> None:
    """The pre-checks of record_checks do not know every value a database refuses; whatever
    slips past them costs its own listing (`store_error`), not the other checks of its batch."""
    store = open_store(database_url, migrate=True)
    try:
        with store.session() as session:
            from monitor.store.models import Competitor, Product

            products = [Product(sku=f"K{n}", name="Kettle", currency="EUR", price=Decimal("20.00")) for n in range(4)]
            competitor = Competitor(name="acme", base_url="http://127.0.0.1/")
            session.add_all([*products, competitor])
            session.flush()
            listings = [
                Listing(product_id=product.id, competitor_id=competitor.id, url=f"http://127.0.0.1/p/{product.sku}")
                for product in products
            ]
            session.add_all(listings)
            session.flush()
            ids = [listing.id for listing in listings]
        now = utcnow()
        results = [
            CheckResult(ids[0], "observed", now, price=Decimal("19.99"), currency="EUR", in_stock=True),
            # A value no column type accepts: the Boolean column refuses it while binding.
            CheckResult(ids[1], "observed", now, price=Decimal("5.00"), currency="EUR", in_stock="yes"),  # type: ignore[arg-type]
            CheckResult(ids[2], "observed", now, price=Decimal("1E+308"), currency="EUR", in_stock=True),
            CheckResult(ids[3], "observed", now, price=Decimal("7.00"), currency="EUR", in_stock=False),
        ]
        recorded = record_batch(store.session, results, run_id=None, interval=timedelta(hours=1))

        assert recorded.outcomes == {"changed": 2, "store_error": 1, "invalid_price": 1}
        assert recorded.rows_inserted == 2
        with store.session() as session:
            state = {row.id: row for row in session.scalars(select(Listing).order_by(Listing.id))}
            prices = dict(session.execute(select(PriceHistory.listing_id, PriceHistory.price)).all())
        assert prices == {ids[0]: Decimal("19.99"), ids[3]: Decimal("7.00")}
        assert state[ids[1]].last_outcome == "store_error"
        assert "the database refused this check" in (state[ids[1]].last_error or "")
        assert state[ids[2]].last_outcome == "invalid_price"
        assert state[ids[0]].latest_history_id is not None and state[ids[0]].consecutive_failures == 0
    finally:
        store.dispose()


def test_csv_amounts_outside_the_money_range_are_refused_by_file_and_line(tmp_path, pricemon_cli, database_url) -> None:
    huge = "9" * 400
    products = tmp_path / "products.csv"
    products.write_text(
        "sku,name,price,currency,cost,min_price,max_price,map_price\n"
        "OK,Fine,19.99,EUR,,,,\n"
        "A,Exp,1e5,EUR,,,,\n"
        f"B,Digits,19.99,EUR,{huge},,,\n"
        "C,Nan,19.99,EUR,,NaN,,\n"
        "D,Ten digits,19.99,EUR,,,12345678901,\n"
        "E,Inf,19.99,EUR,,,,Infinity\n"
        "F,Places,10.12345,EUR,,,,\n",
        encoding="utf-8",
    )
    pricemon = pricemon_cli(None, database_url)
    pricemon("db", "upgrade")
    out = pricemon("import", "products", str(products), expect=1)
    assert "Traceback" not in out.stderr
    for line, field in [(3, "price"), (4, "cost"), (5, "min_price"), (6, "max_price"), (7, "map_price"), (8, "price")]:
        assert f"products.csv:{line}: {field}:" in out.stderr
    assert "nothing imported" in out.stderr
    assert pricemon("products", "--json").json() == []
    # The largest amount the store holds is an amount.
    products.write_text("sku,name,price,currency\nMAX,Max,9999999999.9999,EUR\n", encoding="utf-8")
    pricemon("import", "products", str(products))
    assert [p["price"] for p in pricemon("products", "--json").json()] == ["9999999999.9999"]


@pytest.mark.parametrize(
    ("amount", "reason"),
    [('"1e5"', "exponent notation"), ("1e308", "above the largest amount"), ("-1", "negative"), ("nan", "finite")],
)
def test_an_alert_amount_outside_the_money_range_is_a_config_error(write_config, pricemon_cli, amount, reason) -> None:
    config = write_config(
        '[[alerting.channels]]\nname = "w"\ntype = "webhook"\nurl = "http://127.0.0.1:9/"\n'
        f'[[alerts]]\nname = "cheap"\ncondition = "undercut"\nchannels = ["w"]\namount = {amount}\n'
    )
    out = pricemon_cli(config)("config", "check", expect=None)
    assert out.exit_code != 0
    assert "alerts[0].amount" in out.stderr and reason in out.stderr
    assert "Traceback" not in out.stderr


def test_the_daemon_records_a_competitors_other_listings_beside_hostile_prices(
    tmp_path, write_config, pricemon_cli
) -> None:
    """`pricemon run` as a real process: the hostile listings fail on their own, the good ones
    are recorded, and the daemon goes on sweeping instead of retrying one batch for ever."""
    from tests.scheduler.conftest import Daemon, PriceShop, config_text, query, wait_for
    from tests.scheduler.conftest import competitor_block as daemon_competitor
    from tests.scheduler.test_daemon import seed

    shop = PriceShop()
    db = tmp_path / "pricemon.db"
    daemon = None
    try:
        config = write_config(config_text(db, daemon_competitor("alpha", shop), scrape="batch_size = 3"))
        skus = ["K1", "BAD308", "K2", "DIGITS", "K3", "EXP5", "K4"]
        seed(pricemon_cli, config, tmp_path, shop, {"alpha": skus})
        shop.prices.update({"BAD308": "1e308", "DIGITS": "9" * 400, "EXP5": "1e5"})
        daemon = Daemon(config, tmp_path)

        def outcomes() -> dict[str, tuple[str, int]]:
            rows = query(
                db,
                "SELECT p.sku, l.last_outcome, l.consecutive_failures FROM listings l "
                "JOIN products p ON p.id = l.product_id",
            )
            return {sku: (outcome, failures) for sku, outcome, failures in rows}

        # Two sweeps at least (every = 1s): the good listings stay recorded, the bad ones keep failing.
        wait_for(lambda: outcomes().get("EXP5", ("", 0))[1] >= 2, "two sweeps of the hostile listings", daemon=daemon)
        state = outcomes()
        hostile = ("BAD308", "DIGITS", "EXP5")
        assert {sku: state[sku][0] for sku in hostile} == dict.fromkeys(hostile, "invalid_price")
        assert all(state[sku] in (("unchanged", 0), ("changed", 0)) for sku in ("K1", "K2", "K3", "K4")), state
        assert query(db, "SELECT count(*) FROM price_history")[0][0] == 4
        assert daemon.stop() == 0
        assert "Traceback" not in daemon.log
    finally:
        if daemon is not None and daemon.alive():
            daemon.kill()
        shop.close()
