"""Alerts: rules raise events from what a sweep recorded; channels deliver them, grouped and retried.

Call `after_sweep(settings, store, run_id)` once a sweep's run is finished: it raises that run's
alerts and sends everything that is due (including earlier alerts whose channel was down).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from monitor.alerts.delivery import deliver_pending, retry_delay, send_test
from monitor.alerts.rules import RaisedAlert, evaluate_run
from monitor.settings import Settings
from monitor.store.database import Store

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SweepAlerts:
    raised: list[RaisedAlert]
    delivered: Counter[str]


def after_sweep(
    settings: Settings,
    store: Store,
    run_id: int,
    *,
    now: datetime | None = None,
    environ: Mapping[str, str] | None = None,
) -> SweepAlerts:
    """Raise the alerts of sweep `run_id`, then deliver whatever is due.

    Never raises for a channel problem: failed deliveries are kept and retried on a later call.
    """
    if not settings.alerts:
        logger.debug("alerts: no [[alerts]] rules configured, alerting is off")
        return SweepAlerts([], Counter())
    raised = evaluate_run(settings, store, run_id, now=now)
    delivered = deliver_pending(settings, store, now=now, environ=environ)
    return SweepAlerts(raised, delivered)


__all__ = ["RaisedAlert", "SweepAlerts", "after_sweep", "deliver_pending", "evaluate_run", "retry_delay", "send_test"]
