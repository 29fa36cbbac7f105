"""Database, config and catalogue commands: `db`, `config check`, `import`, `products`, `listings`, `history`."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click

from monitor.cli.base import App, cli, json_option, pass_app, print_json, print_table, stock_text
from monitor.errors import PricemonError
from monitor.settings import redact_url

logger = logging.getLogger(__name__)


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
    """Import products, listings, sales or traffic from CSV (idempotent upserts, all-or-nothing)."""


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


@import_group.command("sales")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@json_option
@pass_app
def import_sales_command(app: App, file: Path, as_json: bool) -> None:
    """Upsert our daily sales from FILE (columns sku,date,units,revenue; optional price), one row
    per product and day (date as YYYY-MM-DD). A row without a price gets the price pricemon had
    applied at the end of that day."""
    from monitor.demand.imports import import_sales

    with app.store().session() as session:
        summary = import_sales(session, file)
    _print_daily_import(file, "sales", summary, as_json)


@import_group.command("traffic")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@json_option
@pass_app
def import_traffic_command(app: App, file: Path, as_json: bool) -> None:
    """Upsert our daily traffic from FILE (columns sku,date,sessions; optional clicks), one row
    per product and day (e.g. product page views and add-to-cart clicks)."""
    from monitor.demand.imports import import_traffic

    with app.store().session() as session:
        summary = import_traffic(session, file)
    _print_daily_import(file, "traffic", summary, as_json)


def _print_daily_import(file: Path, what: str, summary: Any, as_json: bool) -> None:
    data = {"file": str(file), "inserted": summary.inserted, "updated": summary.updated}
    if what == "sales":
        data["prices_from_history"] = summary.prices_from_history
    if as_json:
        print_json(data)
        return
    line = f"{file}: {summary.total} {what} row(s): {summary.inserted} new, {summary.updated} already there (rewritten)"
    if what == "sales" and summary.prices_from_history:
        line += f"; {summary.prices_from_history} price(s) taken from pricemon's applied prices"
    click.echo(line)


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
                stock_text(r["in_stock"]),
                r["observed_at"],
                r["last_outcome"],
                r["consecutive_failures"] or "",
                r["url"],
            ]
            for r in rows
        ),
    )


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
                stock_text(r["in_stock"]),
                " ".join(f for f in ("suspicious", "currency_mismatch") if r[f]),
            ]
            for r in rows
        ),
    )
