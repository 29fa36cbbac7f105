"""`pricemon run` on a database that is down, locked or read-only, and every command on a schema
at a revision it does not know: waits and retries where waiting helps, a clear error where it
cannot, never a traceback."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.conftest import PRICEMON, clean_env, sql, start_pricemon, wait_for, write_world

PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_user(user: str) -> dict[str, object]:
    """Popen arguments that run a command as `user` when the tests run as root (initdb refuses root)."""
    return {"user": user, "group": user} if os.geteuid() == 0 else {}


class PrivateCluster:
    """A PostgreSQL server of the test's own (initdb + pg_ctl on a free port), never the machine's."""

    def __init__(self, root: Path) -> None:
        self.bin = Path(PG_BIN[-1])
        self.data = root / "data"
        self.port = _free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        owner = _as_user("postgres")
        if owner:
            shutil.chown(root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")

    def _run(self, *args: str) -> None:
        subprocess.run(
            [str(self.bin / args[0]), *args[1:]], check=True, capture_output=True, timeout=120, **_as_user("postgres")
        )

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-w", "-l", str(self.data / "server.log"), "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


@pytest.fixture
def private_cluster() -> Iterator[PrivateCluster]:
    if not PG_BIN:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    root = Path(tempfile.mkdtemp(prefix="pricemon-pg-"))
    cluster = PrivateCluster(root)
    try:
        yield cluster
    finally:
        subprocess.run(
            [str(cluster.bin / "pg_ctl"), "-D", str(cluster.data), "-m", "immediate", "stop"],
            capture_output=True, **_as_user("postgres"),  # type: ignore[call-overload]
        )
        shutil.rmtree(root, ignore_errors=True)


def test_run_waits_for_a_postgresql_server_that_is_down_and_starts_when_it_is_back(
    tmp_path, shop, private_cluster
) -> None:
    private_cluster.start()
    config = write_world(tmp_path, private_cluster.url, shop, {"alpha": 3}, every="1s")
    private_cluster.stop()

    log = tmp_path / "daemon.log"
    daemon = start_pricemon(config, "run", cwd=tmp_path, log=log)
    try:
        wait_for(lambda: "database unavailable at start (attempt 2" in log.read_text(), "two attempts", timeout=60)
        assert daemon.poll() is None
        assert "Connection refused" in log.read_text()
        private_cluster.start()
        wait_for(lambda: shop.total >= 3, "the daemon to sweep once the server is back", timeout=60)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
    text = log.read_text()
    assert "Traceback" not in text
    assert "daemon started" in text
    assert sql(private_cluster.url, "SELECT count(*) FROM price_history")[0][0] == 3


def test_run_waits_for_an_sqlite_database_another_process_has_locked(tmp_path, shop) -> None:
    # A short busy timeout (the URL's own `timeout`), so that each attempt gives up quickly.
    url = f"sqlite:///{tmp_path / 'pricemon.db'}?timeout=0.5"
    config = write_world(tmp_path, url, shop, {"alpha": 2}, every="1s")
    locker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys\n"
            f"c = sqlite3.connect({str(tmp_path / 'pricemon.db')!r}, isolation_level=None)\n"
            "c.execute('PRAGMA journal_mode=DELETE'); c.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True); sys.stdin.readline(); c.execute('ROLLBACK')\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
    log = tmp_path / "daemon.log"
    daemon = start_pricemon(config, "run", cwd=tmp_path, log=log)
    try:
        wait_for(lambda: "database unavailable at start (attempt 2" in log.read_text(), "two attempts", timeout=60)
        assert "database is locked" in log.read_text()
        assert shop.total == 0
        locker.communicate("\n", timeout=10)
        wait_for(lambda: shop.total >= 2, "the daemon to sweep once the lock is gone", timeout=60)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    finally:
        for process in (daemon, locker):
            if process.poll() is None:
                process.kill()
    assert "Traceback" not in log.read_text()


@pytest.mark.skipif(os.geteuid() == 0 and shutil.which("setpriv") is None, reason="needs setpriv to run as nobody")
@pytest.mark.parametrize("what", ["file", "folder"])
def test_run_on_a_read_only_sqlite_database_says_so_and_exits(shop, what) -> None:
    root = Path(tempfile.mkdtemp(prefix="pricemon-ro-"))
    try:
        config = write_world(root, f"sqlite:///{root / 'pricemon.db'}", shop, {"alpha": 1})
        for path in root.iterdir():
            path.chmod(0o444 if what == "file" else 0o644)
        root.chmod(0o755 if what == "file" else 0o555)
        # As a user who may not write there (root may write anything).
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
        result = subprocess.run(
            [*nobody, PRICEMON, "--config", str(config), "run"],
            cwd=root, env=clean_env(), capture_output=True, text=True, timeout=60,
        )
    finally:
        root.chmod(0o755)
        shutil.rmtree(root, ignore_errors=True)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "pricemon: error: cannot open database" in result.stderr
    assert "read-only" in result.stderr and "pricemon needs to write to it" in result.stderr
    assert "retrying" not in result.stderr
    assert shop.total == 0


def test_a_schema_at_an_unknown_revision_is_a_clear_error(database_url, pricemon_cli, write_config) -> None:
    config = write_config('[[competitors]]\nname = "alpha"\nbase_url = "http://127.0.0.1:9"\n')
    cli = pricemon_cli(config, database_url)
    cli("db", "upgrade")
    sql(database_url, "UPDATE alembic_version SET version_num = '0099_future'")
    for command in (["db", "upgrade"], ["status"], ["scrape"], ["run"]):
        result = cli(*command, expect=1)  # a traceback would fail the call itself
        assert result.stderr.startswith("pricemon: error:"), (command, result.stderr)
        assert "the schema is at revision '0099_future', which this pricemon does not know" in result.stderr
