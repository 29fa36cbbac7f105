"""`pricemon serve` refuses the network without a token; `pricemon tokens` stores only hashes."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

from tests.web.served import free_port, serve_command


def test_serve_on_all_interfaces_is_refused_without_a_token(tmp_path: Path, pricemon_cli, write_config) -> None:
    database = f"sqlite:///{tmp_path / 'p.db'}"
    config = write_config("")
    # a real process: it must exit at once, before it listens
    port = free_port()
    done = subprocess.run(
        serve_command(config, database, "--host", "0.0.0.0", "--port", str(port)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "pricemon: error: refusing to listen on 0.0.0.0: no active token" in done.stderr
    assert "pricemon tokens create" in done.stderr
    assert "Traceback" not in done.stderr

    pricemon = pricemon_cli(config, database)
    pricemon("tokens", "create", "old", "--role", "admin")
    pricemon("tokens", "revoke", "old")
    again = pricemon("serve", "--host", "::", "--port", str(port), expect=1)
    assert "refusing to listen on ::" in again.stderr  # a revoked token is no token


def test_tokens_are_shown_once_and_stored_as_hashes(tmp_path: Path, pricemon_cli, write_config) -> None:
    path = tmp_path / "p.db"
    pricemon = pricemon_cli(write_config(""), f"sqlite:///{path}")
    created = pricemon("tokens", "create", "ann@shop", "--role", "approver")
    token = created.stdout.strip()
    assert token.startswith("pm_") and len(token) > 40
    assert "shown only now" in created.stderr

    listed = pricemon("tokens", "list", "--json").json()
    assert [(t["name"], t["role"], t["active"]) for t in listed] == [("ann@shop", "approver", True)]
    assert token not in pricemon("tokens", "list").stdout
    with sqlite3.connect(path) as db:
        rows = db.execute("select name, token_hash from api_tokens").fetchall()
    assert rows[0][0] == "ann@shop" and len(rows[0][1]) == 64 and token not in rows[0][1]
    assert token.encode() not in b"".join(p.read_bytes() for p in tmp_path.glob("p.db*"))

    duplicate = pricemon("tokens", "create", "ann@shop", "--role", "viewer", expect=1)
    assert "exists already" in duplicate.stderr
    assert pricemon("tokens", "create", "bob", "--role", "root", expect=2).exit_code == 2
    assert "token name 'x y'" in pricemon("tokens", "create", "x y", "--role", "viewer", expect=1).stderr
    assert "no token named 'nobody'" in pricemon("tokens", "revoke", "nobody", expect=1).stderr
    revoked = pricemon("tokens", "revoke", "ann@shop", "--json").json()
    assert revoked["active"] is False and revoked["revoked_at"]
