"""`pricemon worker`: a Celery worker whose pool processes run chunks, and its heartbeat row.

The pool is Celery's prefork pool, one process per core by default; each process runs its chunk
on the sweep's own event loop (monitor.scrape.sweep.sweep_chunk), dies with the worker (even a
SIGKILLed one: its lease is then free at once and its message redelivered), and opens its own
database engine. The main process says it is alive every `cluster.heartbeat` in `cluster_workers`.
"""

from __future__ import annotations

import logging
import os
import threading

from celery.signals import worker_process_init
from sqlalchemy.exc import SQLAlchemyError

from monitor.cluster import tasks
from monitor.cluster.app import make_app
from monitor.errors import ConfigError
from monitor.redact import redact_url
from monitor.settings import Settings
from monitor.store.database import open_store
from monitor.store.leases import this_host
from monitor.store.models import utcnow

logger = logging.getLogger(__name__)


def node_name() -> str:
    """This worker's name, unique per process and machine (Celery's name@host form)."""
    return f"pricemon-{os.getpid()}@{this_host()}"


def run_worker(settings: Settings, *, concurrency: int | None = None, log_level: str = "INFO") -> int:
    """Run a worker until SIGTERM/SIGINT (Celery's warm shutdown: chunks running finish)."""
    if not settings.cluster.broker_url:
        raise ConfigError("pricemon worker needs [cluster] broker_url (the RabbitMQ that sweeps send chunks through)")
    processes = concurrency or os.cpu_count() or 1
    name = node_name()
    app = make_app(settings)
    tasks.configure(settings, name)
    tasks.register(app)
    parent = os.getpid()

    @worker_process_init.connect(weak=False)
    def _pool_process_init(**_kwargs: object) -> None:
        from monitor.scrape.sweep import prepare_worker_process

        prepare_worker_process(parent)

    stop = threading.Event()
    beat = threading.Thread(
        target=_heartbeat, args=(settings, name, processes, stop), name="worker-heartbeat", daemon=True
    )
    beat.start()
    logger.info(
        "worker %s: %d processes on queue %s at %s",
        name,
        processes,
        settings.cluster.queue,
        redact_url(settings.cluster.broker_url),
    )
    argv = [
        "worker",
        f"--concurrency={processes}",
        "--pool=prefork",
        f"--hostname={name}",
        f"--queues={settings.cluster.queue}",
        f"--loglevel={log_level}",
        "--without-gossip",
        "--without-mingle",
    ]
    try:
        app.worker_main(argv)
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) else 1
    finally:
        stop.set()
        beat.join(timeout=5)
    return 0


def _heartbeat(settings: Settings, name: str, concurrency: int, stop: threading.Event) -> None:
    from monitor.store.chunks import heartbeat_worker

    started = utcnow()
    store = open_store(settings.database_url, migrate=False)
    interval = settings.cluster.heartbeat.total_seconds()
    try:
        while True:
            try:
                with store.session() as session:
                    heartbeat_worker(
                        session,
                        name=name,
                        host=this_host(),
                        pid=os.getpid(),
                        concurrency=concurrency,
                        started_at=started,
                    )
            except SQLAlchemyError as exc:
                logger.warning("worker heartbeat: database unavailable (%s)", str(exc).splitlines()[0][:200])
            if stop.wait(interval):
                return
    finally:
        store.dispose()
