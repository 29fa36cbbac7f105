"""Sweeps through real `pricemon worker` processes: each listing checked once, nothing doubled."""

from __future__ import annotations

import json
import os
import signal
from typing import Any

from tests.cluster.conftest import Cluster
from tests.reliability.conftest import history_problems, pricemon, sql, start_pricemon, wait_for


def _checked_in_run(database_url: str, run_id: int) -> int:
    return sql(database_url, "SELECT count(*) FROM listings WHERE last_run_id = :r", r=run_id)[0][0]


def assert_checked_once(cluster: Cluster, summary: dict[str, Any], listings: dict[str, int]) -> None:
    """The sweep checked every listing exactly once, and stored one state per listing that changed."""
    total = sum(listings.values())
    assert summary["status"] == "finished" and summary["checked"] == total, summary
    assert {
        name: sum(v for k, v in c.items() if k != "seconds") for name, c in summary["competitors"].items()
    } == listings
    assert len(cluster.shop.requests) == total and set(cluster.shop.requests.values()) == {1}
    assert _checked_in_run(cluster.database_url, summary["run_id"]) == total
    assert history_problems(cluster.database_url) == []
    assert (
        sql(cluster.database_url, "SELECT count(*) FROM price_history WHERE run_id = :r", r=summary["run_id"])[0][0]
        == total
    )
    # More than one worker took part.
    ran = sql(
        cluster.database_url, "SELECT count(DISTINCT worker) FROM cluster_chunks WHERE run_id = :r", r=summary["run_id"]
    )
    assert ran[0][0] >= 2, ran


def test_a_worker_killed_mid_sweep_loses_and_doubles_nothing(cluster: Cluster) -> None:
    listings = {"north": 200, "south": 200}
    total = sum(listings.values())
    cluster.write(listings, concurrency=2, cluster="chunk_size = 100\n", scrape="batch_size = 20\n")
    cluster.start_worker()
    cluster.start_worker()
    cluster.wait_for_workers(2)
    first = cluster.scrape("--json")
    assert first.returncode == 0, first.stderr + cluster.logs()
    assert_checked_once(cluster, json.loads(first.stdout), listings)
    done = sql(cluster.database_url, "SELECT sum(chunks_done), sum(listings_checked) FROM cluster_workers")[0]
    assert tuple(done) == (4, total)

    # The second sweep sees new prices, so each listing must get exactly one new state.
    cluster.shop.price = "12.00"
    cluster.shop.delay = 0.05
    cluster.shop.requests.clear()
    sweep = start_pricemon(cluster.config, "scrape", "--json", cwd=cluster.tmp_path)  # type: ignore[arg-type]
    # `pricemon status` shows the workers, the chunks open and who holds each competitor.
    wait_for(
        lambda: sql(cluster.database_url, "SELECT 1 FROM cluster_chunks WHERE state = 'running' AND run_id = 2"),
        "a chunk running",
        timeout=60,
    )
    status = pricemon(cluster.config, "status", "--json", cwd=cluster.tmp_path)  # type: ignore[arg-type]
    shown = json.loads(status.stdout)["cluster"]
    assert len(shown["workers"]) == 2
    assert [chunk for chunk in shown["chunks"] if chunk["run_id"] == 2], shown
    assert shown["leases"] and {lease["competitor"] for lease in shown["leases"]} <= set(listings), shown
    victim = wait_for(
        lambda: sql(
            cluster.database_url,
            "SELECT worker FROM cluster_chunks WHERE state = 'running' AND run_id = 2 "
            "AND counts::text LIKE '%changed%' ORDER BY id LIMIT 1",
        ),
        "a chunk half stored",
        timeout=60,
    )[0][0]
    pid = int(victim.split("@")[0].removeprefix("pricemon-"))
    os.kill(pid, signal.SIGKILL)
    out, err = sweep.communicate(timeout=120)
    assert sweep.returncode == 0, err + cluster.logs()
    summary = json.loads(out)
    assert summary["status"] == "finished"
    assert summary["checked"] == total and summary["changed"] == total, summary
    # Nothing lost: every listing's latest check is this run's; nothing doubled: one new state each.
    assert _checked_in_run(cluster.database_url, summary["run_id"]) == total
    assert (
        sql(cluster.database_url, "SELECT count(*) FROM price_history WHERE run_id = :r", r=summary["run_id"])[0][0]
        == total
    )
    assert history_problems(cluster.database_url) == []
    assert len(cluster.shop.requests) == total
    # Asked again at most for the checks in flight when the worker died (its uncommitted batch).
    assert sum(cluster.shop.requests.values()) - total <= 2 * 20
    redelivered = sql(cluster.database_url, "SELECT count(*) FROM cluster_chunks WHERE run_id = 2 AND attempts > 1")
    assert redelivered[0][0] >= 1
