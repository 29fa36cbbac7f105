"""The world of the cluster tests: the machine's RabbitMQ (a queue of the test's own), a fresh
PostgreSQL schema, a counting shop on 127.0.0.1 and real `pricemon worker` processes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.conftest import _fresh_postgres_schema
from tests.reliability.conftest import CountingShop, pricemon, sql, start_pricemon, wait_for, write_world

AMQP_ENV = "PRICEMON_TEST_AMQP_URL"
#: the variable the test configs name in `broker_password_env` (not PRICEMON_*: the helpers
#: strip those from the environment of the processes they start)
PASSWORD_ENV = "CLUSTER_TEST_BROKER_PASSWORD"


@pytest.fixture
def amqp_url() -> str:
    url = os.environ.get(AMQP_ENV)
    if not url:
        pytest.skip(f"{AMQP_ENV} is not set; cluster tests need RabbitMQ (e.g. amqp://guest:guest@127.0.0.1:5672//)")
    return url


@pytest.fixture
def cluster_database(postgres_database: str) -> str:
    return _fresh_postgres_schema(postgres_database)


def split_password(url: str) -> tuple[str, str]:
    """(the URL without its password, the password): configs keep the password out of the file."""
    parts = urlsplit(url)
    password = parts.password or ""
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or "guest"
    return urlunsplit((parts.scheme, f"{user}@{host}", parts.path, parts.query, parts.fragment)), password


class Cluster:
    """A config with a [cluster] section on a queue of its own, and the workers started on it."""

    def __init__(self, tmp_path: Path, amqp_url: str, database_url: str, shop: CountingShop) -> None:
        self.tmp_path = tmp_path
        self.amqp_url = amqp_url
        self.database_url = database_url
        self.shop = shop
        self.queue = f"pricemon.test.{uuid.uuid4().hex[:10]}"
        self.workers: list[subprocess.Popen[str]] = []
        self.config: Path | None = None

    def write(self, listings: dict[str, int], *, concurrency: int = 4, cluster: str = "", scrape: str = "") -> Path:
        broker, password = split_password(self.amqp_url)
        os.environ[PASSWORD_ENV] = password
        config = write_world(
            self.tmp_path, self.database_url, self.shop, listings, concurrency=concurrency, scrape=scrape
        )
        config.write_text(
            config.read_text()
            + f'\n[cluster]\nbroker_url = "{broker}"\nbroker_password_env = "{PASSWORD_ENV}"\nqueue = "{self.queue}"\n'
            + 'retry_delay = "0.3s"\nheartbeat = "1s"\nwait_timeout = "120s"\n'
            + cluster
        )
        self.config = config
        return config

    def start_worker(self, concurrency: int = 1) -> subprocess.Popen[str]:
        assert self.config is not None
        index = len(self.workers)
        worker = start_pricemon(
            self.config,
            "--log-level",
            "info",
            "worker",
            "--concurrency",
            str(concurrency),
            cwd=self.tmp_path,
            log=self.tmp_path / f"worker-{index}.log",
        )
        self.workers.append(worker)
        return worker

    def wait_for_workers(self, n: int) -> None:
        wait_for(
            lambda: (
                sql(self.database_url, "SELECT count(*) FROM cluster_workers")[0][0] >= n
                and all(w.poll() is None for w in self.workers)
            ),
            f"{n} workers' heartbeat",
            timeout=30,
        )

    def scrape(self, *args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
        assert self.config is not None
        return pricemon(self.config, "scrape", *args, cwd=self.tmp_path, timeout=timeout)

    def chunk_rows(self, competitor: str) -> list[tuple[str, Any, Any]]:
        """(worker, started_at, finished_at) of the competitor's chunks."""
        return [
            tuple(row)
            for row in sql(
                self.database_url,
                "SELECT worker, started_at, finished_at FROM cluster_chunks WHERE competitor = :c ORDER BY id",
                c=competitor,
            )
        ]

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.tmp_path.glob("worker-*.log")))

    def close(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGQUIT)  # a cold shutdown: nothing is running by now
        for worker in self.workers:
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(timeout=5)
        from kombu import Connection

        try:
            with Connection(self.amqp_url, connect_timeout=5) as connection:
                connection.default_channel.queue_delete(self.queue)
        except Exception:  # the broker of a test that stopped it; the queue is gone with it
            pass


@pytest.fixture
def shop() -> Iterator[CountingShop]:
    server = CountingShop()
    yield server
    server.close()


@pytest.fixture
def cluster(tmp_path: Path, amqp_url: str, cluster_database: str, shop: CountingShop) -> Iterator[Cluster]:
    world = Cluster(tmp_path, amqp_url, cluster_database, shop)
    yield world
    world.close()


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class PrivateBroker:
    """A RabbitMQ of the test's own: its own node name, ports (AMQP, distribution, epmd), data,
    log and config directories and Erlang cookie; never the machine's broker."""

    def __init__(self, root: Path) -> None:
        executable = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")  # runs as us; the sbin wrapper would su
        if not executable.exists():
            found = shutil.which("rabbitmq-server")
            if found is None:
                pytest.skip("rabbitmq-server is not installed (Debian package rabbitmq-server)")
            executable = Path(found)
        self.executable = executable
        self.root = root
        self.port, self.dist_port, self.epmd_port = _free_ports(3)
        for name in ("mnesia", "log", "home"):
            (root / name).mkdir(parents=True, exist_ok=True)
        (root / "enabled_plugins").write_text("[].\n")
        (root / "rabbitmq.conf").write_text(f"listeners.tcp.default = 127.0.0.1:{self.port}\n")
        self.env = {
            **os.environ,
            "HOME": str(root / "home"),
            "RABBITMQ_NODENAME": f"pricemon-test-{uuid.uuid4().hex[:8]}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_MNESIA_BASE": str(root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(root / "log"),
            "RABBITMQ_CONFIG_FILE": str(root / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(root / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(root / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(root / "enabled_plugins"),
        }
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}//"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        from kombu import Connection

        log = (self.root / "server.out").open("ab")
        self.process = subprocess.Popen(
            [str(self.executable)], env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

        def up() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"the test's RabbitMQ exited: {(self.root / 'server.out').read_text()[-2000:]}")
            try:
                with Connection(self.url, connect_timeout=1) as connection:
                    connection.connect()
                return True
            except Exception:
                return False

        wait_for(up, "the test's RabbitMQ to accept connections", timeout=timeout)

    def stop(self) -> None:
        """Stop the node (SIGTERM is RabbitMQ's orderly shutdown; durable queues stay on disk)."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def close(self) -> None:
        self.stop()
        # The node started an epmd of its own on its own port; end it too.
        subprocess.run(["epmd", "-port", str(self.epmd_port), "-kill"], env=self.env, capture_output=True, timeout=10)


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    broker = PrivateBroker(tmp_path / "rabbitmq")
    broker.start()
    yield broker
    broker.close()
