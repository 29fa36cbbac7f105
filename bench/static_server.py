"""Serving the synthetic web on 127.0.0.1, one port per shop, so per-host politeness applies as on the web.

nginx (Debian's /usr/sbin/nginx) is preferred: it runs as the current user with its prefix, pid, logs
and temp dirs inside a private work dir, `daemon off;`, as a child process that `stop()` ends. Where
nginx is missing, a documented fallback serves the same files with a few Python processes (stdlib
`http.server`, HTTP/1.1 keep-alive, Last-Modified/If-Modified-Since but no ETag); it is far slower,
so figures taken with it are labelled as such.

Run the fallback child directly with `python -m bench.static_server PORT=DIR ...`.
"""

from __future__ import annotations

import http.server
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")
START_TIMEOUT_S = 20.0


class ServerStartError(RuntimeError):
    """The static server did not come up; the message says which server and why."""


def find_nginx() -> str | None:
    for candidate in NGINX_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("nginx")


def free_ports(count: int) -> list[int]:
    """Ports the kernel just handed out as free; a tiny race remains until the server binds them."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class StaticServer:
    """A running static server: which implementation, each shop's base URL, and the processes to stop."""

    kind: str
    base_urls: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    work_dir: Path | None = None

    def stop(self) -> None:
        # SIGQUIT is nginx's graceful shutdown; the Python fallback treats SIGTERM as its stop.
        sig = signal.SIGQUIT if self.kind == "nginx" else signal.SIGTERM
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(sig)
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> StaticServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@dataclass(frozen=True)
class Placement:
    """Where nginx listens and how it is started: an address (with the ports to use, else free ones on
    127.0.0.1), TLS with a certificate and key, and a command prefix (`ip netns exec NS`)."""

    host: str = "127.0.0.1"
    ports: tuple[int, ...] = ()
    tls: tuple[Path, Path] | None = None
    command_prefix: tuple[str, ...] = ()


def start_static_server(
    shop_roots: Mapping[str, Path],
    work_dir: Path,
    *,
    prefer: str = "nginx",
    workers: int | None = None,
    placement: Placement | None = None,
) -> StaticServer:
    """Serve every shop's document root on its own 127.0.0.1 port; nginx unless absent or not preferred.

    With a `placement` (the network benchmark: HTTPS inside a network namespace) it must be nginx.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    nginx = find_nginx() if prefer == "nginx" else None
    if placement is not None:
        if nginx is None:
            raise ServerStartError("nginx is needed to serve HTTPS in a network namespace: apt-get install -y nginx")
        return _start_nginx(nginx, shop_roots, work_dir, workers, placement)
    if prefer == "nginx" and nginx is None:
        logger.warning(
            "nginx not found (looked in %s and PATH); using the slower Python fallback server. "
            "Install it with `apt-get install -y nginx`.",
            ", ".join(NGINX_CANDIDATES),
        )
    if nginx:
        return _start_nginx(nginx, shop_roots, work_dir, workers)
    return _start_python(shop_roots, work_dir, workers)


def _start_nginx(
    nginx: str,
    shop_roots: Mapping[str, Path],
    work_dir: Path,
    workers: int | None,
    placement: Placement | None = None,
) -> StaticServer:
    placement = placement or Placement()
    ports = list(placement.ports) or free_ports(len(shop_roots))
    host = placement.host
    scheme = "https" if placement.tls else "http"
    base_urls = {shop: f"{scheme}://{host}:{port}" for shop, port in zip(shop_roots, ports, strict=True)}
    prefix = work_dir / "nginx"
    for sub in ("logs", "temp/client", "temp/proxy", "temp/fastcgi", "temp/uwsgi", "temp/scgi"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    ssl = " ssl" if placement.tls else ""
    tls_lines = ""
    if placement.tls:
        cert, key = placement.tls
        # One handshake per connection; HTTP/1.1 keep-alive as on plain HTTP, so only TLS is added.
        tls_lines = f"""    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
"""
    servers = "\n".join(
        f"""    server {{
        listen {host}:{port}{ssl} backlog=4096;
        root {root.resolve()};
        location / {{ try_files $uri =404; }}
    }}"""
        for port, root in zip(ports, shop_roots.values(), strict=True)
    )
    # Only a root master honours `user`; naming the current user keeps workers able to read the cache
    # (the default, nobody, could not).
    user_line = ""
    if os.geteuid() == 0:
        entry = pwd.getpwuid(os.getuid())
        user_line = f"user {entry.pw_name};"
    conf = f"""{user_line}
daemon off;
master_process on;
worker_processes {workers or "auto"};
worker_rlimit_nofile 65536;
pid {prefix / "nginx.pid"};
error_log {prefix / "logs" / "error.log"} warn;
events {{ worker_connections 8192; multi_accept on; }}
http {{
    default_type text/html;
    charset utf-8;
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    etag on;
    if_modified_since exact;
    # Bounded well below the open-file limit: at 172,800 pages an unbounded cache runs out of
    # descriptors, and try_files then answers 404 for pages that exist.
    open_file_cache max=10000 inactive=120s;
    open_file_cache_valid 600s;
    client_body_temp_path {prefix / "temp/client"};
    proxy_temp_path {prefix / "temp/proxy"};
    fastcgi_temp_path {prefix / "temp/fastcgi"};
    uwsgi_temp_path {prefix / "temp/uwsgi"};
    scgi_temp_path {prefix / "temp/scgi"};
{tls_lines}{servers}
}}
"""
    conf_path = prefix / "nginx.conf"
    conf_path.write_text(conf, encoding="utf-8")
    log_path = prefix / "logs" / "stderr.log"
    with log_path.open("wb") as log:
        # -e keeps nginx from touching /var/log/nginx before it has read our config.
        process = subprocess.Popen(
            [
                *placement.command_prefix,
                nginx,
                "-p",
                str(prefix),
                "-c",
                str(conf_path),
                "-e",
                str(prefix / "logs" / "error.log"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = StaticServer(kind="nginx", base_urls=base_urls, processes=[process], work_dir=work_dir)
    _wait_until_listening(server, ports, lambda: _tail(prefix / "logs" / "error.log") + _tail(log_path), host)
    logger.info("nginx serving %d shops from %s", len(ports), prefix)
    return server


def _start_python(shop_roots: Mapping[str, Path], work_dir: Path, workers: int | None) -> StaticServer:
    ports = free_ports(len(shop_roots))
    base_urls = {shop: f"http://127.0.0.1:{port}" for shop, port in zip(shop_roots, ports, strict=True)}
    pairs = [f"{port}={root.resolve()}" for port, root in zip(ports, shop_roots.values(), strict=True)]
    count = max(1, min(workers or (os.cpu_count() or 1) * 2, len(pairs)))
    processes = []
    log_path = work_dir / "python-server.log"
    repo_root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(repo_root), os.environ.get("PYTHONPATH")]))}
    with log_path.open("wb") as log:
        for index in range(count):
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "bench.static_server", *pairs[index::count]],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            )
    server = StaticServer(kind="python", base_urls=base_urls, processes=processes, work_dir=work_dir)
    _wait_until_listening(server, ports, lambda: _tail(log_path))
    logger.info("Python fallback server: %d processes serving %d shops", count, len(ports))
    return server


def _wait_until_listening(
    server: StaticServer, ports: Sequence[int], diagnostics: object, host: str = "127.0.0.1"
) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    pending = list(ports)
    while pending:
        if any(process.poll() is not None for process in server.processes):
            server.stop()
            raise ServerStartError(f"{server.kind} exited during start-up: {diagnostics()}")  # type: ignore[operator]
        try:
            with socket.create_connection((host, pending[0]), timeout=0.5):
                pending.pop(0)
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                raise ServerStartError(
                    f"{server.kind} not listening on {host}:{pending[0]} after {START_TIMEOUT_S:.0f}s: {diagnostics()}"  # type: ignore[operator]
                ) from None
            time.sleep(0.05)


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-limit:]
    except OSError:
        return ""


# ---------------------------------------------------------------------------------------------------
# The Python fallback child.


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    # HTTP/1.1 so clients keep connections alive, as they do with nginx.
    protocol_version = "HTTP/1.1"
    extensions_map = {  # noqa: RUF012 - the stdlib reads this class attribute
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".html": "text/html; charset=utf-8",
    }

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024


def main(argv: Sequence[str] | None = None) -> int:
    """Serve each PORT=DIR pair until SIGTERM."""
    pairs = [arg.split("=", 1) for arg in (argv if argv is not None else sys.argv[1:])]
    servers = []
    for port, directory in pairs:

        def handler(*args: object, directory: str = directory) -> _QuietHandler:
            return _QuietHandler(*args, directory=directory)  # type: ignore[arg-type]

        server = _Server(("127.0.0.1", int(port)), handler)  # type: ignore[arg-type]
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    for server in servers:
        server.shutdown()
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
