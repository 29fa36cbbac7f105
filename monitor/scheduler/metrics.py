"""Prometheus metrics of the daemon: checks by outcome, sweep durations, listing staleness.

Off unless `scheduler.metrics_port` is set; the metrics live in their own registry so that
several daemons in one process (tests) never collide.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

logger = logging.getLogger(__name__)

# Sweeps take from well under a second (nothing due) to minutes (a full catalogue).
_SWEEP_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, float("inf"))


class DaemonMetrics:
    """The daemon's metrics and, once `serve` is called, the HTTP endpoint exposing them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.checks = Counter(
            "pricemon_checks",
            "Listing checks by competitor and outcome.",
            ["competitor", "outcome"],
            registry=self.registry,
        )
        self.sweeps = Counter(
            "pricemon_sweeps",
            "Scheduled sweeps by competitor and final status (finished, interrupted, failed, error).",
            ["competitor", "status"],
            registry=self.registry,
        )
        self.sweep_seconds = Histogram(
            "pricemon_sweep_duration_seconds",
            "Duration of scheduled sweeps.",
            ["competitor"],
            buckets=_SWEEP_BUCKETS,
            registry=self.registry,
        )
        self.staleness = Gauge(
            "pricemon_listing_staleness_seconds",
            "Seconds since the competitor's least recently successful listing was last checked successfully.",
            ["competitor"],
            registry=self.registry,
        )
        self.listings = Gauge(
            "pricemon_listings",
            "Active listings by competitor and state (fresh, stale, failing).",
            ["competitor", "state"],
            registry=self.registry,
        )
        self.database_errors = Counter(
            "pricemon_database_errors",
            "Times a scheduled job found the database unavailable and retried.",
            registry=self.registry,
        )
        # The cluster's workers, read from the database (so one endpoint covers every machine).
        self.worker_chunks = Gauge(
            "pricemon_worker_chunks",
            "Chunks a cluster worker has finished, by state (done, failed), since it started.",
            ["worker", "state"],
            registry=self.registry,
        )
        self.worker_listings = Gauge(
            "pricemon_worker_listings_checked",
            "Listings a cluster worker has checked since it started.",
            ["worker"],
            registry=self.registry,
        )
        self.worker_seen = Gauge(
            "pricemon_worker_seen_seconds",
            "Seconds since a cluster worker's last heartbeat.",
            ["worker"],
            registry=self.registry,
        )
        self.cluster_chunks = Gauge(
            "pricemon_cluster_chunks",
            "Cluster chunks still open, by state (queued, running).",
            ["state"],
            registry=self.registry,
        )
        self._server: Any = None

    def serve(self, host: str, port: int) -> None:
        """Expose the metrics on http://host:port/metrics (in a background thread)."""
        started = start_http_server(port, addr=host, registry=self.registry)
        # prometheus-client >= 0.17 returns (server, thread); keep the server to close it.
        self._server = started[0] if isinstance(started, tuple) else None
        logger.info("metrics: serving Prometheus metrics on http://%s:%d/metrics", host, port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def record_sweep(self, competitor: str, status: str, seconds: float, counts: Mapping[str, Any]) -> None:
        self.sweeps.labels(competitor, status).inc()
        self.sweep_seconds.labels(competitor).observe(seconds)
        for outcome, n in counts.items():
            if outcome != "seconds" and isinstance(n, int) and n:
                self.checks.labels(competitor, outcome).inc(n)

    def record_freshness(self, rows: Iterable[Any], now_seconds: float) -> None:
        """Update the staleness gauges from `competitor_status` rows."""
        for row in rows:
            oldest = row.oldest_success_at
            if oldest is not None:
                self.staleness.labels(row.name).set(max(0.0, now_seconds - oldest.timestamp()))
            for state in ("fresh", "stale", "failing"):
                self.listings.labels(row.name, state).set(getattr(row, state))

    def record_cluster(
        self, workers: Iterable[Any], open_chunks: Iterable[Mapping[str, Any]], now_seconds: float
    ) -> None:
        """Update the cluster gauges from `cluster_workers` rows and `open_chunks()` entries."""
        for worker in workers:
            self.worker_chunks.labels(worker.name, "done").set(worker.chunks_done)
            self.worker_chunks.labels(worker.name, "failed").set(worker.chunks_failed)
            self.worker_listings.labels(worker.name).set(worker.listings_checked)
            self.worker_seen.labels(worker.name).set(max(0.0, now_seconds - worker.seen_at.timestamp()))
        totals = {"queued": 0, "running": 0}
        for entry in open_chunks:
            totals["queued"] += int(entry["queued"])
            totals["running"] += int(entry["running"])
        for state, n in totals.items():
            self.cluster_chunks.labels(state).set(n)
