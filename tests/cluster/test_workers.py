"""Sweeps through real `pricemon worker` processes: each listing checked once, nothing doubled."""

from __future__ import annotations

import json

import pytest

from tests.cluster.conftest import Cluster
from tests.reliability.conftest import history_problems, sql


def _checked_in_run(database_url: str, run_id: int) -> int:
    return sql(database_url, "SELECT count(*) FROM listings WHERE last_run_id = :r", r=run_id)[0][0]


@pytest.mark.parametrize("workers", [2, 3])
def test_a_sweep_on_workers_checks_every_listing_once(cluster: Cluster, workers: int) -> None:
    listings = {"north": 300, "south": 300, "east": 250}
    cluster.write(listings, cluster='chunk_size = 100\n')
    for _ in range(workers):
        cluster.start_worker()
    cluster.wait_for_workers(workers)

    result = cluster.scrape("--json")
    assert result.returncode == 0, result.stderr + cluster.logs()
    summary = json.loads(result.stdout)
    total = sum(listings.values())
    assert summary["status"] == "finished" and summary["checked"] == total
    assert {name: sum(v for k, v in c.items() if k != "seconds") for name, c in summary["competitors"].items()} == listings
    # Every page asked for exactly once, and every listing's latest check is this run's.
    assert len(cluster.shop.requests) == total and set(cluster.shop.requests.values()) == {1}
    assert _checked_in_run(cluster.database_url, summary["run_id"]) == total
    assert history_problems(cluster.database_url) == []
    assert sql(cluster.database_url, "SELECT count(*) FROM price_history")[0][0] == total
    # The chunks are spread over the workers, and each says so in its totals.
    ran = sql(cluster.database_url, "SELECT worker, count(*) FROM cluster_chunks GROUP BY worker")
    assert len(ran) >= 2, ran
    done = sql(cluster.database_url, "SELECT sum(chunks_done), sum(listings_checked) FROM cluster_workers")[0]
    assert tuple(done) == (9, total)
