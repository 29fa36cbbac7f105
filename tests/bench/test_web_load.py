"""The load generator and its percentile maths, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from bench.runner import child_env
from bench.web_load import percentile


def test_percentile_interpolates_between_closest_ranks() -> None:
    samples = [15.0, 20.0, 35.0, 40.0, 50.0]
    assert percentile(samples, 0) == 15.0
    assert percentile(samples, 100) == 50.0
    assert percentile(samples, 50) == 35.0
    assert percentile(samples, 40) == pytest.approx(29.0)  # rank 1.6: 20 + 0.6 * 15
    assert percentile(list(reversed(samples)), 95) == pytest.approx(48.0)  # order does not matter
    assert percentile(list(range(1, 101)), 95) == pytest.approx(95.05)
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


@pytest.fixture
def server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            seen.append({"path": self.path, "auth": self.headers.get("Authorization", ""),
                         "cookie": self.headers.get("Cookie", "")})
            body = b"ok" * 100
            self.send_response(200 if self.path == "/ok" else 500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    httpd.shutdown()
    httpd.server_close()


def run_load(*args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "bench.web_load", *args], capture_output=True, text=True,
                          env=child_env(), timeout=60, check=True)
    return json.loads(done.stdout)


def test_closed_loop_counts_only_successes_and_sends_the_headers(server: tuple[str, list[dict[str, str]]]) -> None:
    base, seen = server
    figures = run_load(f"{base}/ok", f"{base}/broken", "--connections", "2", "--seconds", "1", "--warmup", "0.2",
                       "--header", "Authorization: Bearer abc", "--cookie", "session=s1")
    assert figures["requests"] > 10
    # The two URLs are taken in turn, so about half the answers are 500s: never counted as served.
    assert figures["statuses"]["200"] > 0 and figures["statuses"]["500"] > 0
    assert figures["ok"] == figures["statuses"]["200"]
    assert figures["failed"] == figures["statuses"]["500"]
    assert figures["requests_per_s"] == pytest.approx(figures["ok"] / figures["seconds"])
    assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"] <= figures["max_ms"]
    assert figures["client_cpu_seconds"] > 0
    assert {s["auth"] for s in seen} == {"Bearer abc"}
    assert {s["cookie"] for s in seen} == {"session=s1"}


def test_a_server_that_is_not_there_is_reported_as_errors() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    figures = run_load(f"http://127.0.0.1:{port}/", "--connections", "1", "--seconds", "0.5", "--warmup", "0")
    assert figures["ok"] == 0
    assert figures["failed"] > 0 and figures["errors"]
