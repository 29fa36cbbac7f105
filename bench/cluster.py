"""`bench/run --cluster N`: the same full and unchanged sweeps through N local `pricemon worker`s
(Celery on this machine's RabbitMQ, every worker writing to the one PostgreSQL database).

Each worker is its own `pricemon worker --concurrency 1` process (a Celery main process and one pool
process running chunks on the sweep's event loop), on a queue of the run's own, deleted afterwards.
`pricemon scrape --json` enqueues the chunks and waits for them, as a user's would. A step's CPU
seconds are the scrape process's plus what the workers' process trees used while it ran (psutil,
read just before and after), so CPU per page counts everything the cluster spent on the sweep.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

logger = logging.getLogger(__name__)

#: the environment variable the generated config names in `broker_password_env`
PASSWORD_ENV = "PRICEMON_BENCH_BROKER_PASSWORD"
WORKER_START_TIMEOUT_S = 60.0


def cluster_config(amqp_url: str, queue: str) -> str:
    """The [cluster] table appended to a run's pricemon.toml (the password stays in the environment)."""
    return (
        "\n[cluster]\n"
        f'broker_url = "{amqp_url}"\n'
        f'broker_password_env = "{PASSWORD_ENV}"\n'
        f'queue = "{queue}"\n'
        'wait_timeout = "1h"\n'
    )


def tree_cpu_seconds(processes: list[subprocess.Popen[bytes]]) -> float:
    """User + system seconds used so far by these processes and their live descendants."""
    total = 0.0
    for process in processes:
        try:
            root = psutil.Process(process.pid)
            members = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for member in members:
            try:
                times = member.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
    return total


def count_workers(database_url: str) -> int:
    from sqlalchemy import text

    from monitor.store.database import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM cluster_workers")).scalar_one())
    except Exception:  # the table appears with the schema; until then, none
        return 0
    finally:
        engine.dispose()


@contextmanager
def local_workers(
    count: int,
    command: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    database_url: str,
    password: str,
    log_dir: Path,
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start `count` workers (`command` is `pricemon --config ... --database-url ...`), wait until each
    has written its heartbeat, and stop them all (SIGTERM, then SIGKILL) however the block ends."""
    workers: list[subprocess.Popen[bytes]] = []
    env = {**env, PASSWORD_ENV: password}
    try:
        for index in range(count):
            with (log_dir / f"worker-{index}.log").open("wb") as log:
                workers.append(
                    subprocess.Popen(
                        [*command, "worker", "--concurrency", "1"],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        env=env,
                        cwd=cwd,
                        start_new_session=True,
                    )
                )
        deadline = time.monotonic() + WORKER_START_TIMEOUT_S
        while count_workers(database_url) < count:
            dead = [w for w in workers if w.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = "\n".join(
                    (log_dir / f"worker-{i}.log").read_text(errors="replace")[-1000:] for i in range(count)
                )
                raise RuntimeError(f"{count} workers did not all start within {WORKER_START_TIMEOUT_S:.0f} s:\n{logs}")
            time.sleep(0.5)
        # Celery's consumer starts after the heartbeat thread: give the pool a moment to attach.
        time.sleep(3)
        logger.info("%d workers up", count)
        yield workers
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()


def delete_queue(amqp_url: str, password: str, queue: str) -> None:
    from urllib.parse import urlsplit, urlunsplit

    from kombu import Connection

    parts = urlsplit(amqp_url)
    netloc = f"{parts.username or 'guest'}:{password}@{parts.netloc.rpartition('@')[2]}"
    try:
        with Connection(urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))) as connection:
            connection.default_channel.queue_delete(queue)
    except Exception as exc:  # informative only: the queue is the run's own and empty
        logger.warning("could not delete queue %s: %s", queue, exc)
