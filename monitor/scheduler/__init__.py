"""The `pricemon run` daemon: APScheduler jobs that sweep each competitor on its own schedule."""

from __future__ import annotations

from monitor.scheduler.daemon import Daemon, run_daemon

__all__ = ["Daemon", "run_daemon"]
