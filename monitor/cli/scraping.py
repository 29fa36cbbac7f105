"""Scraping commands: `scrape` and `extract`."""

from __future__ import annotations

import json
import logging
from typing import Any

import click
from rich.console import Console

from monitor.cli.base import App, cli, json_option, pass_app, print_json, print_table, stock_text
from monitor.errors import PricemonError

logger = logging.getLogger(__name__)


# --- scraping (issue 3) ---------------------------------------------------------------------


@cli.command("scrape")
@click.option("--competitor", "competitors", multiple=True, help="Only this competitor (repeatable).")
@click.option("--sku", "skus", multiple=True, help="Only listings of this SKU (repeatable).")
@click.option("--due-only", is_flag=True, help="Only listings whose next check is due.")
@click.option("--wait", is_flag=True, help="Wait for competitors another sweep holds instead of skipping them.")
@click.option("--local", is_flag=True, help="Sweep in this process even when [cluster] broker_url is set.")
@json_option
@pass_app
def scrape_command(
    app: App,
    competitors: tuple[str, ...],
    skus: tuple[str, ...],
    due_only: bool,
    wait: bool,
    local: bool,
    as_json: bool,
) -> None:
    """Run one sweep now: fetch, read and store the listings' prices, then print a summary.

    \b
    A competitor another sweep is sweeping (another `scrape`, the daemon, on any machine) is
    skipped, naming the run that holds it; --wait waits for it instead. SIGTERM/SIGINT: start
    nothing new, let batches in flight commit (scheduler.grace_period), close the run as
    interrupted, exit 143/130; a second signal stops at once.

    With [cluster] broker_url set, the sweep is cut into chunks for `pricemon worker`s and this
    waits for them (cluster.wait_timeout), then prints the same summary; --local sweeps here.
    """
    import time

    from monitor.scrape.sweep import SignalStop, run_sweep

    app.store()  # migrate (SQLite) or refuse (others) before any worker starts
    if skus:
        from monitor.errors import NotFoundError
        from monitor.store.catalog import unknown_skus

        with app.store().session() as session:
            unknown = unknown_skus(session, skus)
        if unknown:
            listed = ", ".join(map(repr, unknown))
            raise NotFoundError(f"unknown SKU(s) {listed} (not in the catalogue; see `pricemon products`)")
    stop = SignalStop.install()
    app.cleanups.append(stop.restore)
    err = Console(stderr=True)
    show_progress = not as_json and err.is_terminal
    if show_progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(
            TextColumn("sweep"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} pages/s, {task.fields[errors]} errors"),
            TimeElapsedColumn(),
            console=err,
        ) as bar:
            task = bar.add_task("sweep", total=None, rate="0", errors=0)
            began = time.perf_counter()

            def report(done: int, total: int, errors: int) -> None:
                rate = done / max(time.perf_counter() - began, 1e-6)
                bar.update(task, completed=done, total=total, rate=f"{rate:,.0f}", errors=errors)

            summary = run_sweep(
                app.settings,
                competitors=competitors or None,
                skus=skus,
                due_only=due_only,
                progress=report,
                stop=stop,
                wait=wait,
                local=local,
            )
    else:
        summary = run_sweep(
            app.settings,
            competitors=competitors or None,
            skus=skus,
            due_only=due_only,
            stop=stop,
            wait=wait,
            local=local,
        )
    for name, holder in summary.skipped.items():
        click.echo(f"pricemon: skipped {name}: it is being swept by {holder}", err=True)
    if app.settings.alerts and summary.run_id is not None:
        # A manual sweep raises the same alerts as the daemon's; channel problems are kept for a retry.
        from monitor.alerts import after_sweep

        after_sweep(app.settings, app.store(), summary.run_id)
    if as_json:
        print_json(summary.to_json())
    else:
        _print_sweep(summary)
    if summary.status == "failed":
        raise PricemonError(f"sweep {summary.run_id} failed: {summary.error}")
    if stop.signum:
        raise click.exceptions.Exit(128 + stop.signum)


def _print_sweep(summary: Any) -> None:
    from monitor.store.history import FAILURE_OUTCOMES

    rows = []
    for name, counts in summary.competitors.items():
        checked = sum(int(n) for k, n in counts.items() if k != "seconds")
        failures = ", ".join(f"{k} {n}" for k, n in sorted(counts.items()) if k in FAILURE_OUTCOMES)
        unchanged = int(counts.get("unchanged", 0)) + int(counts.get("not_modified", 0))
        rows.append(
            [
                name,
                checked,
                counts.get("changed", 0),
                unchanged,
                counts.get("suspicious", 0),
                failures,
                f"{float(counts.get('seconds', 0)):.1f}s",
            ]
        )
    rate = summary.checked / summary.seconds if summary.seconds else 0
    print_table(
        f"sweep {summary.run_id} {summary.status}: {summary.checked} checked, {summary.changed} changed, "
        f"{summary.failed} failed in {summary.seconds:.1f}s ({rate:,.0f} pages/s)",
        ["Competitor", "Checked", "Changed", "Unchanged", "Suspicious", "Failed", "Time"],
        rows,
    )


@cli.command("extract")
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@click.option("--selector", help="CSS selector of the price (overrides the competitor's).")
@click.option("--currency", help="ISO 4217 code used when the page does not say.")
@click.option("--decimal-separator", type=click.Choice([".", ","]), help="How to read ambiguous price text.")
@click.option("--competitor", help="Use this competitor's selectors, headers and politeness.")
@click.option("--in-stock", "in_stock", help='Stock rule to try: CSS selector or "text:phrase" meaning in stock.')
@click.option("--out-of-stock", "out_of_stock", help='Stock rule to try: CSS selector or "text:phrase" for sold out.')
@click.option("--render", is_flag=True, help='Render the page in headless Chromium first (as render = "browser").')
@click.option(
    "--find",
    "finds",
    multiple=True,
    metavar="PRICE",
    help="List the elements that show PRICE, with a selector for each; one per SOURCE, in order.",
)
@json_option
@pass_app
def extract_command(
    app: App,
    sources: tuple[str, ...],
    selector: str | None,
    currency: str | None,
    decimal_separator: str | None,
    competitor: str | None,
    in_stock: str | None,
    out_of_stock: str | None,
    render: bool,
    finds: tuple[str, ...],
    as_json: bool,
) -> None:
    """Show what pricemon would record for one page: SOURCE is an http(s) URL or a local HTML file.

    \b
    With --find PRICE: which elements show that price, and what each one's selector reads.
    Several SOURCEs of one shop, one --find each: the selector that reads all of them.
    """
    from monitor.errors import ExtractionError
    from monitor.money import format_amount
    from monitor.scrape.extract import validate_selector
    from monitor.scrape.probe import load_source, probe_source

    if selector is not None and (problem := validate_selector(selector)):
        raise click.BadParameter(problem, param_hint="--selector")
    options: dict[str, Any] = {
        "selector": selector,
        "currency": currency,
        "decimal_separator": decimal_separator,
        "in_stock": in_stock,
        "out_of_stock": out_of_stock,
    }
    if finds or len(sources) > 1:
        if len(finds) != len(sources):
            raise click.UsageError(f"give one --find PRICE per SOURCE ({len(sources)} source(s), {len(finds)} --find)")
        from monitor.scrape.finder import find_selectors

        pages = [load_source(app.settings, s, competitor=competitor, render=render) for s in sources]
        found = find_selectors(pages, finds, **options)
        if as_json:
            print_json(found.to_json())
        else:
            _print_found(found)
        if not found.proposal:
            where = "every page" if len(sources) > 1 else sources[0]
            raise ExtractionError(f"no selector reads {', '.join(finds)} on {where}")
        return
    from monitor.scrape.fetch import extraction_rules
    from monitor.scrape.finder import candidate_texts
    from monitor.scrape.probe import override_rules

    source = sources[0]
    loaded = load_source(app.settings, source, competitor=competitor, render=render)
    result = probe_source(app.settings, source, loaded=loaded, **options)
    texts = candidate_texts(loaded, override_rules(extraction_rules(loaded.shop), **options), result)
    candidates = [
        {"price": format_amount(c.price), "currency": c.currency, "method": c.method, "source": c.source, "text": text}
        for c, text in zip(result.candidates, texts, strict=True)
    ]
    if result.status != "ok":
        if as_json:
            print_json(
                {
                    "price": None,
                    "currency": None,
                    "in_stock": result.in_stock,
                    "method": None,
                    "status": result.status,
                    "message": result.message,
                    "candidates": candidates,
                }
            )
        elif candidates:
            _print_candidates(candidates)
        raise ExtractionError(f"{source}: {result.status}: {result.message}")
    data = {
        "price": format_amount(result.price),
        "currency": result.currency,
        "in_stock": result.in_stock,
        "method": result.method,
        "gtin": result.gtin,
        "sku": result.sku,
        "message": result.message,
        "candidates": candidates,
    }
    if as_json:
        print_json(data)
        return
    click.echo(f"price     {data['price']} {data['currency'] or ''}".rstrip())
    click.echo(f"in stock  {stock_text(result.in_stock)}")
    click.echo(f"method    {result.method} ({result.message})")
    if result.gtin or result.sku:
        click.echo(f"gtin/sku  {result.gtin or '-'} / {result.sku or '-'}")
    _print_candidates(candidates)


def _print_candidates(candidates: list[dict[str, Any]]) -> None:
    print_table(
        "candidates",
        ["Price", "Cur", "Method", "Source", "Read from"],
        ([c["price"], c["currency"], c["method"], c["source"], c["text"]] for c in candidates),
    )


def _print_found(found: Any) -> None:
    for page in found.pages:
        print_table(
            f"{page.source}: {len(page.matches)} element(s) showing {page.price}",
            ["Element", "Text", "Selector", "extract gives"],
            (
                [
                    m.element,
                    m.text,
                    m.selector or "-",
                    f"{m.result.status} {m.result.price or ''} {m.result.currency or ''}".strip() if m.result else "-",
                ]
                for m in page.matches
            ),
        )
    if found.proposal:
        click.echo(f"selector  {found.proposal}   (reads the price of every page given)")
        click.echo(f"config    [competitors.selectors] price = {json.dumps(found.proposal)}")
