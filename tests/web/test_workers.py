"""`pricemon serve --workers N`: one SO_REUSEPORT socket per worker, so the kernel spreads connections;
the parent replaces dead workers, stops them all on SIGTERM, and refuses a port already in use.

Which worker holds a connection is read from /proc (the server-side socket's inode in
/proc/net/tcp, and which worker has that inode among its fds): the app has no say in it."""

from __future__ import annotations

import http.client
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from monitor.errors import ConfigError, PricemonError
from monitor.web.workers import REUSEPORT_BALANCING, reserved_port
from tests.web.served import free_port, serve_command

pytestmark = pytest.mark.skipif(not REUSEPORT_BALANCING, reason="SO_REUSEPORT balancing and /proc are Linux's")

ROOT = Path(__file__).resolve().parents[2]
LISTEN = 0x0A  # TCP state in /proc/net/tcp


def unloadable_app() -> None:
    """An app factory that fails as a bad setting does, inside the worker (tests drive serve_workers with it)."""
    raise ConfigError("the test's factory refuses to build an app (web.session_lifetime)")


def crashing_app() -> None:
    raise RuntimeError("the test's factory has a bug")


# --- what /proc says -------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    """Running (a zombie has closed its sockets already and counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    except OSError:
        pass
    return inodes


def tcp_sockets() -> list[tuple[int, int, int, int]]:
    """(local port, remote port, state, inode) of every TCP socket, IPv4 and IPv6."""
    rows = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            local_port, remote_port = (int(address.rsplit(":", 1)[1], 16) for address in (local, remote))
            rows.append((local_port, remote_port, int(state, 16), int(inode)))
    return rows


def listening_workers(parent: int, port: int) -> set[int]:
    listeners = {inode for local, _, state, inode in tcp_sockets() if local == port and state == LISTEN}
    return {pid for pid in children(parent) if socket_inodes(pid) & listeners}


def connection_owners(pids: set[int], port: int, client_ports: list[int]) -> dict[int, int]:
    """client port -> pid of the worker holding the server side of that connection."""
    by_inode = {inode: pid for pid in pids for inode in socket_inodes(pid)}
    return {
        remote: by_inode[inode]
        for local, remote, state, inode in tcp_sockets()
        if local == port and remote in client_ports and state != LISTEN and inode in by_inode
    }


# --- a real `pricemon serve --workers N` -----------------------------------------------------------


class Serving:
    def __init__(self, process: subprocess.Popen[str], host: str, port: int, log: Path) -> None:
        self.process, self.host, self.port, self.log = process, host, port, log

    def workers(self) -> set[int]:
        return listening_workers(self.process.pid, self.port)

    def wait_for_workers(self, count: int, without: set[int] = frozenset(), timeout: float = 30) -> set[int]:  # type: ignore[assignment]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"pricemon serve exited {self.process.returncode}:\n{self.log.read_text()}")
            pids = self.workers()
            if len(pids) == count and not pids & without:
                return pids
            time.sleep(0.1)
        pytest.fail(f"no {count} listening workers within {timeout:.0f} s:\n{self.log.read_text()}")

    def get(self, path: str = "/api/v1/health") -> int:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            connection.request("GET", path)
            return connection.getresponse().status
        finally:
            connection.close()


def database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'p.db'}"


@contextmanager
def serving(tmp_path: Path, write_config, *args: str, host: str = "127.0.0.1") -> Iterator[Serving]:
    port = free_port()
    log = tmp_path / f"serve-{port}.log"
    command = serve_command(write_config(""), database(tmp_path), "--host", host, "--port", str(port), *args)
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    served = Serving(process, host, port, log)
    try:
        yield served
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# --- the tests -------------------------------------------------------------------------------------


def burst(server: Serving, workers: set[int], count: int = 16) -> dict[int, int]:
    """Connections per worker of `count` keep-alive connections opened as a load generator or a
    proxy's pool opens them: all established (the kernel completes the handshakes) before any
    worker has woken up to accept one; then a request on each."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    for sock in sockets:
        sock.setblocking(False)
        sock.connect_ex((server.host, server.port))
    connections = []
    for sock in sockets:
        select.select([], [sock], [], 10)
        sock.settimeout(10)
        connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
        connection.sock = sock  # connected already
        connections.append(connection)
    try:
        for connection in connections:
            connection.request("GET", "/api/v1/health")
        for connection in connections:
            response = connection.getresponse()
            response.read()
            assert response.status == 200
        client_ports = [c.sock.getsockname()[1] for c in connections]  # still open: keep-alive
        owners = connection_owners(workers, server.port, client_ports)
    finally:
        for connection in connections:
            connection.close()
    assert sorted(owners) == sorted(client_ports)  # every connection found, on a worker
    return {pid: list(owners.values()).count(pid) for pid in workers}


def test_connections_opened_together_are_spread_over_the_workers(tmp_path: Path, write_config) -> None:
    # With one shared listening socket (the non-Linux fallback, forced), this failed in 5 of 10 runs:
    # the worker that woke first took all 16 of a burst. With a socket each, the kernel's hash puts
    # all 16 of a burst on one worker once in 2**15.
    with serving(tmp_path, write_config, "--workers", "2") as server:
        workers = server.wait_for_workers(2)
        splits = [burst(server, workers) for _ in range(3)]
        assert all(all(split.values()) for split in splits), f"connections per worker: {splits}"


def test_a_killed_worker_is_replaced_and_sigterm_stops_every_worker(tmp_path: Path, write_config) -> None:
    with serving(tmp_path, write_config, "--workers", "2") as server:
        first = server.wait_for_workers(2)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        while alive(victim):
            time.sleep(0.05)
        assert [server.get() for _ in range(10)] == [200] * 10  # the other worker answers meanwhile
        now = server.wait_for_workers(2, without={victim})
        assert first - {victim} < now
        assert [server.get() for _ in range(10)] == [200] * 10

        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(20) == 0
        log = server.log.read_text()
        assert f"(pid {victim}) exited with code -9: starting another" in log
        assert "WARNING" in log and "Traceback" not in log
        assert not [pid for pid in first | now if alive(pid)]


def test_workers_stop_when_the_parent_is_killed(tmp_path: Path, write_config) -> None:
    with serving(tmp_path, write_config, "--workers", "2") as server:
        workers = server.wait_for_workers(2)
        server.process.kill()
        server.process.wait()
        deadline = time.monotonic() + 15
        while [pid for pid in workers if alive(pid)] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in workers if alive(pid)], "orphan workers keep the port"


def test_a_second_server_on_the_port_is_refused_and_does_not_join(tmp_path: Path, write_config) -> None:
    with serving(tmp_path, write_config, "--workers", "2") as server:
        workers = server.wait_for_workers(2)
        started = time.monotonic()
        second = subprocess.run(
            serve_command(write_config(""), database(tmp_path), "--port", str(server.port), "--workers", "2"),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        assert second.returncode == 1
        assert f"pricemon: error: cannot listen on 127.0.0.1:{server.port}: address already in use" in second.stderr
        assert "Traceback" not in second.stderr
        assert time.monotonic() - started < 15
        assert server.workers() == workers
        assert server.process.poll() is None


def test_a_reserved_port_is_held_until_released_even_before_any_worker_listens() -> None:
    with reserved_port("127.0.0.1", 0) as reservation:
        port = reservation.getsockname()[1]
        assert port != 0
        taken = rf"cannot listen on 127\.0\.0\.1:{port}: address already in use"
        with pytest.raises(PricemonError, match=taken), reserved_port("127.0.0.1", port):
            pass
    with reserved_port("127.0.0.1", port):
        pass  # free again


def test_connections_in_time_wait_of_a_plain_listener_do_not_block_the_port() -> None:
    # what `--workers 1` leaves behind for a minute when it closes idle keep-alive connections
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    accepted.close()  # the server closes first: its side goes to TIME_WAIT
    client.recv(1)
    client.close()
    listener.close()
    assert any(local == port and state == 0x06 for local, _, state, _ in tcp_sockets())  # TIME_WAIT
    with reserved_port("127.0.0.1", port) as reservation:
        assert reservation.getsockname()[1] == port


def test_workers_listen_on_ipv6(tmp_path: Path, write_config) -> None:
    with serving(tmp_path, write_config, "--workers", "2", host="::1") as server:
        assert len(server.wait_for_workers(2)) == 2
        assert server.get() == 200
        taken = rf"cannot listen on \[::1\]:{server.port}: address already in use"
        with pytest.raises(PricemonError, match=taken), reserved_port("::1", server.port):
            pass


@pytest.mark.parametrize(
    ("app", "code", "said"),
    [
        ("tests.web.test_workers:unloadable_app", 3, "pricemon: error: the test's factory refuses"),
        ("tests.web.test_workers:no_such_app", 3, "Error loading ASGI app"),
        # exits (with a traceback: a bug) before it ever serves
        ("tests.web.test_workers:crashing_app", 1, "RuntimeError: the test's factory has a bug"),
    ],
)
def test_a_worker_that_cannot_start_stops_the_server_instead_of_restarting(app: str, code: int, said: str) -> None:
    script = (
        "import logging, sys\n"
        "from monitor.errors import PricemonError\n"
        "from monitor.web.workers import serve_workers\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "try:\n"
        f"    serve_workers({app!r}, {{'host': '127.0.0.1', 'port': 0, 'log_config': None}}, 2, print)\n"
        "except PricemonError as exc:\n"
        "    print('stopped:', exc, file=sys.stderr)\n"
        "    sys.exit(1)\n"
    )
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 1, done.stderr
    assert said in done.stderr
    assert "stopped: a server worker could not start (pid " in done.stderr
    assert f"exit code {code}; its error is above)" in done.stderr
    assert "starting another" not in done.stderr
    assert done.stderr.count("Started server process") == 0
    assert time.monotonic() - started < 15
