"""The compact console view of a report: summary, top suggestions and competitor health."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from monitor.report.build import Report
from monitor.report.render import ago, money, signed


def _table(title: str, columns: list[str], rows: list[list[str]], whole: tuple[str, ...] = ()) -> Table:
    """A table whose cells fold when the terminal is narrow, except the `whole` columns."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        wide = 12 if column == "Product" else None  # a scraped name stays readable when the terminal is narrow
        table.add_column(column, overflow="fold", no_wrap=column in whole, min_width=wide)
    for row in rows:
        # Text, not str: scraped values must never be read as rich markup
        table.add_row(*(Text(value) for value in row))
    return table


def print_report(report: Report, console: Console) -> int:
    """Print the report; returns how many suggestion rows were shown."""
    s = report.summary
    median = "-" if s.median_change_pct is None else f"{signed(s.median_change_pct)}%"
    console.print(
        Text(
            f"pricemon report, last {report.days} day(s): {s.products} products, {s.competitors} competitors, "
            f"{s.listings} listings; {s.checks} checks in {s.runs} sweep(s); {s.failing_listings} failing, "
            f"{s.stale_listings} stale listings; {s.pending} pending suggestions ({s.raises} raises, {s.cuts} cuts, "
            f"median change {median}); {s.above_market} products above the market median, {s.below_market} below, "
            f"{s.at_market} at it"
        )
    )
    rows = []
    for row in report.suggestions:
        sg, m = row.suggestion, row.market
        (margin_before, margin_after), (index_before, index_after) = row.margins, row.indexes
        rows.append(
            [
                sg.sku,
                sg.name[:40],
                f"{money(sg.current_price)} {sg.currency}",
                money(sg.suggested_price),
                f"{'+' if sg.impact > 0 else ''}{row.change_pct}%",
                money(sg.cost),
                f"{margin_before}->{margin_after}%" if margin_before is not None else "",
                f"{money(m.low)}/{money(m.median)}/{money(m.high)}" if m.low is not None else "",
                f"{index_before}->{index_after}" if index_before is not None else "",
                f"{m.rank}/{m.offers + 1}" if m.rank else "",
                sg.strategy,
            ]
        )
    shown = len(rows)
    if rows:
        title = f"Pending suggestions by impact (top {shown} of {s.pending})"
        columns = [
            "SKU",
            "Product",
            "Ours",
            "Suggested",
            "Change",
            "Cost",
            "Margin %",
            "Min/median/max",
            "Index",
            "Rank",
            "Strategy",
        ]
        console.print(_table(title, columns, rows, whole=("SKU", "Suggested", "Change")))
    health = [
        [
            h.name,
            str(h.listings),
            str(h.checks),
            "-" if h.success_rate is None else f"{h.success_rate:.0%}",
            str(h.failing),
            str(h.stale),
            ago(h.last_success_at, report.generated_at),
            (h.last_error or "")[:60],
        ]
        for h in report.health
    ]
    if health:
        columns = ["Competitor", "Listings", "Checks", "Success", "Failing", "Stale", "Last success", "Last error"]
        console.print(_table("Competitor health", columns, health))
    for note in report.notes:
        console.print(Text(note))
    return shown
