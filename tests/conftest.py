"""Shared fixtures: databases (SQLite files, and the real PostgreSQL when configured) and the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

POSTGRES_ENV = "PRICEMON_TEST_POSTGRES_URL"


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    """Each test's configs are its own: secrets one test's settings planted (a process remembers
    every secret it has loaded, so that its log lines hide them) must not redact the next test's output."""
    from monitor import redact

    kept = set(redact._secrets)
    yield
    with redact._lock:
        redact._secrets.clear()
        redact._secrets.update(kept)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped at the end."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(
            f"{POSTGRES_ENV} is not set; PostgreSQL tests need a server (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)"
        )
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"pricemon_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # the server is configured but unreachable: that is a failure, not a skip
        pytest.fail(f"cannot create a test database through {POSTGRES_ENV}: {exc}")
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _fresh_postgres_schema(database_url: str) -> str:
    """A new schema in the run's database, as a URL whose connections use it by default."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    schema = f"t_{uuid.uuid4().hex[:10]}"
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return (
        make_url(database_url)
        .update_query_dict({"options": f"-csearch_path={schema}"})
        .render_as_string(hide_password=False)
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: an SQLite file, and (when configured) a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'pricemon.db'}"
    return _fresh_postgres_schema(request.getfixturevalue("postgres_database"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'pricemon.db'}"


@dataclass
class Outcome:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


class Pricemon:
    """Runs `pricemon` in-process through its real entry point (error handling included)."""

    def __init__(self, config: Path | None = None, database_url: str | None = None) -> None:
        self.config = config
        self.database_url = database_url

    def __call__(self, *args: str, expect: int | None = 0) -> Outcome:
        from monitor.cli import main

        argv: list[str] = []
        if self.config is not None:
            argv += ["--config", str(self.config)]
        if self.database_url is not None:
            argv += ["--database-url", self.database_url]
        argv += list(args)
        runner = CliRunner()
        with runner.isolation() as streams:
            try:
                main(argv)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            out = streams[0].getvalue().decode()
            err = streams[1].getvalue().decode()
        outcome = Outcome(code, out, err)
        if expect is not None:
            assert code == expect, f"pricemon {' '.join(argv)} exited {code}:\n{out}\n{err}"
        return outcome


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class WebhookServer:
    """Records every POST; answers `fail_status` instead of 204 while that is set."""

    url: str
    received: list[Received] = field(default_factory=list)
    fail_status: int | None = None
    attempts: int = 0

    @property
    def events(self) -> list[dict[str, Any]]:
        return [event for r in self.received for event in r.body.get("events", [])]


@pytest.fixture
def webhook() -> Iterator[WebhookServer]:
    state = WebhookServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            state.attempts += 1
            length = int(self.headers.get("Content-Length", 0))
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except ValueError:
                body = {"raw": raw.decode("utf-8", "replace")}
            if state.fail_status is not None:
                self.send_response(state.fail_status)
                self.end_headers()
                return
            state.received.append(Received(self.path, dict(self.headers.items()), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def write_config(tmp_path: Path):
    def write(text: str, name: str = "pricemon.toml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def pricemon_cli() -> type[Pricemon]:
    """`pricemon_cli(config, database_url)("products", "--json")` runs a command like a user."""
    return Pricemon


CHROMIUM = "/usr/bin/chromium"


def require_chromium() -> None:
    """Skip unless Debian's Chromium and the playwright package are here; in CI
    (PRICEMON_TEST_REQUIRE_TOOLS=1, which installs both) their absence is a failure."""
    missing = None
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        missing = f"Chromium is not installed at {CHROMIUM} (Debian package `chromium`)"
    else:
        try:
            import playwright  # noqa: F401
        except ImportError:
            missing = "the Python package `playwright` is not installed"
    if missing:
        if os.environ.get("PRICEMON_TEST_REQUIRE_TOOLS") == "1":
            pytest.fail(f"{missing}, and PRICEMON_TEST_REQUIRE_TOOLS=1 requires it")
        pytest.skip(missing)


def run_pricemon(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the installed `pricemon` console script as a separate process."""
    exe = Path(sys.executable).with_name("pricemon")
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([str(exe), *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
