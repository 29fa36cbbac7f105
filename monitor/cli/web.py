"""The review workspace: `serve`, and the tokens that give access to it (`tokens create|list|revoke`)."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import secrets
from typing import Any

import click

from monitor.cli.base import App, cli, json_option, pass_app, print_json, print_table
from monitor.errors import PricemonError

logger = logging.getLogger(__name__)

ROLE_CHOICE = click.Choice(["viewer", "approver", "admin"])


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8321, show_default=True, help="Port to listen on.")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Server processes on the port, each listening on its own socket so that the kernel spreads "
    "connections across them (Linux; elsewhere they share one); about one per core, see README, "
    "workspace in production.",
)
@pass_app
def serve_command(app: App, host: str, port: int, workers: int) -> None:
    """Serve the review workspace and the REST API (/api/v1, docs at /api/docs).

    Every page and API call needs a token (`pricemon tokens create`). Listening on anything but
    loopback is refused while no token is active.
    """
    import uvicorn

    from monitor.store.tokens import has_active_tokens
    from monitor.web.app import create_app
    from monitor.web.workers import serve_workers, shown_address

    store = app.store()
    with store.session() as session:
        tokens = has_active_tokens(session)
    if not tokens:
        if not is_loopback(host):
            raise PricemonError(
                f"refusing to listen on {host}: no active token, so nobody could log in and the server would be "
                "open to the network for nothing; create one first with `pricemon tokens create NAME --role admin`"
            )
        click.echo("pricemon: no token yet: create one with `pricemon tokens create NAME --role admin`", err=True)

    def announce(port: int) -> None:
        click.echo(f"pricemon: serving on http://{shown_address(host, port)}/ (API docs at /api/docs)", err=True)

    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_config": None,  # the CLI's logging (with its secret filter) stays in charge
        "access_log": False,
        "server_header": False,
        "proxy_headers": True,  # X-Forwarded-Proto from a local reverse proxy: Secure cookies behind TLS
    }
    if workers == 1:
        announce(port)
        uvicorn.Server(uvicorn.Config(create_app(app.settings, store), **options)).run()
        return
    from monitor.web.app import WORKER_ENV

    store.dispose()  # each worker opens its own; no connection may cross the fork
    secret_env = app.settings.web.session_secret_env
    if not os.environ.get(secret_env):
        # Every worker must sign and check the same cookies; a key per start, as with one process.
        os.environ[secret_env] = secrets.token_urlsafe(32)
    os.environ[WORKER_ENV] = json.dumps({
        "config": app.config_path,
        "database_url": app.settings.database_url,
        "strategies_dir": app.strategies_dir,
        "log_level": logging.getLogger().getEffectiveLevel(),
    })
    serve_workers("monitor.web.app:app_for_worker", options, workers, on_listening=announce)


@cli.group("tokens")
def tokens_group() -> None:
    """Access tokens of the workspace and API: viewer < approver < admin."""


@tokens_group.command("create")
@click.argument("name")
@click.option(
    "--role", type=ROLE_CHOICE, required=True, help="viewer reads; approver also decides and applies; admin also edits."
)
@json_option
@pass_app
def tokens_create(app: App, name: str, role: str, as_json: bool) -> None:
    """Create a token NAME with ROLE and print it, this once (only its hash is stored)."""
    from monitor.store.tokens import create_token

    with app.store().session() as session:
        token, info = create_token(session, name, role)
    if as_json:
        print_json({**info.as_dict(), "token": token})
        return
    click.echo(token)
    click.echo(f"token {name!r} ({role}) created; it is shown only now: keep it somewhere safe", err=True)


@tokens_group.command("list")
@json_option
@pass_app
def tokens_list(app: App, as_json: bool) -> None:
    """Show every token's name, role, creation, last use and revocation (never the token)."""
    from monitor.store.tokens import list_tokens

    with app.store().session() as session:
        rows = [t.as_dict() for t in list_tokens(session)]
    if as_json:
        print_json(rows)
        return
    print_table(
        f"{len(rows)} token(s)",
        ["Name", "Role", "Created", "Last used", "Revoked"],
        ([r["name"], r["role"], r["created_at"], r["last_used_at"] or "", r["revoked_at"] or ""] for r in rows),
    )


@tokens_group.command("revoke")
@click.argument("name")
@json_option
@pass_app
def tokens_revoke(app: App, name: str, as_json: bool) -> None:
    """Revoke token NAME: its API calls and login sessions are refused from now on."""
    from monitor.store.tokens import revoke_token

    with app.store().session() as session:
        info = revoke_token(session, name)
    if as_json:
        print_json(info.as_dict())
        return
    click.echo(f"token {name!r} revoked")
