"""`pricemon status`: freshness per competitor, failing listings, and the exit code health checks use."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from monitor.store.database import open_store
from monitor.store.history import CheckResult, record_checks
from monitor.store.models import Listing, Product, utcnow
from monitor.store.runs import finish_run, start_run


def make_config(write_config, staleness: str, *, beta_enabled: bool = True) -> Path:
    return write_config(
        f"""
[scheduler]
staleness_limit = "{staleness}"

[[competitors]]
name = "alpha"
base_url = "http://127.0.0.1:9"
every = "1m"

[[competitors]]
name = "beta"
base_url = "http://127.0.0.1:9"
enabled = {str(beta_enabled).lower()}

[[competitors]]
name = "gamma"
base_url = "http://127.0.0.1:9"
"""
    )


def seed_checks(pricemon_cli, config: Path, database_url: str, tmp_path: Path) -> None:
    """alpha: A1 checked fine 10 minutes ago, A2 failing, A3 never checked; beta: B1 fine 2 hours ago."""
    pricemon = pricemon_cli(config, database_url)
    pricemon("db", "upgrade")
    products = tmp_path / "products.csv"
    products.write_text("sku,name,price,currency\nA1,a,10,EUR\nA2,b,10,EUR\nA3,c,10,EUR\nB1,d,10,EUR\n")
    listings = tmp_path / "listings.csv"
    listings.write_text(
        "sku,competitor,url\n"
        "A1,alpha,http://127.0.0.1:9/a1\nA2,alpha,http://127.0.0.1:9/a2\nA3,alpha,http://127.0.0.1:9/a3\n"
        "B1,beta,http://127.0.0.1:9/b1\n"
    )
    pricemon("import", "products", str(products))
    pricemon("import", "listings", str(listings))
    store = open_store(database_url)
    now = utcnow()
    try:
        with store.session() as session:
            ids = {
                sku: listing_id
                for sku, listing_id in session.execute(
                    select(Product.sku, Listing.id).join(Listing, Listing.product_id == Product.id)
                )
            }
            run_id = start_run(session, trigger="daemon", competitors=["alpha"])

            def check(sku: str, outcome: str, age: timedelta) -> CheckResult:
                price = Decimal("9.99") if outcome == "observed" else None
                return CheckResult(
                    ids[sku], outcome, now - age, price=price, currency="EUR" if price else None, in_stock=True,
                    error=None if price else "404 Not Found",
                )

            record_checks(
                session,
                [check("A1", "observed", timedelta(minutes=10)), check("A2", "gone", timedelta(minutes=10))],
                run_id=run_id,
                interval=timedelta(minutes=1),
            )
            finish_run(session, run_id, counts={"alpha": {"changed": 1, "gone": 1, "seconds": 0.5}})
            record_checks(session, [check("B1", "observed", timedelta(hours=2))], run_id=None, interval=timedelta(1))
    finally:
        store.dispose()


def test_status_reports_freshness_and_failing_listings(
    database_url, tmp_path, write_config, pricemon_cli
) -> None:
    config = make_config(write_config, "1h", beta_enabled=False)
    seed_checks(pricemon_cli, config, database_url, tmp_path)

    out = pricemon_cli(config, database_url)("status", "--json")
    report = out.json()
    assert report["healthy"] is True
    by_name = {c["name"]: c for c in report["competitors"]}
    alpha = by_name["alpha"]
    assert alpha["listings"] == {"total": 3, "fresh": 1, "stale": 1, "failing": 1}
    assert alpha["last_sweep"]["status"] == "finished"
    assert alpha["last_sweep"]["counts"]["gone"] == 1
    assert [f["sku"] for f in alpha["failing_longest"]] == ["A2"]
    assert alpha["failing_longest"][0]["last_outcome"] == "gone"
    assert alpha["failing_longest"][0]["last_error"] == "404 Not Found"
    # A3 was never checked, so alpha is due right now.
    assert alpha["next_due_at"] == report["now"]
    # beta is stale (2 hours) but disabled: it is shown and does not fail the health check.
    assert by_name["beta"]["enabled"] is False and by_name["beta"]["listings"]["stale"] == 1
    assert by_name["beta"]["healthy"] is True
    assert by_name["gamma"]["listings"]["total"] == 0 and by_name["gamma"]["last_sweep"] is None

    table = pricemon_cli(config, database_url)("status")
    assert "alpha" in table.stdout and "failing longest" in table.stdout and "A2" in table.stdout


def test_status_exits_2_when_an_enabled_competitor_is_stale(
    database_url, tmp_path, write_config, pricemon_cli
) -> None:
    config = make_config(write_config, "1h")
    seed_checks(pricemon_cli, config, database_url, tmp_path)

    out = pricemon_cli(config, database_url)("status", "--json", expect=2)
    report = out.json()
    assert report["healthy"] is False
    assert {c["name"]: c["healthy"] for c in report["competitors"]} == {"alpha": True, "beta": False, "gamma": True}
    assert "unhealthy" in out.stderr and "beta" in out.stderr and "alpha" not in out.stderr

    # Ten minutes without a success is too long under a five-minute limit: alpha fails too.
    strict = make_config(write_config, "5m", beta_enabled=False)
    out = pricemon_cli(strict, database_url)("status", expect=2)
    assert "alpha" in out.stderr


def test_status_on_an_empty_database_is_healthy(sqlite_url, write_config, pricemon_cli) -> None:
    config = make_config(write_config, "1h")
    report = pricemon_cli(config, sqlite_url)("status", "--json").json()
    assert report["healthy"] is True
    assert [c["listings"]["total"] for c in report["competitors"]] == [0, 0, 0]
