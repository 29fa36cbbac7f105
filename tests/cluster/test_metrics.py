"""The cluster's workers on the daemon's Prometheus endpoint, read from the database."""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import generate_latest

from monitor.scheduler.metrics import DaemonMetrics
from monitor.store.chunks import (
    add_chunk_counts,
    claim_chunk,
    create_chunks,
    finish_chunk,
    heartbeat_worker,
    open_chunks,
    workers,
)
from monitor.store.database import open_store
from monitor.store.models import utcnow
from monitor.store.runs import start_run


def test_worker_metrics_come_from_the_workers_rows(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        with store.session() as session:
            run_id = start_run(session, trigger="cli", competitors=["acme"])
            first, second, third = create_chunks(session, run_id, "acme", list(range(1, 8)), 3)
            heartbeat_worker(session, name="w1@host", host="host", pid=1, concurrency=2, started_at=utcnow())
        with store.session() as session:
            claim = claim_chunk(session, first, worker="w1@host", holder="run:1@host:2", max_attempts=3)
            assert claim is not None and claim.action == "run" and claim.listing_ids == (1, 2, 3)
            add_chunk_counts(session, first, {"changed": 2, "timeout": 1})
            finish_chunk(session, first, state="done", worker="w1@host", seconds=1.5)
            claim_chunk(session, second, worker="w1@host", holder="run:1@host:2", max_attempts=3)
            finish_chunk(session, second, state="failed", worker="w1@host", seconds=0.1, error="boom")
        with store.session() as session:
            metrics = DaemonMetrics()
            metrics.record_cluster(workers(session), open_chunks(session), time.time())
        text = generate_latest(metrics.registry).decode()
        assert 'pricemon_worker_chunks{state="done",worker="w1@host"} 1.0' in text
        assert 'pricemon_worker_chunks{state="failed",worker="w1@host"} 1.0' in text
        assert 'pricemon_worker_listings_checked{worker="w1@host"} 3.0' in text
        assert 'pricemon_cluster_chunks{state="queued"} 1.0' in text  # the third chunk
        assert third
    finally:
        store.dispose()


def test_a_chunk_delivered_too_often_fails_for_good_with_the_reason(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        with store.session() as session:
            run_id = start_run(session, trigger="cli", competitors=["acme"])
            (chunk,) = create_chunks(session, run_id, "acme", [1, 2], 10)
        for _ in range(2):  # two deliveries whose worker died before finishing
            with store.session() as session:
                claim = claim_chunk(session, chunk, worker="w@h", holder="run:1@h:9", max_attempts=2)
                assert claim is not None and claim.action == "run"
        with store.session() as session:
            claim = claim_chunk(session, chunk, worker="w@h", holder="run:1@h:9", max_attempts=2)
            assert claim is not None and claim.action == "gave_up"
        from monitor.store.chunks import run_progress

        with store.session() as session:
            progress = run_progress(session, run_id)
        assert progress.open == 0
        assert progress.errors and "gave up after 2 deliveries" in progress.errors[0]
    finally:
        store.dispose()
