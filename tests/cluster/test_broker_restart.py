"""RabbitMQ restarted in the middle of a sweep: the workers reconnect and the sweep finishes,
with nothing lost and nothing doubled (a broker the test starts itself, never the machine's)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.conftest import Cluster, PrivateBroker
from tests.reliability.conftest import CountingShop, history_problems, sql, start_pricemon, wait_for


@pytest.fixture
def cluster(
    tmp_path: Path, private_broker: PrivateBroker, cluster_database: str, shop: CountingShop
) -> Iterator[Cluster]:
    world = Cluster(tmp_path, private_broker.url, cluster_database, shop)
    yield world
    world.close()


def test_workers_reconnect_to_a_restarted_broker_and_finish_the_sweep(
    cluster: Cluster, private_broker: PrivateBroker
) -> None:
    listings = {"north": 160, "south": 160}
    total = sum(listings.values())
    cluster.write(listings, concurrency=2, cluster="chunk_size = 40\n", scrape="batch_size = 20\n")
    cluster.start_worker()
    cluster.start_worker()
    cluster.wait_for_workers(2)
    cluster.shop.delay = 0.02
    sweep = start_pricemon(cluster.config, "scrape", "--json", cwd=cluster.tmp_path)  # type: ignore[arg-type]
    wait_for(
        lambda: sql(cluster.database_url, "SELECT count(*) FROM cluster_chunks WHERE state = 'done'")[0][0] >= 1,
        "a first chunk done",
        timeout=60,
    )
    private_broker.stop()
    time.sleep(2)
    private_broker.start()
    out, err = sweep.communicate(timeout=120)
    assert sweep.returncode == 0, err + cluster.logs()
    summary = json.loads(out)
    assert summary["status"] == "finished", summary
    assert summary["checked"] == total and summary["changed"] == total, summary
    run_id = summary["run_id"]
    assert sql(cluster.database_url, "SELECT count(*) FROM listings WHERE last_run_id = :r", r=run_id)[0][0] == total
    assert sql(cluster.database_url, "SELECT count(*) FROM price_history")[0][0] == total
    assert history_problems(cluster.database_url) == []
    assert len(cluster.shop.requests) == total
    # The workers are still there, connected to the broker that came back.
    assert all(worker.poll() is None for worker in cluster.workers)
