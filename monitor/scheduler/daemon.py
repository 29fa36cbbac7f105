"""The scheduler daemon: one APScheduler job per enabled competitor, signals, reloads and retries.

Each job runs a due-only sweep of its competitor in a thread of its own, so a slow shop never
delays the others, and never overlaps itself (`max_instances=1`, missed runs coalesced). The
main thread only waits for signals: SIGTERM/SIGINT stop it gracefully, SIGHUP reloads the config.

Real time: the sweep reports the listings each committed batch changed (`on_changes`); the
"reprice" thread takes them off a queue and reprices just their products at once, which applies
and sends the auto-approved prices. The `suggest_every` job stays as the catch-up; the two never
price at the same time.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from monitor.errors import ConfigError, DatabaseError, DatabaseUnavailableError, PricemonError
from monitor.scheduler.metrics import DaemonMetrics
from monitor.settings import Competitor, Settings, redact_url
from monitor.store.database import Store, open_store
from monitor.store.models import utcnow

if TYPE_CHECKING:
    from monitor.scrape.sweep import SweepSummary

logger = logging.getLogger(__name__)

SweepFunction = Callable[..., Any]
SettingsLoader = Callable[[], Settings]
SweepHook = Callable[["SweepSummary"], None]

#: errors that mean "the database is unavailable right now": retried with backoff, never fatal
DATABASE_OUTAGES: tuple[type[BaseException], ...] = (DatabaseError, OperationalError, PoolTimeoutError)
#: first wait after a database error; doubles up to scheduler.database_retry_max
FIRST_RETRY_SECONDS = 1.0
# Enough threads that every competitor can sweep at once plus the suggestions job; threads are
# only started when needed, so a generous ceiling costs nothing.
MIN_POOL_THREADS = 16
#: more changed products than this in one go: reprice the whole catalogue (one streamed query)
#: rather than name them all in the query
REPRICE_ALL_ABOVE = 5000


def _trigger(competitor: Competitor) -> BaseTrigger:
    jitter = competitor.jitter.total_seconds() or None
    if competitor.cron:
        # CronTrigger.from_crontab takes no jitter; the fields are the same it would read.
        return CronTrigger(**_cron_fields(competitor.cron), timezone="UTC", jitter=jitter)
    return IntervalTrigger(seconds=competitor.interval.total_seconds(), timezone="UTC", jitter=jitter)


def _due_horizon(competitor: Competitor, now: datetime) -> datetime:
    """Until when a listing counts as due for the sweep starting `now`.

    A sweep's checks set each listing's next check to *its* check time plus the interval, a
    moment after the job's own fire time; the next firing, exactly one interval later, then came
    a moment early, found nothing due and the listings waited a whole extra interval (every
    "10s" swept every 20 s). Whatever falls due before half-way to the next firing is this
    firing's work.
    """
    if competitor.cron:
        following = CronTrigger(**_cron_fields(competitor.cron), timezone="UTC").get_next_fire_time(None, now)
        gap = (following - now) if following is not None else competitor.interval
    else:
        gap = competitor.interval
    return now + gap / 2


def _cron_fields(expression: str) -> dict[str, str]:
    minute, hour, day, month, day_of_week = expression.split()
    return {"minute": minute, "hour": hour, "day": day, "month": month, "day_of_week": day_of_week}


def _schedule_key(competitor: Competitor) -> tuple[Any, ...]:
    """What a job's trigger depends on: a change here means the job is rescheduled."""
    return (competitor.cron, competitor.interval, competitor.jitter)


def _load_sweep() -> SweepFunction:
    try:
        from monitor.scrape.sweep import run_sweep
    except ImportError as exc:
        raise PricemonError(f"the scraping engine is not available ({exc})") from None
    return run_sweep


#: where `compute_suggestions(settings, store)` may live, first found wins
SUGGESTION_MODULES = ("monitor.pricing.workflow", "monitor.pricing.suggest")


def _load_suggestions() -> Callable[..., Any] | None:
    for name in SUGGESTION_MODULES:
        try:
            # Looked up by name: pricing is another component and may be absent from a deployment.
            module = importlib.import_module(name)
        except ImportError:
            continue
        compute = getattr(module, "compute_suggestions", None)
        if compute is not None:
            return compute
    return None


class Daemon:
    """`pricemon run`: schedules sweeps until a signal stops it.

    `sweep` is the seam to the scraper (`monitor.scrape.sweep.run_sweep` in production);
    `after_sweep_hooks` are called with each sweep's summary (alerts hang here).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        load_settings: SettingsLoader,
        sweep: SweepFunction | None = None,
    ) -> None:
        self.settings = settings
        self._load_settings = load_settings
        self._sweep = sweep
        self.stop_event = threading.Event()
        self.after_sweep_hooks: list[SweepHook] = [self._alert_after_sweep]
        self._wake = threading.Event()
        self._reload_requested = False
        self._stop_signal: str | None = None
        self._running: dict[str, float] = {}
        self._running_changed = threading.Condition()
        self._schedules: dict[str, tuple[Any, ...]] = {}
        self._suggest: Callable[..., Any] | None = None
        self._store: Store | None = None
        self._scheduler: BackgroundScheduler | None = None
        self.metrics: DaemonMetrics | None = None
        # Listings changed by committed sweep batches, waiting for the reprice thread.
        self._changed: set[int] = set()
        self._changed_lock = threading.Lock()
        self._reprice_wake = threading.Event()
        self._repricer: threading.Thread | None = None
        self._pricing_lock = threading.Lock()  # one pricing run at a time: real time or the timer
        self.reprices = 0  # completed real-time repricing runs (tests, status)

    # --- life cycle -----------------------------------------------------------------------

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; returns the exit code (0 after a graceful stop)."""
        # Handlers first: a SIGTERM while the store is being opened is a graceful stop too.
        previous = {
            signum: signal.signal(signum, self._on_signal) for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        }
        try:
            self.start()
            while self._stop_signal is None:
                # A timeout keeps the main thread responsive even where a wait is not woken by signals.
                self._wake.wait(timeout=1.0)
                self._wake.clear()
                if self._reload_requested:
                    self._reload_requested = False
                    try:
                        self.reload()
                    except Exception:  # a bug in a reload must not take the running schedule down
                        logger.exception("config reload failed; still running the previous config")
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return self.shutdown()

    def start(self) -> None:
        """Open the store and start the jobs; `run` does this and then waits for signals."""
        if self._sweep is None:
            self._sweep = _load_sweep()
        self._store = self._open_store()
        if self._store is None:
            return  # stopped while waiting for the database

        if self.settings.scheduler.metrics_port:
            self.metrics = DaemonMetrics()
            try:
                self.metrics.serve(self.settings.scheduler.metrics_host, self.settings.scheduler.metrics_port)
            except OSError as exc:
                raise ConfigError(
                    f"scheduler.metrics_port: cannot listen on "
                    f"{self.settings.scheduler.metrics_host}:{self.settings.scheduler.metrics_port}: {exc.strerror}"
                ) from None
        else:
            logger.info("metrics: off (scheduler.metrics_port is not set)")

        pool = max(MIN_POOL_THREADS, 2 * len(self.settings.competitors) + 2)
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(pool)},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
            timezone="UTC",
        )
        self._scheduler.start()
        self._apply_schedules(self.settings)
        self._schedule_suggestions(self.settings)
        self._schedule_alerts(self.settings)
        self._schedule_demand_fit(self.settings)
        self._start_repricer()
        self._schedule_discovery(self.settings)
        enabled = [c.name for c in self.settings.competitors if c.enabled]
        logger.info(
            "daemon started: database %s, %d competitor(s) scheduled: %s",
            redact_url(self.settings.database_url),
            len(enabled),
            ", ".join(enabled) or "(none)",
            extra={"pid": os.getpid()},
        )
        if not enabled:
            logger.warning("no enabled competitors in the config: nothing will be checked")
        self._update_freshness()

    def _open_store(self) -> Store | None:
        """Open the database, waiting with backoff while it is down or locked (each attempt is
        logged); a database that waiting cannot fix (read-only, unknown schema) ends the start.

        Same rule as every command: SQLite is migrated in place, other databases must have been
        upgraded with `pricemon db upgrade`, otherwise the daemon refuses to start.
        """
        from monitor.store.database import database_error
        from monitor.store.runs import close_abandoned_runs

        delay = FIRST_RETRY_SECONDS
        attempt = 0
        while self._stop_signal is None:
            attempt += 1
            store: Store | None = None
            try:
                store = open_store(self.settings.database_url)
                with store.session() as session:
                    close_abandoned_runs(session, lease_ttl=self.settings.scrape.lease_ttl)
                return store
            except (DatabaseUnavailableError, OperationalError, PoolTimeoutError) as exc:
                if store is not None:
                    store.dispose()
                error = exc if isinstance(exc, DatabaseError) else database_error(exc, "cannot start")
                if not isinstance(error, DatabaseUnavailableError):
                    raise error from None
                retry_max = self.settings.scheduler.database_retry_max.total_seconds()
                delay = min(delay, retry_max)
                logger.warning(
                    "database unavailable at start (attempt %d: %s); retrying in %gs",
                    attempt,
                    _one_line(error),
                    delay,
                    extra={"attempt": attempt, "retry_in": delay},
                )
                self._wake.wait(delay)
                self._wake.clear()
                delay = min(delay * 2, retry_max)
        return None

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        # Only flags here: the work happens in the main loop, outside the signal handler.
        if signum == signal.SIGHUP:
            self._reload_requested = True
        else:
            self._stop_signal = signal.Signals(signum).name
        self._wake.set()

    def request_stop(self, reason: str = "requested") -> None:
        """Stop the daemon from another thread (tests, embedding)."""
        self._stop_signal = reason
        self._wake.set()

    def shutdown(self) -> int:
        """Stop taking work, give sweeps in flight the grace period to commit, and return 0."""
        grace = self.settings.scheduler.grace_period.total_seconds()
        logger.info("stopping (%s): no new sweeps; waiting up to %gs for sweeps in flight", self._stop_signal, grace)
        self.stop_event.set()
        self._reprice_wake.set()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        deadline = time.monotonic() + grace
        with self._running_changed:
            while self._running and time.monotonic() < deadline:
                self._running_changed.wait(timeout=max(0.0, deadline - time.monotonic()))
            unfinished = sorted(self._running)
        if unfinished:
            logger.warning(
                "grace period of %gs over; abandoning sweeps still running: %s (their uncommitted batch is "
                "rolled back and checked again after a restart)",
                grace,
                ", ".join(unfinished),
            )
            # A big sweep shards into worker processes; stop ours, their open batch rolls back.
            for child in multiprocessing.active_children():
                child.kill()  # sweep workers ignore SIGTERM: their parent owns their stop
            for handler in logging.getLogger().handlers:
                handler.flush()
            # Worker threads of a stuck sweep are not daemon threads; the interpreter would wait
            # for them forever, so leave without running exit handlers. Committed data is safe.
            os._exit(0)
        if self._repricer is not None:
            # A repricing run in flight commits or rolls back as a whole; give it the grace period.
            self._repricer.join(timeout=max(0.0, deadline - time.monotonic()))
        # The scheduler stopped without waiting for its jobs: a suggestion run in flight holds the
        # pricing lock until it has committed. Wait for it too, or it would still be writing (and
        # logging) after "stopped cleanly", on a store disposed under it.
        if self._pricing_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            self._pricing_lock.release()
        else:
            logger.warning(
                "grace period of %gs over; abandoning the suggestion run in flight (its transaction is rolled back)",
                grace,
            )
            for handler in logging.getLogger().handlers:
                handler.flush()
            os._exit(0)
        if self.metrics is not None:
            self.metrics.close()
        if self._store is not None:
            self._store.dispose()
        logger.info("stopped cleanly")
        return 0

    def scheduled(self) -> dict[str, str]:
        """The sweep jobs now scheduled: {competitor: its trigger, as APScheduler describes it}."""
        if self._scheduler is None:
            return {}
        return {
            job.id.removeprefix("sweep:"): str(job.trigger)
            for job in self._scheduler.get_jobs()
            if job.id.startswith("sweep:")
        }

    # --- configuration --------------------------------------------------------------------

    def reload(self) -> bool:
        """Read the config again and reschedule; an invalid config is rejected and the old one kept."""
        try:
            new = self._load_settings()
        except PricemonError as exc:
            logger.error("config reload rejected, still running the previous config: %s", exc)
            return False
        if new.database_url != self.settings.database_url:
            logger.error(
                "config reload rejected: database_url changed (%s -> %s); restart the daemon to switch databases",
                redact_url(self.settings.database_url),
                redact_url(new.database_url),
            )
            return False
        self.settings = new
        self._apply_schedules(new)
        self._schedule_suggestions(new)
        self._schedule_alerts(new)
        self._schedule_demand_fit(new)
        self._schedule_discovery(new)
        logger.info("config reloaded from %s", new.source)
        return True

    def _apply_schedules(self, settings: Settings) -> None:
        """Make the scheduler's sweep jobs match the enabled competitors of `settings`."""
        assert self._scheduler is not None
        wanted = {c.name: c for c in settings.competitors if c.enabled}
        for name in list(self._schedules):
            if name not in wanted:
                self._scheduler.remove_job(f"sweep:{name}")
                del self._schedules[name]
                logger.info("competitor %s: no longer scheduled", name)
        for name, competitor in wanted.items():
            key = _schedule_key(competitor)
            job_id = f"sweep:{name}"
            if name not in self._schedules:
                self._scheduler.add_job(
                    self._sweep_job,
                    trigger=_trigger(competitor),
                    args=[name],
                    id=job_id,
                    name=f"sweep {name}",
                    # The first sweep starts at once (listings due while the daemon was down wait no
                    # longer), spread by the jitter so that many competitors do not all start together.
                    next_run_time=utcnow() + timedelta(seconds=random.uniform(0, competitor.jitter.total_seconds())),
                )
                logger.info("competitor %s: scheduled %s", name, _describe(competitor))
            elif self._schedules[name] != key:
                self._scheduler.reschedule_job(job_id, trigger=_trigger(competitor))
                logger.info("competitor %s: rescheduled %s", name, _describe(competitor))
            self._schedules[name] = key

    def _schedule_suggestions(self, settings: Settings) -> None:
        assert self._scheduler is not None
        if self._suggest is None:
            self._suggest = _load_suggestions()
            if self._suggest is None:
                logger.info("suggestions: off (no compute_suggestions in %s)", " or ".join(SUGGESTION_MODULES))
                return
        every = settings.scheduler.suggest_every.total_seconds()
        trigger = IntervalTrigger(seconds=every, timezone="UTC")
        if self._scheduler.get_job("suggest") is None:
            self._scheduler.add_job(self._suggest_job, trigger=trigger, id="suggest", name="suggestions")
            logger.info("suggestions: recomputed every %gs", every)
        else:
            self._scheduler.reschedule_job("suggest", trigger=trigger)

    def _schedule_demand_fit(self, settings: Settings) -> None:
        """Refit the demand models every `demand.fit_every`; the first fit is due one interval after
        the last stored one, so restarting the daemon does not refit each time."""
        assert self._scheduler is not None and self._store is not None
        every = settings.demand.fit_every
        trigger = IntervalTrigger(seconds=every.total_seconds(), timezone="UTC")
        job = self._scheduler.get_job("demand_fit")
        if job is not None:
            if job.trigger.interval != every:  # a reload that keeps the interval keeps the next run time
                self._scheduler.reschedule_job("demand_fit", trigger=trigger)
            return
        from monitor.demand.store import last_fitted_at

        try:
            last = last_fitted_at(self._store)
        except DATABASE_OUTAGES:
            last = None
        first = utcnow() if last is None else max(utcnow(), last + every)
        self._scheduler.add_job(
            self._demand_fit_job, trigger=trigger, id="demand_fit", name="demand fit", next_run_time=first
        )
        logger.info("demand models: refitted every %s, next at %s", every, first.isoformat(timespec="seconds"))

    def _demand_fit_job(self) -> None:
        if self.stop_event.is_set() or self._store is None:
            return
        from monitor.demand.fit import FitStopped, fit_store
        from monitor.demand.store import has_sales

        try:
            if not has_sales(self._store):
                logger.info("demand models: no sales imported yet (`pricemon import sales`); nothing to fit")
                return
            fit_store(
                self._store,
                min_observations=self.settings.demand.min_observations,
                should_stop=self.stop_event.is_set,
            )
        except FitStopped:
            logger.info("demand models: fit abandoned, the daemon is stopping")
        except DATABASE_OUTAGES as exc:
            logger.warning("demand models: database unavailable (%s); next try on schedule", _one_line(exc))
        except Exception:
            logger.exception("demand models: fitting failed")

    def _schedule_alerts(self, settings: Settings) -> None:
        """Alerts are raised after each sweep; a separate job re-sends what a channel refused, so
        an alert reaches people when the channel is back even if no sweep is due for a while."""
        assert self._scheduler is not None
        if not settings.alerts:
            if self._scheduler.get_job("alerts") is not None:
                self._scheduler.remove_job("alerts")
            logger.info("alerts: off (no [[alerts]] rules in the config)")
            return
        trigger = IntervalTrigger(seconds=settings.alerting.retry_base.total_seconds(), timezone="UTC")
        if self._scheduler.get_job("alerts") is None:
            self._scheduler.add_job(self._deliver_alerts_job, trigger=trigger, id="alerts", name="alert delivery")
            logger.info(
                "alerts: %d rule(s); undelivered alerts retried every %s",
                len(settings.alerts),
                settings.alerting.retry_base,
            )
        else:
            self._scheduler.reschedule_job("alerts", trigger=trigger)

    def _schedule_discovery(self, settings: Settings) -> None:
        """`discover_every` per competitor: find new product pages and pages that went away,
        then match them (monitor.matching)."""
        assert self._scheduler is not None
        wanted = {c.name: c.discover_every for c in settings.competitors if c.enabled and c.discover_every}
        for job in self._scheduler.get_jobs():
            if job.id.startswith("discover:") and job.id.split(":", 1)[1] not in wanted:
                self._scheduler.remove_job(job.id)
        for name, every in wanted.items():
            job_id = f"discover:{name}"
            trigger = IntervalTrigger(seconds=every.total_seconds(), timezone="UTC")
            if self._scheduler.get_job(job_id) is None:
                self._scheduler.add_job(
                    self._discover_job, trigger=trigger, args=[name], id=job_id, name=f"discover {name}"
                )
                logger.info("competitor %s: discovery every %s", name, every)
            else:
                self._scheduler.reschedule_job(job_id, trigger=trigger)
        if not wanted:
            logger.info("discovery: off (no competitor sets discover_every)")

    def _discover_job(self, name: str) -> None:
        if self.stop_event.is_set() or self._store is None:
            return
        from monitor.matching.discover import discover_competitor

        try:
            summary = discover_competitor(self._store, self.settings, name)
        except DATABASE_OUTAGES as exc:
            logger.warning("discovery of %s: database unavailable (%s); trying again next time", name, exc)
            return
        except Exception:  # one competitor's failed discovery must not stop the daemon
            logger.exception("discovery of %s failed", name)
            return
        logger.info("discovery of %s: %s", name, summary.as_dict(), extra={"competitor": name})

    def _alert_after_sweep(self, summary: SweepSummary) -> None:
        if self.settings.alerts and self._store is not None and summary.run_id is not None:
            from monitor.alerts import after_sweep

            after_sweep(self.settings, self._store, summary.run_id)

    def _deliver_alerts_job(self) -> None:
        if self.stop_event.is_set() or self._store is None or not self.settings.alerts:
            return
        from monitor.alerts import deliver_pending

        try:
            deliver_pending(self.settings, self._store)
        except DATABASE_OUTAGES as exc:
            logger.warning("alert delivery: database unavailable (%s); retrying on the next run", exc)

    # --- jobs -----------------------------------------------------------------------------

    def _sweep_job(self, name: str) -> None:
        """One scheduled sweep of competitor `name`: due listings only, retried on database outages."""
        if self.stop_event.is_set():
            return
        with self._running_changed:
            self._running[name] = time.monotonic()
        try:
            self._sweep_with_retries(name)
        except Exception:  # one competitor's bug must not take the daemon down
            logger.exception("sweep of %s failed", name, extra={"competitor": name})
            if self.metrics is not None:
                self.metrics.sweeps.labels(name, "error").inc()
        finally:
            with self._running_changed:
                self._running.pop(name, None)
                self._running_changed.notify_all()

    def _sweep_with_retries(self, name: str) -> None:
        from monitor.store.status import count_due

        assert self._sweep is not None and self._store is not None
        delay = FIRST_RETRY_SECONDS
        while not self.stop_event.is_set():
            settings = self.settings  # a reload in between swaps the whole object, never half of it
            competitor = settings.competitor(name)
            if competitor is None:
                return  # removed by a reload after this run was queued
            try:
                horizon = _due_horizon(competitor, utcnow())
                with self._store.session() as session:
                    due = count_due(session, name, now=horizon)
                if not due:
                    logger.debug("competitor %s: nothing due", name)
                    return
                started = time.monotonic()
                summary = self._sweep(
                    settings, competitors=[name], due_only=True, due_by=horizon, trigger="daemon", stop=self.stop_event,
                    on_changes=self._queue_reprice,
                )
            except DATABASE_OUTAGES as exc:
                retry_max = settings.scheduler.database_retry_max.total_seconds()
                delay = min(delay, retry_max)
                logger.warning(
                    "competitor %s: database unavailable (%s); retrying in %gs",
                    name,
                    _one_line(exc),
                    delay,
                    extra={"competitor": name, "retry_in": delay},
                )
                if self.metrics is not None:
                    self.metrics.database_errors.inc()
                self.stop_event.wait(delay)
                delay = min(delay * 2, retry_max)
                continue
            except ConfigError as exc:
                logger.error("competitor %s: sweep refused: %s", name, exc, extra={"competitor": name})
                return
            if name in getattr(summary, "skipped", {}):
                # Another process (a `pricemon scrape`, another daemon) sweeps it; next time, then.
                logger.info(
                    "competitor %s: skipped: being swept by %s",
                    name,
                    summary.skipped[name],
                    extra={"competitor": name, "run_id": summary.run_id},
                )
                return
            self._sweep_done(name, summary, time.monotonic() - started)
            return

    def _sweep_done(self, name: str, summary: SweepSummary, seconds: float) -> None:
        counts = dict(summary.competitors.get(name, {}))
        logger.info(
            "competitor %s: sweep %s: %s checked, %s changed, %s failed in %.1fs",
            name,
            summary.status,
            summary.checked,
            summary.changed,
            summary.failed,
            seconds,
            extra={"competitor": name, "run_id": summary.run_id, "counts": counts},
        )
        if self.metrics is not None:
            self.metrics.record_sweep(name, summary.status, summary.seconds, counts)
        self.after_sweep(summary)
        self._update_freshness()

    def after_sweep(self, summary: SweepSummary) -> None:
        """Called after every sweep with its `SweepSummary`: alerting hooks in here."""
        for hook in list(self.after_sweep_hooks):
            try:
                hook(summary)
            except Exception:  # a broken hook must not stop the sweeps
                logger.exception("after-sweep hook %r failed", hook)

    def _suggest_job(self) -> None:
        if self.stop_event.is_set() or self._suggest is None or self._store is None:
            return
        try:
            with self._pricing_lock:
                if self.stop_event.is_set():  # stopping began while this run waited for the lock
                    return
                self._suggest(self.settings, self._store)
        except DATABASE_OUTAGES as exc:
            logger.warning("suggestions: database unavailable (%s); next try on schedule", _one_line(exc))
        except Exception:
            logger.exception("suggestions: recomputing failed")

    # --- real-time repricing -------------------------------------------------------------

    def _start_repricer(self) -> None:
        if self._suggest is None or self._repricer is not None:
            return
        self._repricer = threading.Thread(target=self._reprice_loop, name="reprice", daemon=True)
        self._repricer.start()
        if self.settings.scheduler.reprice_on_change:
            logger.info("repricing: at once after each sweep batch that changes a competitor's price or stock")
        else:
            logger.info("repricing on change: off (scheduler.reprice_on_change = false); every %gs only",
                        self.settings.scheduler.suggest_every.total_seconds())

    def _queue_reprice(self, listing_ids: list[int]) -> None:
        """The sweep's `on_changes` hook: called in the sweep's thread, so it only queues."""
        if not self.settings.scheduler.reprice_on_change or self._suggest is None:
            return
        with self._changed_lock:
            self._changed.update(listing_ids)
        self._reprice_wake.set()

    def _reprice_loop(self) -> None:
        while not self.stop_event.is_set():
            self._reprice_wake.wait(timeout=1.0)
            self._reprice_wake.clear()
            if self.stop_event.is_set():
                return
            with self._changed_lock:
                changed, self._changed = self._changed, set()
            if changed:
                self._reprice(changed)

    def _reprice(self, listing_ids: set[int]) -> None:
        """Reprice the products of `listing_ids` now (changes queued meanwhile wait for the next round)."""
        from monitor.store.suggestions import skus_of_listings

        assert self._suggest is not None and self._store is not None
        settings = self.settings
        started = time.monotonic()
        try:
            with self._store.session() as session:
                skus = skus_of_listings(session, sorted(listing_ids))
            if not skus:
                return
            with self._pricing_lock:
                summary = self._suggest(settings, self._store, skus=skus if len(skus) <= REPRICE_ALL_ABOVE else ())
        except DATABASE_OUTAGES as exc:
            logger.warning("repricing %d changed listing(s): database unavailable (%s); the next change or the "
                           "suggest_every run catches up", len(listing_ids), _one_line(exc))
            return
        except Exception:
            logger.exception("repricing after competitor changes failed; the suggest_every run catches up")
            return
        self.reprices += 1
        logger.info(
            "repriced %d product(s) after competitor changes: %d suggested, %d auto-applied in %.2fs",
            len(skus), getattr(summary, "suggested", 0), getattr(summary, "auto_applied", 0),
            time.monotonic() - started,
            extra={"products": len(skus), "auto_applied": getattr(summary, "auto_applied", 0)},
        )

    def _update_freshness(self) -> None:
        if self.metrics is None or self._store is None:
            return
        from monitor.store.status import competitor_status

        try:
            with self._store.session() as session:
                rows = competitor_status(
                    session,
                    self.settings.competitors,
                    staleness_limit=self.settings.scheduler.staleness_limit,
                    with_last_sweep=False,
                )
        except DATABASE_OUTAGES as exc:
            logger.debug("metrics: freshness not updated: %s", _one_line(exc))
            return
        self.metrics.record_freshness(rows, time.time())
        if self.settings.cluster.broker_url:
            from monitor.store.chunks import open_chunks, workers

            try:
                with self._store.session() as session:
                    seen, chunks = workers(session), open_chunks(session)
            except DATABASE_OUTAGES as exc:
                logger.debug("metrics: cluster not updated: %s", _one_line(exc))
                return
            self.metrics.record_cluster(seen, chunks, time.time())


def _describe(competitor: Competitor) -> str:
    schedule = f"cron {competitor.cron!r}" if competitor.cron else f"every {competitor.interval.total_seconds():g}s"
    if competitor.jitter > timedelta(0):
        schedule += f" (jitter {competitor.jitter.total_seconds():g}s)"
    return schedule


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.splitlines()[0] if text else type(exc).__name__


def run_daemon(settings: Settings, *, load_settings: SettingsLoader, sweep: SweepFunction | None = None) -> int:
    """Run the daemon in the foreground until SIGTERM/SIGINT; returns the exit code."""
    return Daemon(settings, load_settings=load_settings, sweep=sweep).run()
