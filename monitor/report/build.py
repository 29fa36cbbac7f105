"""Assemble the report from the store: what a pricing manager reads, in the order they work.

The caller hands in a session (only `monitor.store` opens them) and renders the result while
that session is open: the suggestion rows are a stream, so a catalogue of 170,000 products
is written out without being held in memory.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy.orm import Session

from monitor.errors import NotFoundError
from monitor.store.models import utcnow
from monitor.store.reporting import (
    AppliedChange,
    CompetitorHealth,
    Offer,
    PendingSuggestion,
    ProductChart,
    Summary,
    chart_data,
    competitor_health,
    latest_offers,
    pending_suggestions,
    percent_of,
    product_ids_for_skus,
    recent_changes,
    report_summary,
)

logger = logging.getLogger(__name__)

#: how many suggestions are looked up together (market snapshot of a chunk in one query)
CHUNK = 500


@dataclass(frozen=True, slots=True)
class Market:
    """The competitor prices a suggestion was made against."""

    low: Decimal | None
    median: Decimal | None
    high: Decimal | None
    rank: int | None  # our position among the offers plus us, 1 = cheapest
    offers: int
    source: str  # "strategy" (the suggestion's own snapshot) or "latest" (computed from latest offers)


@dataclass(frozen=True, slots=True)
class SuggestionRow:
    suggestion: PendingSuggestion
    market: Market

    @property
    def change_pct(self) -> Decimal | None:
        current = self.suggestion.current_price
        if not current:
            return None
        return ((self.suggestion.impact / current) * 100).quantize(Decimal("0.1"), ROUND_HALF_UP)

    def margin_pct(self, price: Decimal) -> Decimal | None:
        """Gross margin at `price`, in % of the price: (price - cost) / price; None without a cost."""
        cost = self.suggestion.cost
        return None if cost is None or price <= 0 else percent_of(price - cost, price)

    def price_index(self, price: Decimal) -> Decimal | None:
        """`price` as % of the market median (100 = at the median, 110 = 10% above it)."""
        median = self.market.median
        return None if median is None or median <= 0 else percent_of(price, median)

    @property
    def margins(self) -> tuple[Decimal | None, Decimal | None]:
        """Margin % at our price and at the suggested one."""
        return self.margin_pct(self.suggestion.current_price), self.margin_pct(self.suggestion.suggested_price)

    @property
    def indexes(self) -> tuple[Decimal | None, Decimal | None]:
        """Price index at our price and at the suggested one."""
        return self.price_index(self.suggestion.current_price), self.price_index(self.suggestion.suggested_price)


@dataclass(slots=True)
class Chart:
    """One product's chart, aligned for plotting: `x` in Unix seconds (millisecond precision, as
    two sweeps can be a second apart), one value list per series."""

    sku: str
    name: str
    currency: str
    x: list[float]
    series: list[dict[str, Any]]


@dataclass(slots=True)
class Report:
    generated_at: datetime
    start: datetime
    days: int
    summary: Summary
    #: pending suggestions by impact; a stream (read it once, inside the session)
    suggestions: Iterator[SuggestionRow]
    #: at most this many suggestion rows are listed (None: all)
    suggestion_limit: int | None
    charts: list[Chart]
    #: products with a pending suggestion that got no chart because of the cap
    charts_left_out: int
    chart_limit: int
    health: list[CompetitorHealth]
    changes: list[AppliedChange]
    change_limit: int
    notes: list[str] = field(default_factory=list)


# Keys the strategies may use in `Suggestion.details` for their market snapshot.
_DETAIL_KEYS = {
    "low": ("min", "competitor_min", "market_min", "lowest"),
    "median": ("median", "competitor_median", "market_median"),
    "high": ("max", "competitor_max", "market_max", "highest"),
    "rank": ("rank_before", "rank", "our_rank"),
    "offers": ("offers_used", "offers", "offer_count", "offers_total"),
}


def _detail(details: dict[str, Any], what: str) -> Any:
    # the snapshot may sit at the top level or under a "market" key
    nested = details.get("market")
    for place in (details, nested if isinstance(nested, dict) else {}):
        for key in _DETAIL_KEYS[what]:
            if place.get(key) is not None:
                return place[key]
    return None


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        return None
    return number if number.is_finite() else None


def market_from_details(details: dict[str, Any]) -> Market | None:
    """The snapshot the strategy stored with its suggestion, when it has min/median/max."""
    low, median, high = (_decimal(_detail(details, k)) for k in ("low", "median", "high"))
    if low is None and median is None and high is None:
        return None
    rank = _detail(details, "rank")
    offers = _detail(details, "offers")
    if isinstance(offers, list):
        offers = len(offers)
    return Market(
        low=low,
        median=median,
        high=high,
        rank=rank if isinstance(rank, int) and not isinstance(rank, bool) else None,
        offers=offers if isinstance(offers, int) and not isinstance(offers, bool) else 0,
        source="strategy",
    )


def market_from_offers(our_price: Decimal, currency: str, offers: Sequence[Offer]) -> Market:
    """Min/median/max of the trusted, in-stock offers in our currency, and where our price ranks."""
    prices = sorted(
        o.price for o in offers if o.in_stock is not False and not o.suspicious and o.currency in (None, currency)
    )
    if not prices:
        return Market(None, None, None, None, 0, "latest")
    median = statistics.median(prices)
    return Market(
        low=prices[0],
        median=Decimal(median).quantize(Decimal("0.0001")) if not isinstance(median, Decimal) else median,
        high=prices[-1],
        rank=1 + sum(1 for p in prices if p < our_price),
        offers=len(prices),
        source="latest",
    )


def suggestion_rows(session: Session, *, limit: int | None) -> Iterator[SuggestionRow]:
    """Pending suggestions by impact with their market snapshot, looked up a chunk at a time."""
    stream = pending_suggestions(session, limit=limit)
    while True:
        chunk = [(s, market_from_details(s.details)) for _, s in zip(range(CHUNK), stream, strict=False)]
        if not chunk:
            return
        missing = {s.product_id for s, market in chunk if market is None}
        offers = latest_offers(session, sorted(missing)) if missing else {}
        for s, market in chunk:
            yield SuggestionRow(
                s, market or market_from_offers(s.current_price, s.currency, offers.get(s.product_id, []))
            )


def align_chart(chart: ProductChart) -> Chart:
    """Put every series on one shared time axis; a series holds its last value until its next point."""
    xs = sorted({round(t.timestamp(), 3) for s in chart.series for t, _ in s.points})
    aligned = []
    for series in chart.series:
        by_time: dict[float, Decimal | None] = {}
        for t, value in series.points:
            by_time[round(t.timestamp(), 3)] = value
        last_x = max(by_time) if by_time else None
        values: list[float | None] = []
        current: Decimal | None = None
        for x in xs:
            if x in by_time:
                current = by_time[x]
            # float only for drawing; every price shown as text stays a Decimal string
            values.append(None if current is None or last_x is None or x > last_x else float(current))
        aligned.append(
            {"label": series.label, "kind": series.kind, "competitor": series.competitor, "values": values}
        )
    return Chart(chart.sku, chart.name, chart.currency, xs, aligned)


def build_report(
    session: Session,
    *,
    days: int = 30,
    skus: Sequence[str] = (),
    suggestion_limit: int | None = 500,
    chart_limit: int = 50,
    change_limit: int = 50,
    staleness_limit: timedelta = timedelta(hours=6),
    now: datetime | None = None,
) -> Report:
    """Everything the report shows for the last `days` days; `skus` add charts for those products."""
    now = now or utcnow()
    start = now - timedelta(days=days)
    requested = product_ids_for_skus(session, skus) if skus else {}
    unknown = [sku for sku in skus if sku not in requested]
    if unknown:
        raise NotFoundError(f"unknown SKU(s) for --sku: {', '.join(unknown)}")
    summary = report_summary(session, start=start, now=now, staleness_limit=staleness_limit)
    # The charts follow the suggestions' order: the products whose price would move most.
    top = [s.product_id for s in pending_suggestions(session, limit=chart_limit)]
    chart_ids = list(dict.fromkeys([*requested.values(), *top]))
    charts = [align_chart(c) for c in chart_data(session, chart_ids, start=start, now=now)]
    notes = []
    left_out = max(0, summary.pending - len(top))
    if left_out:
        notes.append(
            f"Charts are drawn for the {len(top)} products with the largest suggested price moves"
            f"{' and the --sku products' if requested else ''}; {left_out} more products have pending suggestions."
        )
    if suggestion_limit is not None and summary.pending > suggestion_limit:
        notes.append(
            f"The suggestions table lists the top {suggestion_limit} of {summary.pending} pending suggestions"
            " by impact; `pricemon report --format csv --out FILE` writes all of them."
        )
    logger.info("report: %d pending suggestions, %d charts", summary.pending, len(charts))
    return Report(
        generated_at=now,
        start=start,
        days=days,
        summary=summary,
        suggestions=suggestion_rows(session, limit=suggestion_limit),
        suggestion_limit=suggestion_limit,
        charts=charts,
        charts_left_out=left_out,
        chart_limit=chart_limit,
        health=competitor_health(session, start=start, now=now, staleness_limit=staleness_limit),
        changes=recent_changes(session, start=start, limit=change_limit),
        change_limit=change_limit,
        notes=notes,
    )
