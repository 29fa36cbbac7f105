"""Real-time repricing, end to end: `pricemon run` as a subprocess sweeping a local shop every 2 s,
auto-approved prices sent to a local webhook; the page change -> feed message latency is timed."""

from __future__ import annotations

from pathlib import Path

from bench.realtime import TARGET_P95_S, measure


def test_a_competitor_change_reaches_the_feed_within_seconds(tmp_path: Path) -> None:
    latency = measure(tmp_path, changes=6, products=2, every="2s", timeout=30)
    assert latency.missed == 0, latency.log
    p95 = latency.percentile(0.95)
    assert p95 is not None and p95 <= TARGET_P95_S, (latency.seconds, latency.log)
    # suggest_every is an hour: only the repricing on change can have sent these.
    assert "repriced 1 product(s) after competitor changes" in latency.log


def test_without_reprice_on_change_only_the_timer_would_answer(tmp_path: Path) -> None:
    latency = measure(tmp_path, changes=1, products=1, every="2s", timeout=8, reprice_on_change=False)
    assert latency.missed == 1 and latency.seconds == []
    assert "repricing on change: off" in latency.log
