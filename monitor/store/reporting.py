"""The report's queries: summary counts, pending suggestions by impact, market snapshots,
where our prices stand against the market, chart series, competitor health and recent applied changes.

Everything here is sized for a catalogue of 170,000 products: counts are aggregated in SQL,
long lists are streamed (`yield_per`) or capped, and per-product detail is fetched only for
the few products the caller asks about, in chunks.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from monitor.store.history import FAILURE_OUTCOMES, counts_as_offer, seen_until
from monitor.store.models import Competitor, Listing, PriceChange, PriceHistory, Product, ScrapeRun, Suggestion
from monitor.store.review import ReviewFilters, review_totals

CHUNK = 900  # stay below SQLite's bound-parameter limit in IN (...) lists


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(slots=True)
class Summary:
    products: int
    competitors: int
    listings: int
    runs: int
    checks: int
    failed_checks: int
    failing_listings: int
    stale_listings: int
    never_checked: int
    pending: int
    #: pending suggestions that raise / cut our price
    raises: int
    cuts: int
    #: median of the pending suggestions' changes, in % of our price (None: no pending suggestion)
    median_change_pct: Decimal | None
    #: active products whose price is above / at / below the median of their trusted competitor
    #: offers in our currency (products without such offers are in none of them)
    above_market: int
    at_market: int
    below_market: int
    #: pending suggestions whose expected profit change a demand model gave, and its total per day
    #: by currency (money of different currencies is never added up)
    with_demand_model: int = 0
    expected_profit_total: dict[str, Decimal] = field(default_factory=dict)


def report_summary(session: Session, *, start: datetime, now: datetime, staleness_limit: timedelta) -> Summary:
    """Catalogue size, checks in the period (from the runs' counts) and what needs attention."""
    products = session.scalar(select(func.count()).select_from(Product).where(Product.active.is_(True))) or 0
    competitors = session.scalar(select(func.count()).select_from(Competitor)) or 0
    cutoff = now - staleness_limit
    listing_counts = session.execute(
        select(
            func.count(),
            func.sum(case((Listing.consecutive_failures > 0, 1), else_=0)),
            func.sum(
                case(
                    (
                        and_(
                            Listing.last_checked_at.is_not(None),
                            or_(Listing.last_success_at.is_(None), Listing.last_success_at < cutoff),
                        ),
                        1,
                    ),
                    else_=0,
                )
            ),
            func.sum(case((Listing.last_checked_at.is_(None), 1), else_=0)),
        ).where(Listing.active.is_(True))
    ).one()
    runs = checks = failed = 0
    for (counts,) in session.execute(select(ScrapeRun.counts).where(ScrapeRun.started_at >= start)):
        runs += 1
        outcomes = _outcomes(counts)
        checks += sum(outcomes.values())
        failed += sum(n for outcome, n in outcomes.items() if outcome in FAILURE_OUTCOMES)
    pending = pending_totals(session)
    position = market_position(session)
    return Summary(
        products=products,
        competitors=competitors,
        listings=listing_counts[0] or 0,
        runs=runs,
        checks=checks,
        failed_checks=failed,
        failing_listings=listing_counts[1] or 0,
        stale_listings=listing_counts[2] or 0,
        never_checked=listing_counts[3] or 0,
        pending=pending.count,
        raises=pending.raises,
        cuts=pending.cuts,
        median_change_pct=pending.median_change_pct,
        above_market=position["above"],
        at_market=position["at"],
        below_market=position["below"],
        with_demand_model=pending.with_demand_model,
        expected_profit_total=pending.expected_profit_total,
    )


def _outcomes(counts: Any) -> Counter[str]:
    """Outcome totals of one run's `{competitor: {outcome: n, "seconds": s}}`, summed over competitors."""
    total: Counter[str] = Counter()
    if not isinstance(counts, dict):
        return total
    for values in counts.values():
        if isinstance(values, dict):
            for outcome, n in values.items():
                if outcome != "seconds" and isinstance(n, int):
                    total[outcome] += n
    return total


PERCENT = Decimal("0.1")


def percent_of(part: Decimal, whole: Decimal) -> Decimal:
    """`part` as a percentage of `whole` to one place (whole > 0)."""
    return (part * 100 / whole).quantize(PERCENT, ROUND_HALF_UP)


def _median(values: list[Decimal]) -> Decimal:
    values.sort()
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


@dataclass(frozen=True, slots=True)
class PendingTotals:
    count: int
    raises: int
    cuts: int
    median_change_pct: Decimal | None
    with_demand_model: int = 0
    expected_profit_total: dict[str, Decimal] = field(default_factory=dict)


def pending_totals(session: Session) -> PendingTotals:
    """How many suggestions are pending, how many raise or cut our price, and their median change in %.

    Changes are compared in % of each product's own price: summing money over unrelated products
    (and currencies) says nothing.
    """
    query = select(Suggestion.current_price, Suggestion.suggested_price).where(Suggestion.status == "pending")
    changes: list[Decimal] = []
    raises = cuts = 0
    for current, suggested in session.execute(query.execution_options(yield_per=5000)):
        raises += suggested > current
        cuts += suggested < current
        if current > 0:
            changes.append((suggested - current) * 100 / current)
    median = _median(changes).quantize(PERCENT, ROUND_HALF_UP) if changes else None
    queue = review_totals(session, ReviewFilters(status="pending"))
    totals = {c: v.quantize(Decimal("0.01"), ROUND_HALF_UP) for c, v in queue.expected_profit.items()}
    return PendingTotals(len(changes), raises, cuts, median, queue.with_profit_figure, totals)


def market_position(session: Session) -> dict[str, int]:
    """How many active products are priced above, at or below their market median.

    The market of a product is the latest state of each of its active listings that has a price,
    is not stated out of stock, is not flagged suspicious, and is in the product's currency (or
    says none), as in the suggestions table. One streamed pass, ordered by product.
    """
    query = (
        select(Listing.product_id, Product.price, Product.currency, PriceHistory.price, PriceHistory.currency)
        .join(Product, Product.id == Listing.product_id)
        .join(PriceHistory, PriceHistory.id == Listing.latest_history_id)
        .where(
            Product.active.is_(True),
            Listing.active.is_(True),
            PriceHistory.price.is_not(None),
            PriceHistory.in_stock.is_not(False),
            PriceHistory.suspicious.is_not(True),
        )
        .order_by(Listing.product_id)
    )
    counts = {"above": 0, "at": 0, "below": 0}
    product_id: int | None = None
    ours = Decimal(0)
    prices: list[Decimal] = []

    def count() -> None:
        if prices:
            median = _median(prices)
            counts["above" if ours > median else "below" if ours < median else "at"] += 1

    for pid, our_price, currency, price, offer_currency in session.execute(query.execution_options(yield_per=5000)):
        if pid != product_id:
            count()
            product_id, ours, prices = pid, our_price, []
        if price is not None and offer_currency in (None, currency):
            prices.append(price)
    count()
    return counts


@dataclass(slots=True)
class PendingSuggestion:
    id: int
    product_id: int
    sku: str
    name: str
    currency: str
    current_price: Decimal
    suggested_price: Decimal
    strategy: str
    reason: str
    created_at: datetime
    auto_approved: bool
    details: dict[str, Any]
    cost: Decimal | None = None  # the product's cost now (None: unknown)
    #: expected profit per day after minus before, from the demand model (None: no usable model)
    expected_profit_change: Decimal | None = None

    @property
    def expected(self) -> dict[str, Any]:
        """The demand model's expectation stored with the suggestion (units, revenue, profit), or {}."""
        value = self.details.get("expected")
        return value if isinstance(value, dict) else {}

    @property
    def impact(self) -> Decimal:
        return self.suggested_price - self.current_price


def pending_suggestions(session: Session, *, limit: int | None = None) -> Iterator[PendingSuggestion]:
    """Pending suggestions by impact, streamed: those with an expected profit change first, the
    largest change (gain or loss) first; then the rest by the size of the price move (ties by SKU)."""
    impact = func.abs(Suggestion.suggested_price - Suggestion.current_price)
    profit = Suggestion.expected_profit_change
    # Plain columns, not entities: this may stream 170,000 rows and ORM identity tracking
    # would cost more than the query.
    query = (
        select(
            Suggestion.id,
            Suggestion.product_id,
            Product.sku,
            Product.name,
            Suggestion.currency,
            Suggestion.current_price,
            Suggestion.suggested_price,
            Suggestion.strategy,
            Suggestion.reason,
            Suggestion.created_at,
            Suggestion.auto_approved,
            Suggestion.details,
            Product.cost,
            profit,
        )
        .join(Product, Suggestion.product_id == Product.id)
        .where(Suggestion.status == "pending")
        .order_by(
            case((profit.is_(None), 1), else_=0), func.abs(profit).desc(), impact.desc(), Product.sku, Suggestion.id
        )
    )
    if limit is not None:
        query = query.limit(limit)
    for row in session.execute(query.execution_options(yield_per=2000)):
        yield PendingSuggestion(
            id=row.id,
            product_id=row.product_id,
            sku=row.sku,
            name=row.name,
            currency=row.currency,
            current_price=row.current_price,
            suggested_price=row.suggested_price,
            strategy=row.strategy,
            reason=row.reason,
            created_at=row.created_at,
            auto_approved=row.auto_approved,
            details=row.details if isinstance(row.details, dict) else {},
            cost=row.cost,
            expected_profit_change=row.expected_profit_change,
        )


@dataclass(frozen=True, slots=True)
class Offer:
    competitor: str
    price: Decimal
    currency: str | None
    in_stock: bool | None
    suspicious: bool


def latest_offers(session: Session, product_ids: Sequence[int]) -> dict[int, list[Offer]]:
    """Each product's competitors' newest observed state (one row per active listing)."""
    offers: dict[int, list[Offer]] = defaultdict(list)
    for chunk in _chunks(sorted(set(product_ids))):
        query = (
            select(
                Listing.product_id,
                Competitor.name,
                PriceHistory.price,
                PriceHistory.currency,
                PriceHistory.in_stock,
                PriceHistory.suspicious,
            )
            .join(PriceHistory, PriceHistory.id == Listing.latest_history_id)
            .join(Competitor, Competitor.id == Listing.competitor_id)
            .where(
                Listing.product_id.in_(chunk),
                Listing.active.is_(True),
                PriceHistory.price.is_not(None),
                counts_as_offer(),
            )
        )
        for product_id, competitor, price, currency, in_stock, suspicious in session.execute(query):
            if price is not None:
                offers[product_id].append(Offer(competitor, price, currency, in_stock, suspicious))
    return offers


@dataclass(slots=True)
class ChartSeries:
    label: str
    kind: str  # "ours" | "competitor" | "out_of_stock" | "unconfirmed"
    points: list[tuple[datetime, Decimal | None]] = field(default_factory=list)
    competitor: str | None = None  # whose line it is (None: ours), for its colour


@dataclass(slots=True)
class ProductChart:
    product_id: int
    sku: str
    name: str
    currency: str
    series: list[ChartSeries]


def product_ids_for_skus(session: Session, skus: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in _chunks(list(skus)):
        query = select(Product.sku, Product.id).where(Product.sku.in_(chunk))
        found.update((sku, product_id) for sku, product_id in session.execute(query))
    return found


def chart_data(session: Session, product_ids: Sequence[int], *, start: datetime, now: datetime) -> list[ProductChart]:
    """Our price and every competitor's price over [start, now] for the given products.

    Our price comes from the applied-change audit (the price before the first change in the
    period, then each change) ending at the current product price. A competitor's line has a
    point where each state began (clipped to `start`) and where it was last confirmed; the
    states seen out of stock form a separate "out of stock" series so the chart can mark them.
    """
    wanted = list(dict.fromkeys(product_ids))
    products: dict[int, Product] = {}
    for chunk in _chunks(wanted):
        for found in session.scalars(select(Product).where(Product.id.in_(chunk))):
            products[found.id] = found
    changes: dict[int, list[tuple[datetime, Decimal, Decimal]]] = defaultdict(list)
    history: dict[tuple[int, str], list[tuple[PriceHistory, datetime]]] = defaultdict(list)
    for chunk in _chunks(wanted):
        for change in session.scalars(
            select(PriceChange)
            .where(PriceChange.product_id.in_(chunk), PriceChange.applied_at >= start)
            .order_by(PriceChange.applied_at, PriceChange.id)
        ):
            changes[change.product_id].append((change.applied_at, change.old_price, change.new_price))
        # States that were alive at some point of the period: started before its end, seen after its start.
        for row, last_seen, product_id, competitor in session.execute(
            select(PriceHistory, seen_until(), Listing.product_id, Competitor.name)
            .join(Listing, Listing.id == PriceHistory.listing_id)
            .join(Competitor, Competitor.id == Listing.competitor_id)
            .where(Listing.product_id.in_(chunk), seen_until() >= start, PriceHistory.observed_at <= now)
            .order_by(PriceHistory.observed_at, PriceHistory.id)
        ):
            history[(product_id, competitor)].append((row, last_seen))

    charts = []
    for product_id in wanted:
        product = products.get(product_id)
        if product is None:
            continue
        ours = ChartSeries("Our price", "ours")
        product_changes = changes.get(product_id, [])
        opening = product_changes[0][1] if product_changes else product.price
        # The time axis starts where this product's data does, so a young history is not a
        # sliver at the right edge of a 30-day axis.
        firsts = [rows[0][0].observed_at for (pid, _), rows in history.items() if pid == product_id]
        firsts += [applied_at for applied_at, _, _ in product_changes[:1]]
        begin = max(start, min(firsts)) if firsts else start
        ours.points.append((begin, opening))
        for applied_at, _old, new in product_changes:
            ours.points.append((applied_at, new))
        ours.points.append((now, product.price))
        series = [ours]
        for competitor in sorted({c for (pid, c) in history if pid == product_id}):
            line = ChartSeries(competitor, "competitor", competitor=competitor)
            out = ChartSeries(f"{competitor} (out of stock)", "out_of_stock", competitor=competitor)
            doubt = ChartSeries(f"{competitor} (unconfirmed)", "unconfirmed", competitor=competitor)
            kinds = (line, out, doubt)
            for state, last_seen in history[(product_id, competitor)]:
                begin = max(state.observed_at, start)
                target = doubt if state.suspicious else out if state.in_stock is False else line
                target.points += [(begin, state.price), (last_seen, state.price)]
                for other in kinds:  # a break in the others so no line bridges across this state
                    if other is not target:
                        other.points.append((begin, None))
            series.append(line)
            series += [s for s in (out, doubt) if any(price is not None for _, price in s.points)]
        charts.append(ProductChart(product_id, product.sku, product.name, product.currency, series))
    return charts


@dataclass(slots=True)
class CompetitorHealth:
    name: str
    base_url: str
    listings: int
    failing: int
    stale: int
    last_success_at: datetime | None
    last_checked_at: datetime | None
    outcomes: Counter[str]
    last_error: str | None
    last_error_url: str | None

    @property
    def checks(self) -> int:
        return sum(self.outcomes.values())

    @property
    def success_rate(self) -> float | None:
        if not self.checks:
            return None
        failed = sum(n for outcome, n in self.outcomes.items() if outcome in FAILURE_OUTCOMES)
        return (self.checks - failed) / self.checks


def competitor_health(
    session: Session, *, start: datetime, now: datetime, staleness_limit: timedelta
) -> list[CompetitorHealth]:
    """Per competitor: listings, failing and stale ones, outcome counts of the period's runs, last error."""
    cutoff = now - staleness_limit
    rows = session.execute(
        select(
            Competitor.id,
            Competitor.name,
            Competitor.base_url,
            func.count(Listing.id),
            func.sum(case((Listing.consecutive_failures > 0, 1), else_=0)),
            func.sum(
                case(
                    (
                        and_(
                            Listing.last_checked_at.is_not(None),
                            or_(Listing.last_success_at.is_(None), Listing.last_success_at < cutoff),
                        ),
                        1,
                    ),
                    else_=0,
                )
            ),
            func.max(Listing.last_success_at),
            func.max(Listing.last_checked_at),
        )
        .outerjoin(Listing, and_(Listing.competitor_id == Competitor.id, Listing.active.is_(True)))
        .group_by(Competitor.id, Competitor.name, Competitor.base_url)
        .order_by(Competitor.name)
    ).all()
    outcomes: dict[str, Counter[str]] = defaultdict(Counter)
    for (counts,) in session.execute(select(ScrapeRun.counts).where(ScrapeRun.started_at >= start)):
        if isinstance(counts, dict):
            for name, values in counts.items():
                outcomes[name].update(_outcomes({name: values}))
    # The newest error of each competitor in one pass over the erroring listings (a query per
    # competitor would sort each one's listings: slow with 72 shops and 170,000 listings).
    errors: dict[int, tuple[datetime, int, str | None, str]] = {}
    erroring = select(
        Listing.competitor_id, Listing.last_checked_at, Listing.id, Listing.last_error, Listing.url
    ).where(Listing.last_error.is_not(None), Listing.active.is_(True))
    for competitor_id, checked_at, listing_id, message, url in session.execute(
        erroring.execution_options(yield_per=5000)
    ):
        key = (checked_at or datetime.min.replace(tzinfo=UTC), listing_id, message, url)
        if competitor_id not in errors or key[:2] > errors[competitor_id][:2]:
            errors[competitor_id] = key
    health = []
    for competitor_id, name, base_url, listings, failing, stale, last_success, last_checked in rows:
        newest = errors.get(competitor_id)
        error = (newest[2], newest[3]) if newest else None
        health.append(
            CompetitorHealth(
                name=name,
                base_url=base_url,
                listings=listings or 0,
                failing=failing or 0,
                stale=stale or 0,
                # aggregates lose the column type on SQLite: re-read them as UTC-aware times
                last_success_at=_as_utc(last_success),
                last_checked_at=_as_utc(last_checked),
                outcomes=outcomes.get(name, Counter()),
                last_error=error[0] if error else None,
                last_error_url=error[1] if error else None,
            )
        )
    return health


def _as_utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(slots=True)
class AppliedChange:
    applied_at: datetime
    sku: str
    name: str
    currency: str
    old_price: Decimal
    new_price: Decimal
    strategy: str | None
    reason: str | None
    applied_by: str
    feed_state: str


def recent_changes(session: Session, *, start: datetime, limit: int = 50) -> list[AppliedChange]:
    """Prices we applied in the period, newest first."""
    query = (
        select(PriceChange, Product.sku, Product.name)
        .join(Product, Product.id == PriceChange.product_id)
        .where(PriceChange.applied_at >= start)
        .order_by(PriceChange.applied_at.desc(), PriceChange.id.desc())
        .limit(limit)
    )
    return [
        AppliedChange(
            applied_at=change.applied_at,
            sku=sku,
            name=name,
            currency=change.currency,
            old_price=change.old_price,
            new_price=change.new_price,
            strategy=change.strategy,
            reason=change.reason,
            applied_by=change.applied_by,
            feed_state=change.feed_state,
        )
        for change, sku, name in session.execute(query)
    ]


__all__ = [
    "AppliedChange",
    "ChartSeries",
    "CompetitorHealth",
    "Offer",
    "PendingSuggestion",
    "ProductChart",
    "Summary",
    "chart_data",
    "competitor_health",
    "latest_offers",
    "market_position",
    "pending_suggestions",
    "pending_totals",
    "product_ids_for_skus",
    "recent_changes",
    "report_summary",
]
