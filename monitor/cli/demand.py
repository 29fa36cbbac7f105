"""Demand model commands: `demand fit` and `demand show`."""

from __future__ import annotations

import click

from monitor.cli.base import App, cli, json_option, pass_app, print_json, print_table
from monitor.errors import NotFoundError


@cli.group("demand")
def demand_group() -> None:
    """Fit and show the demand models (elasticity per product) from our own sales."""


@demand_group.command("fit")
@json_option
@pass_app
def demand_fit(app: App, as_json: bool) -> None:
    """Fit every product's demand model from the imported sales and traffic, and store it."""
    from monitor.demand.fit import fit_store

    summary = fit_store(app.store(), min_observations=app.settings.demand.min_observations)
    data = {"products": summary.products, "statuses": summary.statuses, "seconds": round(summary.seconds, 2)}
    if as_json:
        print_json(data)
        return
    counts = ", ".join(f"{n} {status}" for status, n in sorted(summary.statuses.items())) or "no products"
    click.echo(f"fitted {summary.products} product(s) in {summary.seconds:.1f}s: {counts}")


@demand_group.command("show")
@click.option("--sku", "skus", multiple=True, help="Only this SKU (repeatable).")
@json_option
@pass_app
def demand_show(app: App, skus: tuple[str, ...], as_json: bool) -> None:
    """Show the fitted models: elasticity with its 95% interval, cross elasticity to the price
    index, conversion rate, observations (days) and status per product."""
    from monitor.demand.store import estimate_rows

    with app.store().session() as session:
        rows = estimate_rows(session, skus=skus)
    missing = [s for s in skus if s not in {r["sku"] for r in rows}]
    if missing:
        raise NotFoundError(f"no demand model for SKU(s) {', '.join(missing)} (unknown, or not fitted yet)")
    if as_json:
        print_json(rows)
        return
    print_table(
        f"{len(rows)} demand model(s)",
        ["SKU", "Elasticity", "95% interval", "Cross", "Conversion", "Days", "Status", "Method"],
        (
            [
                r["sku"],
                _num(r["elasticity"]),
                f"{_num(r['ci_low'])} .. {_num(r['ci_high'])}" if r["ci_low"] is not None else "",
                _num(r["cross_elasticity"]),
                f"{r['conversion_rate']:.2%}" if r["conversion_rate"] is not None else "",
                r["observations"],
                r["status"],
                r["method"],
            ]
            for r in rows
        ),
    )


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"
