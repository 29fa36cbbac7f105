"""The daemon and its view: `run` and `status`."""

from __future__ import annotations

import logging
from typing import Any

import click

from monitor.cli.base import App, cli, configure_logging, json_option, pass_app, print_json, print_table
from monitor.settings import Settings, load_settings

logger = logging.getLogger(__name__)


# --- daemon and status (issue 4) ------------------------------------------------------------


@cli.command("run")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log lines on stderr as text, or one JSON object per line for log shippers.",
)
@click.pass_context
def run_command(ctx: click.Context, log_format: str) -> None:
    """Run the scheduler daemon in the foreground: sweep each enabled competitor on its schedule.

    \b
    SIGTERM/SIGINT: stop taking work, let batches in flight commit (scheduler.grace_period), exit 0.
    SIGHUP: reload the config file; an invalid one is logged and the running config kept.
    """
    from click.core import ParameterSource

    from monitor.scheduler import run_daemon

    app = ctx.find_object(App)
    assert app is not None
    root = ctx.find_root()
    # A daemon's log is its only voice: report sweeps (info) unless --log-level says otherwise.
    explicit = root.get_parameter_source("log_level") not in (None, ParameterSource.DEFAULT)
    level = root.params.get("log_level", "info") if explicit else "info"
    configure_logging(level, log_format)
    if level.lower() != "debug":
        # APScheduler announces every job start and end, and every run skipped because the
        # previous sweep of that competitor is still going (by design): noise at a 1s schedule.
        # Alembic announces its context each time a sweep opens the store, httpx every request.
        logging.getLogger("apscheduler").setLevel(logging.ERROR)
        logging.getLogger("alembic").setLevel(logging.WARNING)
        logging.getLogger("httpx").setLevel(logging.WARNING)

    def reload_settings() -> Settings:
        return load_settings(app.config_path, database_url=app.database_url, strategies_dir=app.strategies_dir)

    code = run_daemon(app.settings, load_settings=reload_settings)
    ctx.exit(code)


@cli.command("status")
@json_option
@pass_app
def status_command(app: App, as_json: bool) -> None:
    """Per competitor: last sweep, next due, listings fresh / stale / failing, and the listings
    failing longest. Exits 2 when an enabled competitor had no successful check for longer than
    scheduler.staleness_limit (for cron jobs and container health checks)."""
    from monitor.store.models import utcnow
    from monitor.store.status import competitor_status, status_to_json

    settings = app.settings
    now = utcnow()
    with app.store().session() as session:
        rows = competitor_status(
            session, settings.competitors, staleness_limit=settings.scheduler.staleness_limit, now=now
        )
        cluster = None
        if settings.cluster.broker_url:
            from monitor.store.chunks import cluster_status

            cluster = cluster_status(session, heartbeat=settings.cluster.heartbeat)
    healthy = all(row.healthy for row in rows)
    if as_json:
        data: dict[str, Any] = {
            "healthy": healthy,
            "now": now.isoformat(),
            "staleness_limit_seconds": settings.scheduler.staleness_limit.total_seconds(),
            "competitors": [status_to_json(row) for row in rows],
        }
        if cluster is not None:
            data["cluster"] = cluster
        print_json(data)
    else:
        print_table(
            f"{len(rows)} competitor(s), staleness limit {settings.scheduler.staleness_limit}",
            ["Competitor", "Schedule", "Last sweep", "Result", "Next due", "Fresh", "Stale", "Failing", "Health"],
            (
                [
                    row.name + ("" if row.enabled else " (disabled)"),
                    row.schedule,
                    (row.last_sweep or {}).get("started_at"),
                    _sweep_result(row.last_sweep),
                    row.next_due_at.isoformat(timespec="seconds") if row.next_due_at else "",
                    row.fresh,
                    row.stale,
                    row.failing,
                    "ok" if row.healthy else "STALE",
                ]
                for row in rows
            ),
        )
        failing = [(row.name, item) for row in rows for item in row.failing_longest]
        if failing:
            print_table(
                "failing longest",
                ["Competitor", "SKU", "Outcome", "Fails", "Last success", "Error", "URL"],
                (
                    [
                        name,
                        item["sku"],
                        item["last_outcome"],
                        item["consecutive_failures"],
                        item["last_success_at"] or "never",
                        item["last_error"],
                        item["url"],
                    ]
                    for name, item in failing
                ),
            )
        if cluster is not None:
            _print_cluster(cluster)
    if not healthy:
        stale = ", ".join(row.name for row in rows if not row.healthy)
        click.echo(
            f"pricemon: unhealthy: no successful check within {settings.scheduler.staleness_limit} for: {stale}",
            err=True,
        )
        click.get_current_context().exit(2)


def _sweep_result(sweep: dict[str, Any] | None) -> str:
    if not sweep:
        return "never"
    return f"{sweep['status']}, {sweep['checked']} checked"


def _print_cluster(cluster: dict[str, Any]) -> None:
    print_table(
        f"cluster: {len(cluster['workers'])} worker(s) seen recently",
        ["Worker", "Processes", "Seen", "Chunks done", "Chunks failed", "Listings checked"],
        (
            [w["name"], w["concurrency"], w["seen_at"], w["chunks_done"], w["chunks_failed"], w["listings_checked"]]
            for w in cluster["workers"]
        ),
    )
    print_table(
        "cluster: open chunks",
        ["Run", "Competitor", "Queued", "Running", "Listings", "Workers"],
        (
            [c["run_id"], c["competitor"], c["queued"], c["running"], c["listings"], ", ".join(c["workers"])]
            for c in cluster["chunks"]
        ),
    )
    print_table(
        "cluster: leases",
        ["Competitor", "Held by", "Run", "Until"],
        ([lease["competitor"], lease["holder"], lease["run_id"], lease["expires_at"]] for lease in cluster["leases"]),
    )
