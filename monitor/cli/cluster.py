"""The cluster's command: `worker`."""

from __future__ import annotations

import click

from monitor.cli.base import App, cli, pass_app


@cli.command("worker")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    default=None,
    help="Processes running chunks, each with the sweep's event loop [default: one per core].",
)
@pass_app
def worker_command(app: App, concurrency: int | None) -> None:
    """Run a cluster worker: take chunks of sweeps from [cluster] broker_url and check them.

    \b
    Each chunk is some of one competitor's listings, run under that competitor's lease, so its
    politeness holds across every worker. SIGTERM/SIGINT: finish the chunks running, then exit.
    """
    import logging

    from monitor.cluster.worker import run_worker

    app.store()  # migrate (SQLite) or refuse a schema at the wrong version before the pool starts
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
    code = run_worker(app.settings, concurrency=concurrency, log_level=str(level))
    click.get_current_context().exit(code)
