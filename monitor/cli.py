"""The `pricemon` command: parses arguments, calls the modules that do the work, prints results.

Every command that shows data takes `--json` and then prints JSON only. Mistakes a user can
make end as `pricemon: error: <what> (<where>)` and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from monitor.errors import PricemonError
from monitor.settings import Settings, load_settings, redact_url
from monitor.store.database import Store, open_store

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

stdout = Console(highlight=False, soft_wrap=True)


@dataclass
class App:
    """What every command shares: the options given to `pricemon` itself, and lazily opened
    settings and store (so `--help` works without a config or a database)."""

    config_path: str | None
    database_url: str | None
    strategies_dir: str | None
    _settings: Settings | None = None
    _store: Store | None = None
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(
                self.config_path, database_url=self.database_url, strategies_dir=self.strategies_dir
            )
        return self._settings

    def store(self, *, migrate: bool | None = None) -> Store:
        if self._store is None:
            self._store = open_store(self.settings.database_url, migrate=migrate)
            self.cleanups.append(self._store.dispose)
        return self._store


pass_app = click.make_pass_decorator(App)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON only.")(func)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def print_table(title: str | None, columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> None:
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        # Scraped values go in as plain text: rich markup in them must not be interpreted.
        table.add_row(*("" if v is None else str(v) for v in row))
    stdout.print(table, markup=False)


def configure_logging(level: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        from monitor.logs import JsonFormatter

        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    from monitor.redact import install_log_filter

    install_log_filter(handler)  # the safety net: no secret reaches a log line, whoever logs it
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    "config_path",
    envvar="PRICEMON_CONFIG",
    type=click.Path(dir_okay=False),
    help="Config file (TOML). Env: PRICEMON_CONFIG. Without one, pricemon uses ./pricemon.db and no competitors.",
)
@click.option(
    "--database-url",
    envvar="PRICEMON_DATABASE_URL",
    help="SQLAlchemy database URL; overrides the config. Env: PRICEMON_DATABASE_URL.",
)
@click.option(
    "--strategies-dir",
    type=click.Path(file_okay=False),
    help="Folder of strategy plugin files (*.py); overrides `strategies_dir` in the config.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="warning",
    show_default=True,
    help="Logging detail on stderr.",
)
@click.version_option(package_name="pricemon", prog_name="pricemon")
@click.pass_context
def cli(
    ctx: click.Context, config_path: str | None, database_url: str | None, strategies_dir: str | None, log_level: str
) -> None:
    """pricemon: watch competitors' prices, keep their history, suggest and apply our prices.

    \b
    Typical use:
      pricemon demo                                 see everything work on a bundled demo
      pricemon --config pricemon.toml import products products.csv
      pricemon --config pricemon.toml import listings listings.csv
      pricemon --config pricemon.toml run           the scheduler daemon
      pricemon --config pricemon.toml report --out report.html
    """
    configure_logging(log_level)
    app = App(config_path=config_path, database_url=database_url, strategies_dir=strategies_dir)
    ctx.obj = app
    ctx.call_on_close(lambda: [cleanup() for cleanup in reversed(app.cleanups)])


# --- database -------------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """Create or upgrade the database schema (Alembic migrations)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@pass_app
def db_upgrade(app: App, revision: str) -> None:
    """Apply the migrations; the only way pricemon's schema is created or changed."""
    from monitor.store.database import current_revision, make_engine, upgrade

    engine = make_engine(app.settings.database_url)
    try:
        before = current_revision(engine)
        upgrade(engine, revision)
        after = current_revision(engine)
    except Exception as exc:  # translated: a failed migration is the user's database state
        from sqlalchemy.exc import SQLAlchemyError

        if isinstance(exc, SQLAlchemyError):
            raise PricemonError(f"migration failed on {redact_url(app.settings.database_url)}: {exc}") from None
        raise
    finally:
        engine.dispose()
    click.echo(f"database {redact_url(app.settings.database_url)}: revision {before or '(empty)'} -> {after}")


@db.command("current")
@json_option
@pass_app
def db_current(app: App, as_json: bool) -> None:
    """Show the schema revision of the database and the one this pricemon needs."""
    from monitor.store.database import current_revision, head_revision, make_engine

    engine = make_engine(app.settings.database_url)
    try:
        current = current_revision(engine)
    finally:
        engine.dispose()
    data = {"database": redact_url(app.settings.database_url), "current": current, "head": head_revision()}
    if as_json:
        print_json(data)
    else:
        click.echo(f"{data['database']}: at {current or '(empty)'}, pricemon needs {data['head']}")


# --- config ---------------------------------------------------------------------------------


@cli.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("check")
@json_option
@pass_app
def config_check(app: App, as_json: bool) -> None:
    """Validate the config file and print what pricemon understood (secrets shown as ***).

    Beyond the file itself: strategy names and options per assignment, secrets' environment
    variables, the feed's CSV path. Warnings go to stderr; any error exits 1."""
    from monitor.config_check import check_config
    from monitor.errors import ConfigError
    from monitor.redact import redact_value

    settings = app.settings
    found = check_config(settings)
    for warning in found.warnings:
        click.echo(f"pricemon: warning: {warning}", err=True)
    if found.errors:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(found.errors))
    if any(c.render == "browser" for c in settings.competitors):
        from monitor.scrape.render import check_browser

        check_browser(settings.scrape.browser_executable)  # a sweep would refuse to start
    # The serializers hide header values and credentials; redact_value is the safety net.
    data = redact_value(settings.model_dump(mode="json", exclude={"source"}))
    if as_json:
        print_json({**data, "warnings": found.warnings})
        return
    click.echo(f"{settings.source}: OK, {len(settings.competitors)} competitor(s), database {data['database_url']}")
    for competitor in settings.competitors:
        schedule = f"cron {competitor.cron}" if competitor.cron else f"every {competitor.interval}"
        click.echo(f"  {competitor.name}: {competitor.base_url} ({schedule}, {competitor.max_concurrency} at a time)")


# --- catalogue ------------------------------------------------------------------------------


@cli.group("import")
def import_group() -> None:
    """Import products or listings from CSV (idempotent upserts, all-or-nothing)."""


@import_group.command("products")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--overwrite-prices",
    is_flag=True,
    help="Take the file's prices even where pricemon applied a price after the product's last import.",
)
@json_option
@pass_app
def import_products_command(app: App, file: Path, overwrite_prices: bool, as_json: bool) -> None:
    """Upsert our products from FILE (columns sku,name,price,currency; optional
    cost,min_price,max_price,map_price,gtin,tags with tags separated by ';'). A product whose price
    pricemon applied after its last import keeps that price (listed) unless --overwrite-prices."""
    from monitor.store.catalog import import_products

    with app.store().session() as session:
        summary = import_products(session, file, overwrite_prices=overwrite_prices)
    _print_import(file, "products", summary, as_json)
    if summary.kept_prices and not as_json:
        click.echo(
            f"kept the price pricemon applied since the last import for {len(summary.kept_prices)} product(s): "
            f"{', '.join(summary.kept_prices)} (--overwrite-prices takes the file's)"
        )


@import_group.command("listings")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@json_option
@pass_app
def import_listings_command(app: App, file: Path, as_json: bool) -> None:
    """Upsert competitor listings from FILE (columns sku,competitor,url); competitors come from the config."""
    from monitor.store.catalog import import_listings

    with app.store().session() as session:
        summary = import_listings(session, file, app.settings.competitors)
    _print_import(file, "listings", summary, as_json)


def _print_import(file: Path, what: str, summary: Any, as_json: bool) -> None:
    data = {"file": str(file), "inserted": summary.inserted, "updated": summary.updated, "unchanged": summary.unchanged}
    if what == "products":
        data["kept_prices"] = list(summary.kept_prices)
    if as_json:
        print_json(data)
    else:
        click.echo(
            f"{file}: {summary.total} {what}: {summary.inserted} new, {summary.updated} updated, "
            f"{summary.unchanged} unchanged"
        )


@cli.command("products")
@click.option("--sku", "skus", multiple=True, help="Only this SKU (repeatable).")
@json_option
@pass_app
def products_command(app: App, skus: tuple[str, ...], as_json: bool) -> None:
    """List our products."""
    from monitor.store.catalog import product_rows

    with app.store().session() as session:
        rows = product_rows(session, skus=skus)
    if as_json:
        print_json(rows)
        return
    print_table(
        f"{len(rows)} product(s)",
        ["SKU", "Name", "Price", "Cur", "Cost", "Min", "Max", "MAP", "Tags"],
        (
            [
                r["sku"],
                r["name"],
                r["price"],
                r["currency"],
                r["cost"],
                r["min_price"],
                r["max_price"],
                r["map_price"],
                ";".join(r["tags"]),
            ]
            for r in rows
        ),
    )


@cli.command("listings")
@click.option("--sku", "skus", multiple=True, help="Only listings of this SKU (repeatable).")
@click.option("--competitor", "competitors", multiple=True, help="Only this competitor (repeatable).")
@json_option
@pass_app
def listings_command(app: App, skus: tuple[str, ...], competitors: tuple[str, ...], as_json: bool) -> None:
    """List competitor listings with their latest observation and last outcome."""
    from monitor.store.catalog import listing_rows

    with app.store().session() as session:
        if as_json:
            # Streamed: a catalogue of 170,000 listings is printed without holding it all.
            click.echo("[")
            first = True
            for row in listing_rows(session, skus=skus, competitors=competitors):
                click.echo(("" if first else ",\n") + json.dumps(row, ensure_ascii=False), nl=False)
                first = False
            click.echo("\n]")
            return
        rows = list(listing_rows(session, skus=skus, competitors=competitors))
    print_table(
        f"{len(rows)} listing(s)",
        ["SKU", "Competitor", "Price", "Cur", "In stock", "Observed", "Outcome", "Fails", "URL"],
        (
            [
                r["sku"],
                r["competitor"],
                r["price"],
                r["currency"],
                _stock(r["in_stock"]),
                r["observed_at"],
                r["last_outcome"],
                r["consecutive_failures"] or "",
                r["url"],
            ]
            for r in rows
        ),
    )


def _stock(value: bool | None) -> str:
    return "?" if value is None else ("yes" if value else "no")


@cli.command("history")
@click.argument("sku")
@json_option
@pass_app
def history_command(app: App, sku: str, as_json: bool) -> None:
    """Show one product's price history across its listings (one row per change)."""
    from monitor.store.catalog import history_rows

    with app.store().session() as session:
        rows = history_rows(session, sku)
    if as_json:
        print_json(rows)
        return
    print_table(
        f"{sku}: {len(rows)} change(s)",
        ["Observed", "Last seen", "Competitor", "Price", "Cur", "In stock", "Flags"],
        (
            [
                r["observed_at"],
                r["last_seen_at"],
                r["competitor"],
                r["price"],
                r["currency"],
                _stock(r["in_stock"]),
                " ".join(f for f in ("suspicious", "currency_mismatch") if r[f]),
            ]
            for r in rows
        ),
    )


# --- scraping (issue 3) ---------------------------------------------------------------------


@cli.command("scrape")
@click.option("--competitor", "competitors", multiple=True, help="Only this competitor (repeatable).")
@click.option("--sku", "skus", multiple=True, help="Only listings of this SKU (repeatable).")
@click.option("--due-only", is_flag=True, help="Only listings whose next check is due.")
@click.option("--wait", is_flag=True, help="Wait for competitors another sweep holds instead of skipping them.")
@json_option
@pass_app
def scrape_command(
    app: App, competitors: tuple[str, ...], skus: tuple[str, ...], due_only: bool, wait: bool, as_json: bool
) -> None:
    """Run one sweep now: fetch, read and store the listings' prices, then print a summary.

    \b
    A competitor another sweep is sweeping (another `scrape`, the daemon, on any machine) is
    skipped, naming the run that holds it; --wait waits for it instead. SIGTERM/SIGINT: start
    nothing new, let batches in flight commit (scheduler.grace_period), close the run as
    interrupted, exit 143/130; a second signal stops at once.
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
                app.settings, competitors=competitors or None, skus=skus, due_only=due_only, progress=report,
                stop=stop, wait=wait,
            )
    else:
        summary = run_sweep(
            app.settings, competitors=competitors or None, skus=skus, due_only=due_only, stop=stop, wait=wait
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
            [name, checked, counts.get("changed", 0), unchanged, counts.get("suspicious", 0), failures,
             f"{float(counts.get('seconds', 0)):.1f}s"]
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
@click.option("--render", is_flag=True, help="Render the page in headless Chromium first (as render = \"browser\").")
@click.option("--find", "finds", multiple=True, metavar="PRICE",
              help="List the elements that show PRICE, with a selector for each; one per SOURCE, in order.")
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
    options: dict[str, Any] = {"selector": selector, "currency": currency, "decimal_separator": decimal_separator,
               "in_stock": in_stock, "out_of_stock": out_of_stock}
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
        {"price": format_amount(c.price), "currency": c.currency, "method": c.method, "source": c.source,
         "text": text}
        for c, text in zip(result.candidates, texts, strict=True)
    ]
    if result.status != "ok":
        if as_json:
            print_json({"price": None, "currency": None, "in_stock": result.in_stock, "method": None,
                        "status": result.status, "message": result.message, "candidates": candidates})
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
    click.echo(f"in stock  {_stock(result.in_stock)}")
    click.echo(f"method    {result.method} ({result.message})")
    if result.gtin or result.sku:
        click.echo(f"gtin/sku  {result.gtin or '-'} / {result.sku or '-'}")
    _print_candidates(candidates)


def _print_candidates(candidates: list[dict[str, Any]]) -> None:
    print_table("candidates", ["Price", "Cur", "Method", "Source", "Read from"],
                ([c["price"], c["currency"], c["method"], c["source"], c["text"]] for c in candidates))


def _print_found(found: Any) -> None:
    for page in found.pages:
        print_table(
            f"{page.source}: {len(page.matches)} element(s) showing {page.price}",
            ["Element", "Text", "Selector", "extract gives"],
            (
                [m.element, m.text, m.selector or "-",
                 f"{m.result.status} {m.result.price or ''} {m.result.currency or ''}".strip() if m.result else "-"]
                for m in page.matches
            ),
        )
    if found.proposal:
        click.echo(f"selector  {found.proposal}   (reads the price of every page given)")
        click.echo(f"config    [competitors.selectors] price = {json.dumps(found.proposal)}")


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
    healthy = all(row.healthy for row in rows)
    if as_json:
        print_json(
            {
                "healthy": healthy,
                "now": now.isoformat(),
                "staleness_limit_seconds": settings.scheduler.staleness_limit.total_seconds(),
                "competitors": [status_to_json(row) for row in rows],
            }
        )
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
        f"{len(rows)} suggestion(s)",
        ["ID", "SKU", "Current", "Suggested", "Cur", "Strategy", "Status", "Reason"],
        (
            [r["id"], r["sku"], r["current_price"], r["suggested_price"], r["currency"], r["strategy"], r["status"],
             r["reason"]]
            for r in rows
        ),
    )


def _decide(app: App, status: str, ids: tuple[int, ...], skus: tuple[str, ...], everything: bool, by: str | None,
            dry_run: bool, as_json: bool) -> None:
    from monitor.store.suggestions import decide

    who = by or _current_user()
    with app.store().session() as session:
        decided = decide(session, status, ids=ids, skus=skus, everything=everything, by=who, dry_run=dry_run)
    if as_json:
        print_json({status: len(decided), "ids": [d["id"] for d in decided], "suggestions": decided,
                    "dry_run": dry_run})
        return
    verb = {"approved": "approve", "rejected": "reject"}[status]
    click.echo(f"would {verb} {len(decided)} suggestion(s) (dry run: nothing changed)" if dry_run
               else f"{len(decided)} suggestion(s) {status}")
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
        app: App, ids: tuple[int, ...], skus: tuple[str, ...], everything: bool, by: str | None, dry_run: bool,
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
        click.echo(f"feed: webhook failed: {feed.error}; will retry on the next apply or `pricemon feed send`",
                   err=True)
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
@click.option("--strategy", "strategy", required=True, help="Strategy to replay.")
@click.option("--days", type=click.IntRange(min=1), default=30, show_default=True, help="How far back.")
@click.option("--sku", "skus", multiple=True, help="Only this SKU (repeatable).")
@json_option
@pass_app
def backtest_command(app: App, strategy: str, days: int, skus: tuple[str, ...], as_json: bool) -> None:
    """Replay stored history: what STRATEGY would have suggested at each competitor change."""
    from monitor.pricing.workflow import backtest

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
    import os
    import tempfile

    folder = path.resolve().parent
    if not folder.is_dir():
        raise PricemonError(f"cannot write {path}: folder {folder} does not exist")
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.")
    try:
        # mkstemp makes the file private (0600); a report is an ordinary file for the user's umask
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            write(handle)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


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


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `pricemon` console script."""
    try:
        code = cli.main(args=argv, prog_name="pricemon", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("pricemon: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        from monitor.redact import redact_text

        click.echo(f"pricemon: error: {redact_text(exc.format_message())}", err=True)
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            click.echo(f"Try '{exc.ctx.command_path} --help'.", err=True)
        sys.exit(exc.exit_code)
    except PricemonError as exc:
        from monitor.redact import redact_text

        click.echo(f"pricemon: error: {redact_text(str(exc))}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
