"""One sweep per competitor at a time, across processes: `pricemon scrape` twice at once, beside the
daemon, and `record_checks` with two writers racing on the same listings."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tests.reliability.conftest import history_problems, pricemon, sql, start_pricemon, wait_for, write_world


def _json(process: subprocess.Popen[str], timeout: float = 90) -> tuple[dict, str]:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    return json.loads(out), err


def test_two_scrapes_at_once_sweep_each_competitor_once(tmp_path, shop, database_url) -> None:
    config = write_world(tmp_path, database_url, shop, {"alpha": 20, "beta": 20}, concurrency=2)
    assert pricemon(config, "scrape", cwd=tmp_path).returncode == 0  # every listing at 10.00
    shop.price, shop.delay = "12.00", 0.05  # a change both sweeps would record; each takes a while
    before = shop.total

    first = start_pricemon(config, "scrape", "--json", cwd=tmp_path)
    second = start_pricemon(config, "scrape", "--json", cwd=tmp_path)
    (one, one_err), (two, two_err) = _json(first), _json(second)

    # Every listing was fetched once: each competitor by one of the two runs.
    assert shop.total - before == 40
    swept = {name: run["run_id"] for run in (one, two) for name, counts in run["competitors"].items() if counts}
    assert sorted(swept) == ["alpha", "beta"]
    for run, err in ((one, one_err), (two, two_err)):
        for name, holder in run["skipped"].items():
            assert holder.startswith(f"run {swept[name]} (host "), holder
            assert f"pricemon: skipped {name}: it is being swept by run {swept[name]}" in err
    assert len(one["skipped"]) + len(two["skipped"]) == 2
    assert history_problems(database_url) == []
    assert sql(database_url, "SELECT count(*) FROM price_history")[0][0] == 80  # 10.00 and 12.00, once each
    # The leases were given back.
    assert sql(database_url, "SELECT count(*) FROM sweep_leases")[0][0] == 0


def test_scrape_beside_the_daemon_never_sweeps_the_same_competitor(tmp_path, shop, database_url) -> None:
    config = write_world(tmp_path, database_url, shop, {"alpha": 12}, every="1s", concurrency=1)
    shop.delay = 0.1  # a sweep of alpha takes ~1.2 s
    log = tmp_path / "daemon.log"
    daemon = start_pricemon(config, "run", cwd=tmp_path, log=log)
    try:
        wait_for(lambda: "sweep" in log.read_text() and shop.total > 0, "the daemon's first sweep")
        outcomes = []
        for price in ("11.00", "12.00", "13.00", "14.00"):
            shop.price = price
            result = pricemon(config, "scrape", "--json", cwd=tmp_path)
            assert result.returncode == 0, result.stderr
            outcomes.append(json.loads(result.stdout))
            if len(outcomes) >= 2 and any(run["skipped"] for run in outcomes):
                break
        # Where the daemon held alpha, scrape said so and which run it was.
        skipped = [run["skipped"]["alpha"] for run in outcomes if run["skipped"]]
        assert all(held.startswith("run ") for held in skipped)
        assert skipped, "scrape never met the daemon's sweep: the test did not test anything"
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert history_problems(database_url) == []
    # One sweep at a time: no listing was ever fetched by two sweeps at once, so each run's checks
    # of alpha are no more than its listings.
    for (checked,) in sql(database_url, "SELECT checked FROM scrape_runs"):
        assert checked <= 12


def test_record_checks_stays_right_when_two_writers_race_on_a_listing(tmp_path, shop, database_url) -> None:
    from monitor.store.database import open_store
    from monitor.store.history import CheckResult, record_checks
    from monitor.store.models import Listing

    write_world(tmp_path, database_url, shop, {"alpha": 100})
    store = open_store(database_url)
    try:
        with store.session() as session:
            ids = list(session.scalars(Listing.__table__.select().with_only_columns(Listing.id)))
        start = datetime.now(UTC)
        for round_ in range(3):
            # Both writers see the same new price for every listing at the same moment: one new
            # state each, whoever commits first; the other finds it already there.
            price = Decimal(f"{20 + round_}.00")
            at = start + timedelta(seconds=round_)
            gate = threading.Barrier(2)
            errors: list[BaseException] = []

            def write(
                offset: float, price: Decimal = price, at: datetime = at, gate: threading.Barrier = gate,
                errors: list[BaseException] = errors,
            ) -> None:
                results = [
                    CheckResult(i, "observed", at + timedelta(milliseconds=offset), price, "EUR", True) for i in ids
                ]
                try:
                    gate.wait()
                    with store.session() as session:
                        record_checks(session, results, run_id=None, interval=timedelta(hours=1))
                except BaseException as exc:  # reported below
                    errors.append(exc)

            threads = [threading.Thread(target=write, args=(offset,)) for offset in (0, 1)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert errors == []
    finally:
        store.dispose()
    assert history_problems(database_url) == []
    assert sql(database_url, "SELECT count(*) FROM price_history")[0][0] == 3 * 100


def test_a_held_competitor_is_skipped_or_waited_for_and_an_expired_lease_is_taken_over(
    tmp_path, shop, database_url
) -> None:
    from sqlalchemy import update

    from monitor.store.database import open_store
    from monitor.store.leases import Holder, renew, try_acquire
    from monitor.store.models import SweepLease

    config = write_world(tmp_path, database_url, shop, {"alpha": 3}, scrape='lease_ttl = "2s"')
    store = open_store(database_url)
    elsewhere = Holder(run_id=4242, host="another-machine", pid=7)
    try:
        with store.session() as session:
            assert try_acquire(session, "alpha", elsewhere, timedelta(minutes=5)).holder == elsewhere.id

        skipped = pricemon(config, "scrape", "--json", cwd=tmp_path)
        assert skipped.returncode == 0, skipped.stderr
        assert json.loads(skipped.stdout)["status"] == "skipped"
        assert "pricemon: skipped alpha: it is being swept by run 4242 (host another-machine, pid 7)" in skipped.stderr
        assert shop.total == 0
        assert sql(database_url, "SELECT status FROM scrape_runs") == [("skipped",)]

        log = tmp_path / "wait.log"
        waiting = start_pricemon(config, "scrape", "--wait", "--json", cwd=tmp_path, log=log)
        wait_for(lambda: "waiting for alpha: it is being swept by run 4242" in log.read_text(), "scrape to wait")
        assert shop.total == 0
        # The other machine stops renewing (it crashed) and its lease runs out: --wait takes it.
        with store.session() as session:
            session.execute(update(SweepLease).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        out, _ = waiting.communicate(timeout=60)
        assert waiting.returncode == 0, log.read_text()
        assert json.loads(out)["checked"] == 3
        assert shop.total == 3
        # The crashed holder cannot get it back by renewing.
        with store.session() as session:
            assert not renew(session, "alpha", elsewhere, timedelta(seconds=3))
    finally:
        store.dispose()
    assert sql(database_url, "SELECT count(*) FROM sweep_leases")[0][0] == 0


def test_a_lease_of_a_dead_process_on_this_machine_is_free_at_once(tmp_path, shop, database_url) -> None:
    import sys

    from monitor.store.database import open_store
    from monitor.store.leases import Holder, try_acquire

    config = write_world(tmp_path, database_url, shop, {"alpha": 2})
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = Holder.this_process(run_id=None)
    dead = Holder(run_id=99, host=dead.host, pid=int(gone.stdout))
    store = open_store(database_url)
    try:
        with store.session() as session:
            assert try_acquire(session, "alpha", dead, timedelta(hours=1)).holder == dead.id
    finally:
        store.dispose()
    result = pricemon(config, "scrape", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["checked"] == 2


def test_a_lost_lease_stops_its_holder(database_url) -> None:
    from sqlalchemy import update

    from monitor.store.database import open_store
    from monitor.store.leases import Holder, LeaseKeeper, lease_of, try_acquire
    from monitor.store.models import SweepLease

    store = open_store(database_url, migrate=True)
    lost = threading.Event()
    stalled = Holder(run_id=1, host="machine-a", pid=10)
    other = Holder(run_id=2, host="machine-b", pid=20)
    keeper = LeaseKeeper(store, stalled, timedelta(seconds=1), on_lost=lambda _name: lost.set())
    try:
        assert keeper.acquire(["alpha"]) == {}
        assert keeper.held == ["alpha"]
        # The holder stalled past its expiry (its heartbeat did not get through) and another
        # sweep took the competitor over, all in one transaction so no heartbeat slips between.
        with store.session() as session:
            session.execute(update(SweepLease).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
            assert try_acquire(session, "alpha", other, timedelta(minutes=1)).holder == other.id
        assert lost.wait(10), "the heartbeat did not notice the lease was taken over"
        assert keeper.held == []
    finally:
        keeper.release()
    with store.session() as session:
        lease = lease_of(session, "alpha")
        assert lease is not None and lease.holder == other.id  # releasing did not free the new holder's lease
    store.dispose()
