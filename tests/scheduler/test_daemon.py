"""`pricemon run` as users run it: a real process on a one-second schedule against a local shop."""

from __future__ import annotations

import itertools
import json
import signal
import sqlite3
import time
import urllib.request
from pathlib import Path

import pytest

from tests.scheduler.conftest import (
    PriceShop,
    competitor_block,
    config_text,
    free_port,
    query,
    set_database_open,
    wait_for,
)


def seed(pricemon_cli, config: Path, tmp_path: Path, shop: PriceShop, listings: dict[str, list[str]]) -> None:
    """Our products and the competitors' listings of them: {competitor: [sku, ...]}, all at 10.00."""
    skus = sorted({sku for names in listings.values() for sku in names})
    products = tmp_path / "products.csv"
    products.write_text("sku,name,price,currency\n" + "".join(f"{s},Kettle {s},10.00,EUR\n" for s in skus))
    rows = tmp_path / "listings.csv"
    rows.write_text(
        "sku,competitor,url\n"
        + "".join(f"{sku},{name},{shop.url(sku)}\n" for name, names in listings.items() for sku in names)
    )
    pricemon = pricemon_cli(config)
    pricemon("import", "products", str(products))
    pricemon("import", "listings", str(rows))
    for sku in skus:
        shop.prices.setdefault(sku, "10.00")


def observed(db: Path, competitor: str | None = None) -> int:
    """Listings that have at least one history row."""
    sql = (
        "SELECT count(*) FROM listings l JOIN competitors c ON c.id = l.competitor_id "
        "WHERE l.latest_history_id IS NOT NULL"
    )
    if competitor is None:
        return query(db, sql)[0][0]
    return query(db, sql + " AND c.name = ?", competitor)[0][0]


def latest_price(db: Path, sku: str, competitor: str = "alpha") -> float | None:
    rows = query(
        db,
        "SELECT h.price FROM listings l JOIN products p ON p.id = l.product_id "
        "JOIN competitors c ON c.id = l.competitor_id JOIN price_history h ON h.id = l.latest_history_id "
        "WHERE p.sku = ? AND c.name = ?",
        sku,
        competitor,
    )
    return rows[0][0] if rows else None


def assert_history_consistent(db: Path) -> None:
    """Nothing half-written: pointers land on rows, no duplicated states, no run left open."""
    dangling = query(
        db,
        "SELECT l.id FROM listings l LEFT JOIN price_history h ON h.id = l.latest_history_id "
        "WHERE l.latest_history_id IS NOT NULL AND (h.id IS NULL OR h.listing_id != l.id)",
    )
    assert dangling == [], f"listings pointing at missing history rows: {dangling}"
    not_newest = query(
        db,
        "SELECT l.id FROM listings l WHERE l.latest_history_id IS NOT NULL AND l.latest_history_id != "
        "(SELECT h.id FROM price_history h WHERE h.listing_id = l.id ORDER BY h.observed_at DESC, h.id DESC LIMIT 1)",
    )
    assert not_newest == [], f"latest_history_id is not the newest row for listings {not_newest}"
    orphans = query(
        db,
        "SELECT h.id FROM price_history h LEFT JOIN listings l ON l.id = h.listing_id WHERE l.id IS NULL "
        "UNION ALL SELECT h.id FROM price_history h LEFT JOIN scrape_runs r ON r.id = h.run_id "
        "WHERE h.run_id IS NOT NULL AND r.id IS NULL",
    )
    assert orphans == [], f"history rows without their listing or run: {orphans}"
    history = query(
        db, "SELECT listing_id, price, currency, in_stock FROM price_history ORDER BY listing_id, observed_at, id"
    )
    for before, after in itertools.pairwise(history):
        assert before != after, f"two consecutive identical states stored for listing {before[0]}: {before}"
    open_runs = query(db, "SELECT id, status FROM scrape_runs WHERE status = 'running' OR finished_at IS NULL")
    assert open_runs == [], f"scrape runs left open: {open_runs}"


def test_daemon_records_observations_and_changes_then_stops_cleanly(
    tmp_path, shop, write_config, pricemon_cli, start_daemon
) -> None:
    db = tmp_path / "pricemon.db"
    port = free_port()
    config = write_config(
        config_text(
            db,
            competitor_block("alpha", shop),
            scheduler=f"metrics_port = {port}\nstaleness_limit = '1h'\nsuggest_every = '1s'",
        )
    )
    seed(pricemon_cli, config, tmp_path, shop, {"alpha": ["K1", "K2", "K3", "GONE"]})
    del shop.prices["GONE"]  # answers 404: a failing listing for `pricemon status`

    daemon = start_daemon(config, "--log-format", "json")
    wait_for(lambda: observed(db) == 3, "the three pages to be observed", daemon=daemon)
    assert latest_price(db, "K1") == 10.0

    shop.prices["K1"] = "9.49"
    wait_for(lambda: latest_price(db, "K1") == 9.49, "the price change of K1 to be recorded", daemon=daemon)

    # After sweeps, the suggestions job prices our product against the new lowest offer.
    wait_for(
        lambda: query(
            db,
            "SELECT s.suggested_price FROM suggestions s JOIN products p ON p.id = s.product_id "
            "WHERE p.sku = 'K1' AND s.suggested_price < 10",
        ),
        "a suggestion for K1 after its competitor's price fell",
        daemon=daemon,
    )

    status = pricemon_cli(config)("status", "--json")
    report = status.json()
    assert report["healthy"] is True
    (alpha,) = report["competitors"]
    assert alpha["listings"] == {"total": 4, "fresh": 3, "stale": 0, "failing": 1}
    assert alpha["last_sweep"]["trigger"] == "daemon"
    assert [item["sku"] for item in alpha["failing_longest"]] == ["GONE"]
    assert alpha["failing_longest"][0]["last_outcome"] == "gone"

    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert 'pricemon_checks_total{competitor="alpha",outcome="changed"}' in metrics
    assert 'pricemon_sweep_duration_seconds_count{competitor="alpha"}' in metrics
    assert 'pricemon_listing_staleness_seconds{competitor="alpha"}' in metrics

    assert daemon.stop() == 0
    assert_history_consistent(db)
    # K1 went 10.00 -> 9.49: exactly two states, however many checks saw each of them.
    k1 = query(
        db,
        "SELECT h.price FROM price_history h JOIN listings l ON l.id = h.listing_id "
        "JOIN products p ON p.id = l.product_id WHERE p.sku = 'K1' ORDER BY h.observed_at",
    )
    assert k1 == [(10.0,), (9.49,)]
    assert query(db, "SELECT count(*) FROM scrape_runs WHERE trigger = 'daemon'")[0][0] >= 2
    lines = [json.loads(line) for line in daemon.log.splitlines() if line.strip()]
    messages = [entry["message"] for entry in lines]
    assert any(m.startswith("daemon started") for m in messages), messages
    assert any("sweep finished" in m for m in messages), messages
    assert messages[-1] == "stopped cleanly"


def test_sigkill_mid_sweep_then_restart_keeps_history_consistent(
    tmp_path, shop, write_config, pricemon_cli, start_daemon
) -> None:
    db = tmp_path / "pricemon.db"
    skus = [f"S{i:02d}" for i in range(12)]
    # One request at a time, slow pages, small batches: a sweep stays in flight for seconds.
    config = write_config(
        config_text(db, competitor_block("alpha", shop, extra="max_concurrency = 1"), scrape="batch_size = 2")
    )
    seed(pricemon_cli, config, tmp_path, shop, {"alpha": skus})
    shop.delay = 0.25

    first = start_daemon(config)
    wait_for(lambda: 2 <= observed(db) < len(skus), "a first batch of a sweep to commit", daemon=first)
    first.signal(signal.SIGKILL)
    first.process.wait(timeout=10)
    killed_runs = query(db, "SELECT id FROM scrape_runs WHERE status = 'running'")
    assert killed_runs, "the SIGKILL was meant to land in the middle of a sweep"
    assert observed(db) < len(skus)

    shop.delay = 0.0
    shop.prices["S00"] = "12.00"  # a change that the restarted daemon has to record on top
    second = start_daemon(config)
    wait_for(lambda: observed(db) == len(skus), "the restarted daemon to pick up the rest", daemon=second)
    wait_for(lambda: latest_price(db, "S00") == 12.0, "the change after the restart", daemon=second)
    assert second.stop() == 0

    assert_history_consistent(db)
    killed_ids = {row[0] for row in killed_runs}
    runs = query(db, "SELECT id, status FROM scrape_runs")
    statuses = {run_id: status for run_id, status in runs if run_id in killed_ids}
    assert set(statuses.values()) == {"interrupted"}
    assert "left running by a process that is gone" in second.log


def test_daemon_survives_a_locked_database_and_catches_up(
    tmp_path, shop, write_config, pricemon_cli, start_daemon
) -> None:
    db = tmp_path / "pricemon.db"
    config = write_config(config_text(db, competitor_block("alpha", shop)))
    seed(pricemon_cli, config, tmp_path, shop, {"alpha": ["K1", "K2"]})
    daemon = start_daemon(config)
    wait_for(lambda: observed(db) == 2, "the first observations", daemon=daemon)

    lock = sqlite3.connect(db, isolation_level=None, timeout=30)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        shop.prices["K2"] = "7.77"
        time.sleep(3)  # the daemon's sweeps now wait for the lock (or fail and retry)
        assert daemon.alive(), daemon.log
        assert latest_price(db, "K2") == 10.0  # nothing could be written while the lock was held
    finally:
        lock.execute("ROLLBACK")
        lock.close()

    wait_for(lambda: latest_price(db, "K2") == 7.77, "the daemon to catch up after the lock", daemon=daemon)
    assert daemon.stop() == 0
    assert_history_consistent(db)


def test_daemon_survives_a_postgresql_outage_and_catches_up(
    tmp_path, shop, write_config, pricemon_cli, start_daemon, outage_postgres_url
) -> None:
    from sqlalchemy import create_engine, text

    url = outage_postgres_url
    config = write_config(config_text(url, competitor_block("alpha", shop)))
    pricemon_cli(config)("db", "upgrade")
    seed(pricemon_cli, config, tmp_path, shop, {"alpha": ["K1", "K2"]})
    price_sql = text(
        "SELECT h.price FROM listings l JOIN products p ON p.id = l.product_id "
        "JOIN price_history h ON h.id = l.latest_history_id WHERE p.sku = :sku"
    )

    def price_of(sku: str) -> object:
        engine = create_engine(url)
        try:
            with engine.connect() as connection:
                return connection.execute(price_sql, {"sku": sku}).scalar()
        finally:
            engine.dispose()

    def finished_runs() -> int:
        engine = create_engine(url)
        try:
            with engine.connect() as connection:
                return int(connection.execute(text("SELECT count(*) FROM scrape_runs WHERE status = 'finished'"))
                           .scalar() or 0)
        finally:
            engine.dispose()

    daemon = start_daemon(config)
    wait_for(lambda: price_of("K2") is not None, "the first observations", daemon=daemon)
    # The outage starts after the first sweep is closed: one that lands between a sweep's last
    # commit and its close leaves its lease held until lease_ttl (60 s), longer than this test
    # waits. The repricing that follows the first observations made that window wide enough to hit.
    wait_for(finished_runs, "the first sweep to be closed", daemon=daemon)

    set_database_open(url, False)
    try:
        shop.prices["K2"] = "7.77"
        wait_for(lambda: "database unavailable" in daemon.log, "the daemon to notice the outage", daemon=daemon)
        time.sleep(1.5)  # a few retries with backoff while the database stays away
        assert daemon.alive(), daemon.log
    finally:
        set_database_open(url, True)

    wait_for(lambda: str(price_of("K2")) == "7.7700", "the daemon to catch up after the outage", daemon=daemon)
    assert daemon.stop() == 0
    assert "Traceback" not in daemon.log


def test_sighup_adds_a_competitor_and_an_invalid_config_keeps_the_old_one(
    tmp_path, shop, write_config, pricemon_cli, start_daemon
) -> None:
    db = tmp_path / "pricemon.db"
    both = write_config(
        config_text(db, competitor_block("alpha", shop), competitor_block("beta", shop)), name="both.toml"
    )
    seed(pricemon_cli, both, tmp_path, shop, {"alpha": ["K1"], "beta": ["K2"]})
    config = write_config(config_text(db, competitor_block("alpha", shop)))

    daemon = start_daemon(config)
    wait_for(lambda: observed(db, "alpha") == 1, "alpha to be observed", daemon=daemon)
    assert observed(db, "beta") == 0

    config.write_text(both.read_text())
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: observed(db, "beta") == 1, "beta to be swept after the reload", daemon=daemon)
    assert "competitor beta: scheduled every 1s" in daemon.log

    config.write_text(config_text(db, competitor_block("alpha", shop, every="soon")))
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: "config reload rejected" in daemon.log, "the rejected reload to be logged", daemon=daemon)
    rejection = daemon.log.split("config reload rejected", 1)[1]
    assert "competitors[0].every" in rejection and "'soon'" in rejection
    # The previous config (alpha and beta, every second) keeps running.
    shop.prices["K2"] = "11.00"
    wait_for(lambda: latest_price(db, "K2", "beta") == 11.0, "beta to be swept on the old config", daemon=daemon)
    assert daemon.stop() == 0
    assert_history_consistent(db)


def test_sigterm_gives_up_after_the_grace_period_and_still_exits_0(
    tmp_path, shop, write_config, pricemon_cli, start_daemon
) -> None:
    db = tmp_path / "pricemon.db"
    config = write_config(config_text(db, competitor_block("alpha", shop), grace_period="1s"))
    seed(pricemon_cli, config, tmp_path, shop, {"alpha": ["K1", "K2"]})
    daemon = start_daemon(config)
    # Wait for the first sweep to be closed, not just for its batch: a lock taken between the two
    # would strand that sweep too, and this test is about the one SIGTERM finds in flight.
    wait_for(
        lambda: observed(db) == 2 and query(db, "SELECT count(*) FROM scrape_runs WHERE finished_at IS NOT NULL")[0][0],
        "the first sweep to finish",
        daemon=daemon,
    )

    lock = sqlite3.connect(db, isolation_level=None, timeout=30)
    try:
        # The next sweep cannot write while the lock is held, so it is still in flight when
        # SIGTERM arrives and stays stuck beyond the grace period.
        lock.execute("BEGIN EXCLUSIVE")
        time.sleep(2.5)
        assert daemon.stop(timeout=25) == 0
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert "grace period of 1s over; abandoning sweeps still running: alpha" in daemon.log
    # A sweep abandoned while the database was locked could not close its run; the next start does.
    # That daemon sweeps at once too, and is stopped at once: with the 1 s grace period a loaded
    # machine made it abandon its own new sweep, leaving that run open. It gets the usual grace
    # period, so the only run it may not close is one it could not recover.
    config.write_text(config_text(db, competitor_block("alpha", shop)))
    again = start_daemon(config)
    wait_for(lambda: "daemon started" in again.log, "the daemon to start again", daemon=again)
    assert again.stop() == 0
    assert "abandoning" not in again.log and "stopped cleanly" in again.log, again.log
    assert_history_consistent(db)


def test_run_refuses_a_postgresql_database_without_the_schema(
    tmp_path, write_config, request: pytest.FixtureRequest
) -> None:
    from tests.conftest import _fresh_postgres_schema, run_pricemon

    url = _fresh_postgres_schema(request.getfixturevalue("postgres_database"))
    config = write_config('[[competitors]]\nname = "alpha"\nbase_url = "http://127.0.0.1:9"\n')
    result = run_pricemon("--config", str(config), "--database-url", url, "run", cwd=tmp_path, timeout=60)
    assert result.returncode == 1
    assert "run `pricemon db upgrade`" in result.stderr
    assert "Traceback" not in result.stderr


def test_each_competitor_is_swept_every_interval(tmp_path, shop, write_config, pricemon_cli, start_daemon) -> None:
    """`every = "2s"` sweeps every 2 s, not every 4 s: a firing takes what falls due a moment
    after it (each check schedules its listing from its own check time, just after the firing)."""
    db = tmp_path / "pricemon.db"
    config = write_config(config_text(db, competitor_block("alpha", shop, every="2s")))
    seed(pricemon_cli, config, tmp_path, shop, {"alpha": ["K1", "K2"]})

    daemon = start_daemon(config)
    runs = "SELECT count(*) FROM scrape_runs WHERE trigger = 'daemon' AND checked > 0"
    wait_for(lambda: query(db, runs)[0][0] >= 1, "the first sweep", daemon=daemon)
    time.sleep(11)
    swept = query(db, runs)[0][0]
    assert daemon.stop() == 0
    # 1 at the start, then at 2, 4, 6, 8, 10 s: 6 (the bug gave 3); 5 leaves room for a slow machine.
    assert swept >= 5, f"{swept} sweeps in 11 s with every = 2s\n{daemon.log}"
