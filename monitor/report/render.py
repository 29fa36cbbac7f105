"""Write a `Report` as one self-contained HTML file, as CSV, as JSON, or as a terminal summary.

Every scraped string (titles, competitor names, errors, URLs) is untrusted: the HTML goes
through Jinja2 with autoescape, and chart data is embedded as JSON with `<`, `>` and `&`
escaped so no value can close its `<script>` element.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cache
from importlib.resources import files
from typing import IO, Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from monitor.money import format_amount
from monitor.report.build import Report, SuggestionRow
from monitor.report.charts import chart_payload as chart_payload_of
from monitor.report.charts import chart_script
from monitor.safecsv import SafeDictWriter

CSV_COLUMNS = [
    "sku",
    "name",
    "currency",
    "current_price",
    "suggested_price",
    "impact",
    "change_pct",
    "cost",
    "margin_before_pct",
    "margin_after_pct",
    "competitor_min",
    "competitor_median",
    "competitor_max",
    "price_index_before",
    "price_index_after",
    "our_rank",
    "offers",
    "strategy",
    "reason",
    "suggestion_id",
    "created_at",
]


def suggestion_record(row: SuggestionRow) -> dict[str, Any]:
    """One suggestion as plain JSON-able values; money as strings, never floats."""
    s, m = row.suggestion, row.market
    pct = row.change_pct
    (margin_before, margin_after), (index_before, index_after) = row.margins, row.indexes
    return {
        "suggestion_id": s.id,
        "sku": s.sku,
        "name": s.name,
        "currency": s.currency,
        "current_price": format_amount(s.current_price),
        "suggested_price": format_amount(s.suggested_price),
        "impact": format_amount(s.impact),
        "change_pct": _text(pct),
        "cost": format_amount(s.cost),
        "margin_before_pct": _text(margin_before),
        "margin_after_pct": _text(margin_after),
        "competitor_min": format_amount(m.low),
        "competitor_median": format_amount(m.median),
        "competitor_max": format_amount(m.high),
        "price_index_before": _text(index_before),
        "price_index_after": _text(index_after),
        "our_rank": m.rank,
        "offers": m.offers,
        "strategy": s.strategy,
        "reason": s.reason,
        "created_at": s.created_at.isoformat(),
    }


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def write_csv(report: Report, out: IO[str]) -> int:
    """The pending suggestions, one row each, biggest impact first; returns the row count."""
    writer = SafeDictWriter(out, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    count = 0
    for row in report.suggestions:
        writer.writerow({k: "" if v is None else v for k, v in suggestion_record(row).items()})
        count += 1
    return count


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _head(report: Report) -> dict[str, Any]:
    s = report.summary
    return {
        "generated_at": _iso(report.generated_at),
        "period": {"start": _iso(report.start), "end": _iso(report.generated_at), "days": report.days},
        "summary": {
            "products": s.products,
            "competitors": s.competitors,
            "listings": s.listings,
            "runs": s.runs,
            "checks": s.checks,
            "failed_checks": s.failed_checks,
            "failing_listings": s.failing_listings,
            "stale_listings": s.stale_listings,
            "never_checked": s.never_checked,
            "pending_suggestions": s.pending,
            "raises": s.raises,
            "cuts": s.cuts,
            "median_change_pct": _text(s.median_change_pct),
            "above_market": s.above_market,
            "at_market": s.at_market,
            "below_market": s.below_market,
        },
        "notes": report.notes,
    }


def _tail(report: Report) -> dict[str, Any]:
    return {
        "charts": [
            {
                "sku": c.sku,
                "name": c.name,
                "currency": c.currency,
                "x": c.x,
                "series": c.series,
            }
            for c in report.charts
        ],
        "competitors": [
            {
                "name": h.name,
                "base_url": h.base_url,
                "listings": h.listings,
                "failing": h.failing,
                "stale": h.stale,
                "checks": h.checks,
                "success_rate": None if h.success_rate is None else round(h.success_rate, 4),
                "outcomes": dict(sorted(h.outcomes.items())),
                "last_success_at": _iso(h.last_success_at),
                "last_checked_at": _iso(h.last_checked_at),
                "last_error": h.last_error,
                "last_error_url": h.last_error_url,
            }
            for h in report.health
        ],
        "recent_changes": [
            {
                "applied_at": _iso(c.applied_at),
                "sku": c.sku,
                "name": c.name,
                "currency": c.currency,
                "old_price": format_amount(c.old_price),
                "new_price": format_amount(c.new_price),
                "strategy": c.strategy,
                "reason": c.reason,
                "applied_by": c.applied_by,
                "feed_state": c.feed_state,
            }
            for c in report.changes
        ],
    }


def write_json(report: Report, out: IO[str]) -> int:
    """The whole report as one JSON object; the suggestions array is streamed row by row."""
    head = json.dumps(_head(report), indent=2, ensure_ascii=False)
    out.write(head[:-2] + ',\n  "suggestions": [')
    count = 0
    for row in report.suggestions:
        out.write(("\n    " if count == 0 else ",\n    ") + json.dumps(suggestion_record(row), ensure_ascii=False))
        count += 1
    tail = json.dumps(_tail(report), indent=2, ensure_ascii=False)
    out.write("\n  ],\n" + tail[2:] + "\n")
    return count


def script_json(data: Any) -> Markup:
    """JSON safe inside `<script type="application/json">`: no value can end the element."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    # U+2028/2029 are valid in JSON but were line breaks to older JavaScript parsers
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return Markup(text)


def money(value: Decimal | None) -> str:
    return "" if value is None else format_amount(value) or ""


def signed(value: Decimal) -> str:
    """`+2.5`, `-1.0`, `0.0`: a change with its sign."""
    return f"+{value}" if value > 0 else str(value)


def ago(value: datetime | None, now: datetime) -> str:
    """`3m ago`, `2h ago`, `4d ago`: how stale a time is, at a glance."""
    if value is None:
        return "never"
    seconds = max(0, int((now - value) / timedelta(seconds=1)))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("monitor.report", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = money
    env.filters["signed"] = signed
    env.filters["count"] = lambda n: f"{n:,}".replace(",", "\u202f")  # narrow no-break space groups digits
    env.globals["ago"] = ago
    return env


@cache
def _asset(name: str) -> Markup:
    text = files("monitor.report").joinpath("assets", name).read_text(encoding="utf-8")
    # vendored files we ship, inlined once so the page opens offline
    return Markup(text)


class _Counted:
    """Counts the rows of a stream while the template reads it."""

    def __init__(self, rows: Iterator[SuggestionRow]) -> None:
        self.rows = rows
        self.count = 0

    def __iter__(self) -> Iterator[SuggestionRow]:
        for row in self.rows:
            self.count += 1
            yield row


def write_html(report: Report, out: IO[str]) -> int:
    """The report as one HTML file with uPlot and the data inlined; returns suggestion rows written."""
    template = _environment().get_template("report.html.j2")
    rows = _Counted(report.suggestions)
    chart_payload = [chart_payload_of(c) for c in report.charts]
    for chunk in template.generate(
        report=report,
        rows=rows,
        charts=report.charts,
        chart_json=script_json(chart_payload),
        uplot_js=_asset("uPlot.iife.min.js"),
        chart_js=Markup(chart_script()),  # our own file, not data
        uplot_css=_asset("uPlot.min.css"),
        now=report.generated_at,
    ):
        out.write(chunk)
    return rows.count
