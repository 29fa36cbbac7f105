"""Chart code shared by the static report and the review workspace.

A competitor keeps one colour everywhere (every chart, the legend, the matrix), chosen from its
name rather than from its position in a list, so "acme is orange" holds across products, pages
and reports. The drawing itself is one script, `assets/pricechart.js`, inlined into the report
and served to the workspace.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Any

from monitor.report.build import Chart

#: colour-blind-safe, distinct on white (Tableau 10 without red, which marks stock-outs, and grey)
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#393b79",
    "#637939",
    "#8c6d31",
    "#7b4173",
)
OURS = "#111111"
OUT_OF_STOCK = "#d62728"


def competitor_colour(name: str) -> str:
    """The colour of competitor `name`: the same in every chart, page and report."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return PALETTE[int.from_bytes(digest[:4], "big") % len(PALETTE)]


def series_colour(series: dict[str, Any]) -> str:
    kind = series.get("kind")
    if kind == "ours":
        return OURS
    return competitor_colour(str(series.get("competitor") or series.get("label", "")))


def chart_payload(chart: Chart) -> dict[str, Any]:
    """What pricechart.js draws: the aligned axis and each series with its colour and kind."""
    return {
        "sku": chart.sku,
        "name": chart.name,
        "currency": chart.currency,
        "x": chart.x,
        "series": [{**s, "colour": series_colour(s)} for s in chart.series],
    }


def chart_script() -> str:
    return resources.files("monitor.report").joinpath("assets", "pricechart.js").read_text(encoding="utf-8")
