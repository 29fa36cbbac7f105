"""The compact console view of a report: summary, top suggestions and competitor health."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from monitor.report.build import Report
from monitor.report.render import ago, money


def _table(title: str, columns: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        # Text, not str: scraped values must never be read as rich markup
        table.add_row(*(Text(value) for value in row))
    return table


def print_report(report: Report, console: Console) -> int:
    """Print the report; returns how many suggestion rows were shown."""
    s = report.summary
    impact = ", ".join(f"{'+' if v > 0 else ''}{money(v)} {c}" for c, v in s.impact.items()) or "0"
    console.print(
        Text(
            f"pricemon report, last {report.days} day(s): {s.products} products, {s.competitors} competitors, "
            f"{s.listings} listings; {s.checks} checks in {s.runs} sweep(s); {s.failing_listings} failing, "
            f"{s.stale_listings} stale listings; {s.pending} pending suggestions (impact {impact})"
        )
    )
    rows = []
    for row in report.suggestions:
        sg, m = row.suggestion, row.market
        rows.append(
            [
                sg.sku,
                sg.name[:40],
                f"{money(sg.current_price)} {sg.currency}",
                money(sg.suggested_price),
                f"{'+' if sg.impact > 0 else ''}{row.change_pct}%",
                f"{money(m.low)}/{money(m.median)}/{money(m.high)}" if m.low is not None else "",
                f"{m.rank}/{m.offers + 1}" if m.rank else "",
                sg.strategy,
            ]
        )
    shown = len(rows)
    if rows:
        title = f"Pending suggestions by impact (top {shown} of {s.pending})"
        columns = ["SKU", "Product", "Ours", "Suggested", "Change", "Min/median/max", "Rank", "Strategy"]
        console.print(_table(title, columns, rows))
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
