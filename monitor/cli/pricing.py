"""Strategies, suggestions and the feed: `strategies`, `suggest`, `suggestions`, `approve`, `reject`,
`apply`, `feed`, `backtest`."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from monitor.cli.base import App, cli, json_option, pass_app, print_json, print_table

logger = logging.getLogger(__name__)


# --- strategies, suggestions, feed (issue 5) ------------------------------------------------


@cli.group("strategies")
def strategies_group() -> None:
    """Pricing strategy plugins (entry points `pricemon.strategies` and --strategies-dir files)."""


@strategies_group.command("list")
@json_option
@pass_app
def strategies_list(app: App, as_json: bool) -> None:
    """Show every strategy: name, description, options with defaults, and where it comes from."""
    from monitor.pricing.loader import StrategyManager, describe_strategies

    rows = describe_strategies(StrategyManager(app.settings.strategies_dir))
    if as_json:
        print_json(rows)
        return
    print_table(
        f"{len(rows)} strateg{'y' if len(rows) == 1 else 'ies'}",
        ["Name", "Description", "Options", "Source"],
        (
            [
                r["name"] or "(failed)",
                r["error"] or r["description"],
                "; ".join(f"{k}={o['default']} ({o['type']})" for k, o in r["options"].items()),
                r["source"],
            ]
            for r in rows
        ),
    )


@cli.command("suggest")
@click.option("--sku", "skus", multiple=True, help="Only this SKU (repeatable).")
@json_option
@pass_app
def suggest_command(app: App, skus: tuple[str, ...], as_json: bool) -> None:
    """Compute price suggestions for all active products and store them as pending."""
    from monitor.pricing.workflow import compute_suggestions

    summary = compute_suggestions(app.settings, app.store(), skus=skus)
    if as_json:
        print_json(summary.as_dict())
        return
    click.echo(
        f"{summary.products} product(s): {summary.suggested} suggestion(s), {summary.unchanged} already at the "
        f"suggested price, {summary.no_change} without a suggestion, {summary.failed} failed"
        + (f", {summary.held} held by the guardrails" if summary.held else "")
        + (f", {summary.refused} refused" if summary.refused else "")
        + (f", {summary.auto_applied} auto-applied" if summary.auto_applied else "")
        + (f"; expected profit {_per_currency(summary.expected_profit_change)}/day from "
           f"{summary.with_demand_model} with a demand model" if summary.with_demand_model else "")
    )
    for held in summary.held_reasons:
        click.echo(f"  {held['sku']} keeps its price: {held['reason']}", err=True)
    for error in summary.errors:
        click.echo(f"  {error['sku']}: {error['error']}", err=True)


@cli.command("suggestions")
@click.option(
    "--status",
    type=click.Choice(["pending", "approved", "rejected", "applied", "superseded", "all"]),
    default="pending",
    show_default=True,
    help="Which suggestions to show.",
)
@click.option("--sku", "skus", multiple=True, help="Only this SKU (repeatable).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Show at most this many.")
@json_option
@pass_app
def suggestions_command(app: App, status: str, skus: tuple[str, ...], limit: int | None, as_json: bool) -> None:
    """List price suggestions with their reasons."""
    from monitor.store.suggestions import suggestion_rows

    with app.store().session() as session:
        rows = suggestion_rows(session, status=None if status == "all" else status, skus=skus, limit=limit)
    if as_json:
        print_json(rows)
        return
    print_table(
        f"{len(rows)} suggestion(s){_expected_summary(rows)}",
        ["ID", "SKU", "Current", "Suggested", "Cur", "Exp. profit/day", "Strategy", "Status", "Reason"],
        (
            [
                r["id"],
                r["sku"],
                r["current_price"],
                r["suggested_price"],
                r["currency"],
                _signed(r["expected_profit_change"]),
                r["strategy"],
                r["status"],
                r["reason"],
            ]
            for r in rows
        ),
    )


def _signed(amount: str | None) -> str:
    return "" if amount is None else amount if amount.startswith("-") or amount == "0.00" else f"+{amount}"


def _per_currency(totals: dict[str, Any]) -> str:
    return ", ".join(f"{_signed(f'{value:.2f}')} {currency}" for currency, value in sorted(totals.items()))


def _expected_summary(rows: list[dict[str, Any]]) -> str:
    """`; expected profit +14.20 EUR/day in total (2 with a demand model)`, per currency."""
    from decimal import Decimal

    totals: dict[str, Decimal] = {}
    counted = 0
    for r in rows:
        if r["expected_profit_change"] is not None:
            counted += 1
            totals[r["currency"]] = totals.get(r["currency"], Decimal(0)) + Decimal(r["expected_profit_change"])
    if not counted:
        return ""
    shown = ", ".join(f"{_signed(f'{v:.2f}')} {cur}/day" for cur, v in sorted(totals.items()))
    return f"; expected profit {shown} in total ({counted} with a demand model)"


def _decide(
    app: App,
    status: str,
    ids: tuple[int, ...],
    skus: tuple[str, ...],
    everything: bool,
    by: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    from monitor.store.suggestions import decide

    who = by or _current_user()
    with app.store().session() as session:
        decided = decide(session, status, ids=ids, skus=skus, everything=everything, by=who, dry_run=dry_run)
    if as_json:
        print_json(
            {status: len(decided), "ids": [d["id"] for d in decided], "suggestions": decided, "dry_run": dry_run}
        )
        return
    verb = {"approved": "approve", "rejected": "reject"}[status]
    click.echo(
        f"would {verb} {len(decided)} suggestion(s) (dry run: nothing changed)"
        if dry_run
        else f"{len(decided)} suggestion(s) {status}"
    )
    for d in decided:
        click.echo(f"  {d['id']} {d['sku']}: {d['current_price']} -> {d['suggested_price']} {d['currency']}")


def _current_user() -> str:
    import getpass
    import os

    try:
        return os.environ.get("USER") or getpass.getuser()
    except Exception:  # no user database entry (e.g. a container): still an audit trail
        return "unknown"


_by_option = click.option("--by", default=None, help="Who decides (default: $USER).")
_dry_run_option = click.option("--dry-run", is_flag=True, help="Show what would happen; change nothing.")


def _decision_command(name: str, status: str, verb: str) -> None:
    """`pricemon approve` and `pricemon reject`: the same selection, a different decision."""

    @click.argument("ids", nargs=-1, type=int)
    @click.option("--sku", "skus", multiple=True, help="Pending suggestions of this SKU (repeatable).")
    @click.option("--all", "everything", is_flag=True, help="Every pending suggestion (not with IDs or --sku).")
    @_by_option
    @_dry_run_option
    @json_option
    @pass_app
    def decide(
        app: App,
        ids: tuple[int, ...],
        skus: tuple[str, ...],
        everything: bool,
        by: str | None,
        dry_run: bool,
        as_json: bool,
    ) -> None:
        _decide(app, status, ids, skus, everything, by, dry_run, as_json)

    decide.__doc__ = f"{verb} pending suggestions: ID..., --sku SKU or --all."
    cli.command(name)(decide)


_decision_command("approve", "approved", "Approve")
_decision_command("reject", "rejected", "Reject")


@cli.command("apply")
@_by_option
@_dry_run_option
@json_option
@pass_app
def apply_command(app: App, by: str | None, dry_run: bool, as_json: bool) -> None:
    """Apply approved suggestions (audit record each) and send the price feed."""
    from dataclasses import asdict

    from monitor.pricing.workflow import apply_suggestions

    if dry_run:
        from monitor.store.suggestions import approved_rows

        with app.store().session() as session:
            would = approved_rows(session)
        if as_json:
            print_json({"applied": would, "feed": None, "dry_run": True})
            return
        click.echo(f"would apply {len(would)} price(s) (dry run: nothing changed, no feed sent)")
        for change in would:
            click.echo(f"  {change['sku']}: {change['old_price']} -> {change['new_price']} {change['currency']}")
        return
    applied, feed = apply_suggestions(app.settings, app.store(), by=by or _current_user())
    if as_json:
        print_json({"applied": applied, "feed": asdict(feed), "dry_run": False})
        return
    click.echo(f"{len(applied)} price(s) applied")
    for change in applied:
        click.echo(f"  {change['sku']}: {change['old_price']} -> {change['new_price']} {change['currency']}")
    _echo_feed(feed)


def _echo_feed(feed: Any) -> None:
    if feed.csv_path:
        click.echo(f"feed: {feed.csv_rows} product(s) written to {feed.csv_path}")
    if feed.sent or feed.failed:
        click.echo(f"feed: {feed.sent} change(s) sent, {feed.failed} not sent")
    if feed.error:
        click.echo(
            f"feed: webhook failed: {feed.error}; will retry on the next apply or `pricemon feed send`", err=True
        )
    if feed.csv_error:
        click.echo(f"feed: {feed.csv_error}; the next apply or `pricemon feed send` writes it", err=True)


@cli.group("feed")
def feed_group() -> None:
    """The price feed out (CSV file and webhook)."""


@feed_group.command("send")
@json_option
@pass_app
def feed_send(app: App, as_json: bool) -> None:
    """Write the CSV feed and re-send every change the webhook has not confirmed."""
    from dataclasses import asdict

    from monitor.pricing.workflow import send_feed

    feed = send_feed(app.settings, app.store())
    if as_json:
        print_json(asdict(feed))
    else:
        _echo_feed(feed)
        if not (feed.csv_path or feed.csv_error or feed.sent or feed.failed):
            click.echo("feed: nothing to send")
    if feed.error or feed.csv_error:
        sys.exit(1)


@cli.command("backtest")
@click.option("--strategy", "strategies", required=True, multiple=True,
              help="Strategy to replay; repeat it to compare several side by side.")
@click.option("--days", type=click.IntRange(min=1), default=30, show_default=True, help="How far back.")
@click.option("--sku", "skus", multiple=True, help="Only this SKU (repeatable).")
@json_option
@pass_app
def backtest_command(app: App, strategies: tuple[str, ...], days: int, skus: tuple[str, ...], as_json: bool) -> None:
    """Replay stored history: what each STRATEGY would have suggested at each competitor change, and
    (with fitted demand models) its expected units, revenue and profit against the prices charged."""
    from monitor.pricing.workflow import backtest, compare_strategies

    names = tuple(dict.fromkeys(strategies))
    if len(names) > 1:
        comparison = compare_strategies(app.settings, app.store(), names, days=days, skus=skus)
        if as_json:
            print_json(comparison)
            return
        _echo_comparison(comparison)
        return
    (strategy,) = names
    result = backtest(app.settings, app.store(), strategy, days=days, skus=skus)
    if as_json:
        print_json(result)
        return
    click.echo(
        f"{strategy} over {days} day(s): {result['products']} product(s), {result['events']} market change(s), "
        f"{result['suggestions']} price change(s), {result['failed']} failure(s)"
    )
    rows = [
        [p["sku"], e["at"], e["lowest"], e["suggested"] or "", e["our_price"], f"{e['rank_before']}->{e['rank_after']}"]
        for p in result["results"]
        for e in p["events"]
    ]
    print_table(None, ["SKU", "At", "Lowest", "Suggested", "Our price", "Rank"], rows)
    expected = result["expected"]
    if expected is None:
        click.echo("expected sales: no product has a usable demand model (see `pricemon demand fit`)")
        return
    print_table(
        f"Expected over {days} day(s), {expected['products']} product(s) with a demand model",
        ["Prices", "Units", "Revenue", "Profit"],
        [[label, f"{t['units']:.1f}", t["revenue"], t["profit"] or ""]
         for label, t in ((strategy, expected["strategy"]), ("charged", expected["charged"]))],
    )
    if expected["profit_difference"] is not None:
        click.echo(f"{strategy} vs the prices charged: expected profit {_signed(expected['profit_difference'])}")


def _echo_comparison(comparison: dict[str, Any]) -> None:
    click.echo(f"{len(comparison['comparison'])} strategies over {comparison['days']} day(s)")
    rows = []
    for row in comparison["comparison"]:
        t = row["expected"]
        rows.append([row["strategy"], row["suggestions"], row["failed"],
                     f"{t['units']:.1f}" if t else "", t["revenue"] if t else "", (t["profit"] or "") if t else "",
                     _signed(row["profit_difference"])])
    charged = comparison["charged"]
    if charged is not None:
        rows.append(["(prices charged)", "", "", f"{charged['units']:.1f}", charged["revenue"], charged["profit"] or "",
                     ""])
    print_table(None, ["Strategy", "Price changes", "Failures", "Exp. units", "Exp. revenue", "Exp. profit",
                       "Profit vs charged"], rows)
    if charged is None:
        click.echo("expected sales: no product has a usable demand model (see `pricemon demand fit`)")
