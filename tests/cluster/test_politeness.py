"""A competitor's politeness holds across the whole cluster: its lease lets one worker at a time
send it requests, and the hand-over between workers keeps its spacing."""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.conftest import Cluster
from tests.cluster.test_workers import assert_checked_once
from tests.reliability.conftest import CountingShop


class WatchedShop(CountingShop):
    """A counting shop that also records, per competitor (/p/<competitor>/...), when each request
    arrived and how many it served at once."""

    def __init__(self) -> None:
        super().__init__()
        self.delay = 0.05
        self.arrivals: dict[str, list[float]] = defaultdict(list)
        self.in_flight: Counter[str] = Counter()
        self.most_in_flight: Counter[str] = Counter()
        watched = self
        handler = self.server.RequestHandlerClass
        serve = handler.do_GET  # type: ignore[attr-defined]

        def do_get(request: Any) -> None:
            competitor = request.path.split("/")[2]
            with watched._lock:
                watched.arrivals[competitor].append(time.time())
                watched.in_flight[competitor] += 1
                watched.most_in_flight[competitor] = max(
                    watched.most_in_flight[competitor], watched.in_flight[competitor]
                )
            try:
                serve(request)
            finally:
                with watched._lock:
                    watched.in_flight[competitor] -= 1

        handler.do_GET = do_get  # type: ignore[attr-defined]


@pytest.fixture
def shop() -> Iterator[CountingShop]:
    server = WatchedShop()
    yield server
    server.close()


def test_three_workers_keep_one_competitors_concurrency_and_rate(cluster: Cluster) -> None:
    listings = {"careful": 60, "other": 40}
    config = cluster.write(listings, concurrency=2, cluster="chunk_size = 10\n")
    # `careful` asks for at most 2 requests at once and 100 ms between two starts.
    text = config.read_text()
    head, _, tail = text.partition('name = "careful"')
    config.write_text(head + 'name = "careful"' + tail.replace('min_delay = "0s"', 'min_delay = "100ms"', 1))
    for _ in range(3):
        cluster.start_worker()
    cluster.wait_for_workers(3)

    result = cluster.scrape("--json")
    assert result.returncode == 0, result.stderr + cluster.logs()
    assert_checked_once(cluster, json.loads(result.stdout), listings)
    shop = cluster.shop
    assert isinstance(shop, WatchedShop)
    careful = sorted(shop.arrivals["careful"])
    assert len(careful) == 60
    assert shop.most_in_flight["careful"] <= 2, shop.most_in_flight
    # Never more than 10 request starts in any one second.
    most = max(sum(1 for u in careful if t <= u < t + 1.0) for t in careful)
    assert most <= 10, most
    # Chunks of `careful` were run by several workers, one after another.
    chunks = cluster.chunk_rows("careful")
    assert len({worker for worker, _, _ in chunks}) >= 2, chunks
    spans = sorted((started, finished) for _, started, finished in chunks)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), spans
