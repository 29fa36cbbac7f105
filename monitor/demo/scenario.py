"""`pricemon demo`: a whole pricing cycle on a bundled demo web, driven through the real CLI.

It writes a config, products and listings into a folder, starts the demo shops on 127.0.0.1,
and then runs exactly the commands a user would (`import`, `scrape`, `suggest`, `report`) via
`monitor.cli.main`, moving some competitor prices between the two sweeps.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from monitor.demo.shops import DemoWeb, Item, Shop
from monitor.errors import PricemonError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DemoProduct:
    sku: str
    name: str
    price: str
    cost: str
    gtin: str
    #: competitor prices at the first sweep, by shop
    offers: dict[str, str]


CATALOGUE = [
    DemoProduct("KET-100", "Steel kettle 1.7 l", "39.99", "24.00", "4006381333931",
                {"jsonmart": "37.90", "microstore": "38.50", "eurohaus": "41.00"}),
    DemoProduct("TOA-200", "Toaster, 2 slots", "29.99", "17.50", "4006381333948",
                {"jsonmart": "31.49", "plainshop": "28.95", "brokenshop": "27.00"}),
    DemoProduct("BLE-300", "Blender 600 W", "89.00", "55.00", "4006381333955",
                {"microstore": "84.99", "eurohaus": "86.50", "plainshop": "92.00"}),
    DemoProduct("MUG-400", "Stoneware mug, set of 4", "24.90", "9.80", "4006381333962",
                {"jsonmart": "22.00", "plainshop": "23.50"}),
    DemoProduct("PAN-500", "Frying pan 28 cm", "34.50", "18.00", "4006381333979",
                {"jsonmart": "36.99", "microstore": "35.90", "eurohaus": "33.95", "brokenshop": "30.00"}),
    DemoProduct("KNI-600", "Chef's knife 20 cm", "59.00", "31.00", "4006381333986",
                {"plainshop": "54.90", "eurohaus": "57.50"}),
    DemoProduct("GRI-700", "Coffee grinder", "45.00", "26.00", "4006381333993",
                {"jsonmart": "49.90", "microstore": "47.00"}),
    DemoProduct("SCA-800", "Kitchen scale", "19.99", "8.40", "4006381334006",
                {"microstore": "17.99", "plainshop": "18.49", "brokenshop": "15.00"}),
    DemoProduct("JUI-900", "Citrus juicer", "27.50", "14.00", "4006381334013",
                {"jsonmart": "29.00", "eurohaus": "26.90"}),
    DemoProduct("POT-110", "Stock pot 8 l", "64.00", "38.00", "4006381334020",
                {"microstore": "69.00", "plainshop": "66.50", "eurohaus": "62.00"}),
    DemoProduct("BOA-120", "Bamboo cutting board", "15.90", "6.10", "4006381334037",
                {"jsonmart": "14.99", "plainshop": "16.20"}),
    DemoProduct("WHI-130", "Hand whisk", "7.99", "2.30", "4006381334044",
                {"microstore": "8.49", "eurohaus": "7.49", "brokenshop": "6.00"}),
    DemoProduct("ESP-140", "Espresso machine, dual boiler", "1249.00", "880.00", "4006381334051",
                {"jsonmart": "1289.00", "eurohaus": "1199.00"}),
]  # fmt: skip

#: what each shop looks like, and the selectors the config needs to read it
SHOPS = [
    ("jsonmart", "jsonld", {}),
    ("microstore", "microdata", {}),
    ("plainshop", "plain", {"price": ".box .amount", "currency": "EUR", "in_stock": ".stock.in",
                            "out_of_stock": ".stock.out"}),
    ("eurohaus", "european", {"price": ".preis", "currency": "EUR", "decimal_separator": ",",
                              "in_stock": "text:sofort lieferbar", "out_of_stock": "text:ausverkauft"}),
    ("brokenshop", "broken", {"price": ".price"}),
]  # fmt: skip

#: (shop, sku) -> (new price, in stock) applied between the two sweeps
MOVES = {
    ("jsonmart", "KET-100"): ("35.90", True),
    ("jsonmart", "MUG-400"): ("20.50", True),
    ("microstore", "SCA-800"): ("16.99", True),
    ("microstore", "GRI-700"): ("44.00", True),
    ("plainshop", "KNI-600"): ("54.90", False),
    ("eurohaus", "POT-110"): ("58.90", True),
    ("eurohaus", "JUI-900"): ("27.90", True),
}
#: out of stock from the start
SOLD_OUT = {("microstore", "BLE-300")}


def build_shops() -> list[Shop]:
    shops = {name: Shop(name=name, style=style, selectors=dict(selectors)) for name, style, selectors in SHOPS}
    for product in CATALOGUE:
        for shop, price in product.offers.items():
            shops[shop].items[product.sku] = Item(
                sku=product.sku,
                name=product.name,
                gtin=product.gtin,
                price=Decimal(price),
                in_stock=(shop, product.sku) not in SOLD_OUT,
            )
    return list(shops.values())


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def database_url(folder: Path) -> str:
    return "sqlite:///" + str((folder / "pricemon.db").resolve())


def write_config(folder: Path, web: DemoWeb) -> Path:
    lines = [
        "# Written by `pricemon demo`: the demo shops run on 127.0.0.1 only while the demo runs.",
        f"database_url = {_toml_string(database_url(folder))}",
        "",
        "[scrape]",
        "# the failing demo shop should not hold the demo up",
        'timeout = "5s"',
        "retries = 1",
        'backoff_base = "100ms"',
        "workers = 1",
    ]
    for shop in web.shops.values():
        lines += [
            "",
            "[[competitors]]",
            f"name = {_toml_string(shop.name)}",
            f"base_url = {_toml_string(shop.base_url)}",
            'every = "15m"',
            'min_delay = "10ms"',
        ]
        if shop.selectors:
            lines.append("[competitors.selectors]")
            lines += [f"{key} = {_toml_string(value)}" for key, value in shop.selectors.items()]
    path = folder / "pricemon.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_catalogue(folder: Path, web: DemoWeb) -> tuple[Path, Path]:
    products = folder / "products.csv"
    with products.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sku", "name", "price", "currency", "cost", "gtin"])
        for p in CATALOGUE:
            writer.writerow([p.sku, p.name, p.price, "EUR", p.cost, p.gtin])
    listings = folder / "listings.csv"
    with listings.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sku", "competitor", "url"])
        for p in CATALOGUE:
            for shop in p.offers:
                writer.writerow([p.sku, shop, web.shops[shop].url(p.sku)])
    return products, listings


def fresh_folder(folder: Path) -> None:
    """Create the folder; remove only what an earlier demo wrote there, so the database is new."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("pricemon.db", "pricemon.db-wal", "pricemon.db-shm", "report.html"):
        (folder / name).unlink(missing_ok=True)


class Step:
    """Runs one `pricemon` command in-process, exactly as a user would type it."""

    def __init__(self, config: Path, database_url: str, echo: Callable[[str], None]) -> None:
        self.config = config
        self.database_url = database_url
        self.echo = echo

    def __call__(self, *args: str) -> str:
        from monitor.cli import main

        argv = ["--config", str(self.config), *args]
        self.echo(f"$ pricemon {' '.join(argv)}")
        # Named explicitly so a PRICEMON_DATABASE_URL in the environment (a real store) is never
        # the one the demo fills.
        argv = ["--database-url", self.database_url, *argv]
        out, err = io.StringIO(), io.StringIO()
        code: Any = 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(argv)
            except SystemExit as exc:
                code = exc.code
        if code not in (0, None):
            raise PricemonError(f"demo step `pricemon {' '.join(args)}` failed (exit {code}): {err.getvalue().strip()}")
        return out.getvalue()


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _sweep_line(data: Any) -> str:
    if not isinstance(data, dict):
        return "  sweep finished"
    parts = [f"  checked {data.get('checked')} listings: {data.get('changed')} changed, {data.get('failed')} failed"]
    competitors = data.get("competitors")
    if isinstance(competitors, dict):
        for name, counts in sorted(competitors.items()):
            shown = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if k != "seconds")
            parts.append(f"    {name}: {shown}")
    return "\n".join(parts)


def run_demo(folder: Path, *, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the whole demo in `folder`; returns what it measured (also printed through `echo`)."""
    started = time.monotonic()
    folder = folder.resolve()
    fresh_folder(folder)
    with DemoWeb(build_shops()) as web:
        echo(f"Demo shops on 127.0.0.1: {', '.join(f'{s.name} ({s.style})' for s in web.shops.values())}")
        config = write_config(folder, web)
        products, listings = write_catalogue(folder, web)
        echo(f"Wrote {config}, {products.name} ({len(CATALOGUE)} products) and {listings.name}")
        pricemon = Step(config, database_url(folder), echo)

        pricemon("db", "upgrade")
        pricemon("import", "products", str(products))
        pricemon("import", "listings", str(listings))

        echo("Sweep 1: every listing at every shop")
        first = _json(pricemon("scrape", "--json"))
        echo(_sweep_line(first))

        for (shop, sku), (price, in_stock) in MOVES.items():
            web.shops[shop].set_price(sku, price, in_stock=in_stock)
        echo(f"Competitors moved {len(MOVES)} prices (one item sold out); sweep 2:")
        second = _json(pricemon("scrape", "--json"))
        echo(_sweep_line(second))

        echo("Computing price suggestions")
        suggested = pricemon("suggest")
        echo("  " + suggested.strip().replace("\n", "\n  ") if suggested.strip() else "  done")

    report = folder / "report.html"
    pricemon("report", "--out", str(report))
    summary = (_json(pricemon("report", "--json")) or {}).get("summary", {})
    seconds = time.monotonic() - started
    echo("")
    echo(
        f"Done in {seconds:.1f}s: {summary.get('products')} products, {summary.get('listings')} listings at "
        f"{summary.get('competitors')} competitors, {summary.get('checks')} checks in {summary.get('runs')} sweeps, "
        f"{summary.get('pending_suggestions')} pending suggestions."
    )
    echo(f"Report: {report}")
    echo("Explore further with:")
    for command in ("listings", "history KET-100", "suggestions", "report"):
        echo(f"  pricemon --config {config} {command}")
    return {"seconds": seconds, "summary": summary, "report": str(report), "config": str(config)}
