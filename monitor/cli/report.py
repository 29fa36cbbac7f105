"""Report, demo and alerts: `report`, `demo`, `alerts`."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from monitor.cli.base import App, cli, json_option, pass_app, print_json, print_table, stdout
from monitor.errors import PricemonError

logger = logging.getLogger(__name__)


# --- report and demo (issue 6) --------------------------------------------------------------


@cli.command("report")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report to this file (HTML unless --format or a .csv/.json name says otherwise).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["html", "csv", "json"]),
    help="html: one self-contained page; csv: the pending suggestions; json: everything. Default: from --out.",
)
@click.option("--days", type=click.IntRange(1, 3650), default=30, show_default=True, help="Period covered.")
@click.option("--sku", "skus", multiple=True, help="Also chart this product (repeatable).")
@click.option(
    "--limit",
    type=click.IntRange(1),
    help="Suggestion rows listed (default: 500 in HTML, 20 in the terminal, all in CSV/JSON).",
)
@click.option("--charts", type=click.IntRange(0, 1000), default=50, show_default=True, help="Most charts drawn.")
@json_option
@pass_app
def report_command(
    app: App,
    out: Path | None,
    fmt: str | None,
    days: int,
    skus: tuple[str, ...],
    limit: int | None,
    charts: int,
    as_json: bool,
) -> None:
    """Report for review: summary, pending suggestions by impact, price charts, competitor
    health, recent applied changes. Without --out, a compact table in the terminal."""
    from monitor.report.build import build_report
    from monitor.report.render import write_csv, write_html, write_json

    if as_json:
        fmt = fmt or "json"
    if fmt is None and out is not None:
        fmt = {".csv": "csv", ".json": "json", ".html": "html", ".htm": "html"}.get(out.suffix.lower())
        if fmt is None:  # never HTML in disguise under another name (x.xlsx, x.pdf)
            raise click.UsageError(
                f"cannot tell the report format from {out.name!r}: name it .html, .csv or .json, or give --format"
            )
    if fmt == "html" and out is None:
        raise click.UsageError("--format html needs --out FILE")
    if limit is None:
        limit = {"html": 500, None: 20}.get(fmt)
    writers = {"html": write_html, "csv": write_csv, "json": write_json}
    with app.store().session() as session:
        report = build_report(
            session,
            days=days,
            skus=skus,
            suggestion_limit=limit,
            # the terminal and the CSV show no charts: skip their queries
            chart_limit=charts if fmt in ("html", "json") else 0,
            staleness_limit=app.settings.scheduler.staleness_limit,
        )
        if fmt is None:
            from monitor.report.terminal import print_report

            print_report(report, stdout)
            return
        if out is None:
            writers[fmt](report, sys.stdout)
            sys.stdout.flush()
            return
        _write_atomically(out, lambda handle: writers[fmt](report, handle))
    click.echo(f"report written to {out} ({fmt}, {report.summary.pending} pending suggestions)", err=as_json)


def _write_atomically(path: Path, write: Callable[[Any], Any]) -> None:
    """Write through a temporary file beside `path`, so a failed run never leaves half a report."""
    from monitor.files import replaced_atomically

    folder = path.resolve().parent
    if not folder.is_dir():
        raise PricemonError(f"cannot write {path}: folder {folder} does not exist")
    with replaced_atomically(folder / path.name) as handle:
        write(handle)


@cli.command("demo")
@click.option(
    "--out",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default="pricemon-demo",
    show_default=True,
    help="Folder for the demo's database, config, CSVs and report.html.",
)
def demo_command(folder: Path) -> None:
    """Run a whole cycle on bundled demo shops (127.0.0.1 only): import, two sweeps, suggestions, report."""
    from monitor.demo.scenario import run_demo

    run_demo(folder, echo=click.echo)


# --- alerts (issue 8) -----------------------------------------------------------------------


@cli.group("alerts", invoke_without_command=True)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000), help="Newest alerts shown.")
@click.option("--rule", default=None, help="Only alerts of this rule.")
@json_option
@click.pass_context
def alerts_group(ctx: click.Context, limit: int, rule: str | None, as_json: bool) -> None:
    """List recent alerts and their delivery per channel; `alerts test RULE` sends a sample."""
    if ctx.invoked_subcommand is not None:
        return
    from monitor.store.alerts import recent_alerts

    app = ctx.find_object(App)
    assert app is not None
    with app.store().session() as session:
        rows = recent_alerts(session, limit=limit, rule=rule)
    if as_json:
        print_json(rows)
        return

    def deliveries(row: dict[str, Any]) -> str:
        parts = []
        for d in row["deliveries"]:
            state = d["status"] if d["status"] != "failed" else f"failed x{d['attempts']}: {d['last_error']}"
            parts.append(f"{d['channel']}: {state}")
        return "; ".join(parts)

    print_table(
        f"{len(rows)} alert(s)",
        ["Raised", "Rule", "Condition", "Message", "Delivery"],
        ([r["created_at"], r["rule"], r["condition"], r["message"], deliveries(r)] for r in rows),
    )


@alerts_group.command("test")
@click.argument("rule")
@json_option
@pass_app
def alerts_test(app: App, rule: str, as_json: bool) -> None:
    """Send a sample alert through every channel of RULE (nothing is stored); exit 1 if one fails."""
    from monitor.alerts import send_test

    results = send_test(app.settings, rule)
    if as_json:
        channels = [{"channel": c, "sent": e is None, "error": e} for c, e in results.items()]
        print_json({"rule": rule, "channels": channels})
    else:
        for channel, error in results.items():
            click.echo(f"{rule} -> {channel}: " + ("sent" if error is None else f"FAILED: {error}"))
    if any(error is not None for error in results.values()):
        raise click.exceptions.Exit(1)


@alerts_group.command("deliver")
@json_option
@pass_app
def alerts_deliver(app: App, as_json: bool) -> None:
    """Send the alerts that are due now (those whose channel failed are retried with backoff)."""
    from monitor.alerts import deliver_pending

    counts = deliver_pending(app.settings, app.store())
    data = {"sent": counts["sent"], "failed": counts["failed"], "waiting": counts["waiting"]}
    if as_json:
        print_json(data)
    else:
        click.echo(
            f"alerts: {data['sent']} sent, {data['failed']} failed (kept for a retry), {data['waiting']} waiting"
        )
