"""The review queue: suggestions filtered, sorted and paged for a pricing manager.

One set of functions behind the workspace's Review page and the API's `/suggestions`: the
filters, the sort orders and the cursor mean the same in both, and "the whole filtered set"
(for a bulk decision) is exactly the rows the filters show.

Paging is by keyset (the sort value and the id of the last row shown, in an opaque cursor),
so a page is as fast deep in the queue as at its head and a decision taken meanwhile never
makes a row appear twice or be skipped. Everything per row that the queue can filter or sort
on is computed in SQL; the rest (market figures, flags) comes from the suggestion's stored
details and one batched query of the page's newest offers.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import Boolean

from monitor.errors import PricemonError
from monitor.store.history import counts_as_offer
from monitor.store.models import (
    MONEY_PLACES,
    Competitor,
    Listing,
    PriceHistory,
    Product,
    Suggestion,
    suggestion_change_size,
)

Direction = Literal["raise", "cut"]
SORTS = ("change", "impact", "sku", "name", "age", "margin")
STATUSES = ("pending", "approved", "rejected", "applied", "superseded")
MAX_LIMIT = 500


class ReviewQueryError(PricemonError):
    """A filter, sort or cursor that cannot be used (named in the message)."""


@dataclass(frozen=True)
class ReviewFilters:
    """What the queue shows; every field None/empty means "don't filter on it"."""

    status: str = "pending"
    tag: str | None = None
    competitor: str | None = None
    strategy: str | None = None
    direction: Direction | None = None
    min_change_pct: Decimal | None = None  # size of the change, either way, in percent
    max_change_pct: Decimal | None = None
    margin_below: Decimal | None = None  # margin after the change below this percent (cost known)
    q: str | None = None  # text in the SKU or name
    skus: tuple[str, ...] = ()
    #: the products a text search matched, when they are few (`with_text_resolved`); set by this module
    product_ids: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ReviewQueryError(f"status: expected one of {', '.join(STATUSES)}, got {self.status!r}")
        if self.direction not in (None, "raise", "cut"):
            raise ReviewQueryError(f"direction: expected raise or cut, got {self.direction!r}")
        for name in ("min_change_pct", "max_change_pct", "margin_below"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, Decimal) and value.is_finite()):
                raise ReviewQueryError(f"{name}: expected a number, got {value!r}")


@dataclass(frozen=True)
class ReviewRow:
    id: int
    product_id: int
    sku: str
    name: str
    currency: str
    tags: tuple[str, ...]
    status: str
    strategy: str
    current_price: Decimal
    suggested_price: Decimal
    change_pct: Decimal
    cost: Decimal | None
    margin_before_pct: Decimal | None
    margin_after_pct: Decimal | None
    competitor_min: Decimal | None
    competitor_median: Decimal | None
    competitor_max: Decimal | None
    index_before: Decimal | None  # our price / market median, before and after
    index_after: Decimal | None
    rank_before: int | None
    rank_after: int | None
    offers: int
    newest_offer_at: datetime | None
    reason_steps: tuple[str, ...]
    flags: tuple[str, ...]  # guardrail, suspicious, converted, auto_approved
    created_at: datetime
    decided_by: str | None
    #: expected profit per day after minus before, under the demand model (None: no usable model or no cost)
    expected_profit_change: Decimal | None = None
    details: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def reason(self) -> str:
        return "; ".join(self.reason_steps)


@dataclass(frozen=True)
class ReviewPage:
    rows: list[ReviewRow]
    total: int | None  # rows the filters select, on every page (None: not counted)
    next_cursor: str | None  # None: this is the last page
    sort: str
    descending: bool
    #: the filtered set's expected profit change per day, per currency (rows without a figure left out)
    expected_profit_total: dict[str, Decimal] = field(default_factory=dict)
    #: how many rows of the filtered set have an expected profit change
    with_profit_figure: int = 0


def _change_pct() -> ColumnElement[Any]:
    # Float arithmetic on both backends: comparisons and the cursor stay exact because the
    # same expression is evaluated on the same stored values every time.
    current = cast(Suggestion.current_price, Float)
    return (cast(Suggestion.suggested_price, Float) - current) * 100.0 / current


def _change_size() -> ColumnElement[Any]:
    """The "change" sort key, |suggested - current| / current: the expression of the index
    ix_suggestions_review_change, so that a page of the default sort reads its 50 index entries
    instead of sorting every pending suggestion (172,800: 80 ms of CPU on SQLite, each page)."""
    return suggestion_change_size()  # type: ignore[no-any-return]


def _margin_after() -> ColumnElement[Any]:
    suggested = cast(Suggestion.suggested_price, Float)
    return case(
        (Product.cost.is_(None), None),
        else_=(suggested - cast(Product.cost, Float)) * 100.0 / suggested,
    )


def _sort_key(sort: str) -> Any:  # a column or an expression
    if sort == "change":
        return _change_size()
    if sort == "impact":
        return func.abs(cast(Suggestion.suggested_price, Float) - cast(Suggestion.current_price, Float))
    if sort == "sku":
        return Product.sku
    if sort == "name":
        return Product.name
    if sort == "age":
        return Suggestion.created_at
    if sort == "margin":
        # unknown margins sort last ascending (as if infinitely high)
        return func.coalesce(_margin_after(), 1e18)
    raise ReviewQueryError(f"sort: expected one of {', '.join(SORTS)}, got {sort!r}")


def _page_sort_key(sort: str, filters: ReviewFilters) -> Any:
    """The sort key of a page. For the few products of a resolved text search, the default order's
    key is written so that no index has it (+ 0.0, the same value): SQLite, which keeps no
    statistics here, would otherwise walk the order index and test every pending suggestion against
    the ids, instead of looking the ids up and sorting their few rows (172,800: 190 against 1 ms)."""
    key = _sort_key(sort)
    if filters.product_ids is not None and sort == "change":
        return key + 0.0
    return key


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class _ContainsFolded(FunctionElement[bool]):
    """`column` LIKE `pattern` (lower-case, escaped with a backslash) ignoring case, as each backend
    does it best: plain LIKE on SQLite, which already ignores ASCII case (its lower() folds only ASCII
    too, so the rows are the same) without a lower() call per row, which was half the cost of counting
    a text search over 172,800 products; lower() LIKE elsewhere, which PostgreSQL runs in 60% of the
    time of ILIKE (one core, 172,800 products, sku and name: 72 against 122 ms)."""

    type = Boolean()
    inherit_cache = True


@compiles(_ContainsFolded)
def _contains_folded_sql(element: _ContainsFolded, compiler: Any, **kw: Any) -> str:
    column, pattern = (compiler.process(c, **kw) for c in element.clauses)
    return f"(lower({column}) LIKE {pattern} ESCAPE '\\')"


@compiles(_ContainsFolded, "sqlite")
def _contains_folded_sqlite(element: _ContainsFolded, compiler: Any, **kw: Any) -> str:
    column, pattern = (compiler.process(c, **kw) for c in element.clauses)
    return f"({column} LIKE {pattern} ESCAPE '\\')"


def _where(filters: ReviewFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [Suggestion.status == filters.status]
    if filters.strategy:
        conditions.append(Suggestion.strategy == filters.strategy)
    if filters.direction == "raise":
        conditions.append(Suggestion.suggested_price > Suggestion.current_price)
    elif filters.direction == "cut":
        conditions.append(Suggestion.suggested_price < Suggestion.current_price)
    if filters.min_change_pct is not None:
        conditions.append(func.abs(_change_pct()) >= float(filters.min_change_pct))
    if filters.max_change_pct is not None:
        conditions.append(func.abs(_change_pct()) <= float(filters.max_change_pct))
    if filters.margin_below is not None:
        conditions.append(and_(Product.cost.is_not(None), _margin_after() < float(filters.margin_below)))
    if filters.q:
        pattern = _like(filters.q.lower())
        conditions.append(or_(_ContainsFolded(Product.sku, pattern), _ContainsFolded(Product.name, pattern)))
    if filters.tag:
        # tags are a JSON list; its text holds each tag as a JSON string, quotes included
        conditions.append(cast(Product.tags, String).like(_like(json.dumps(filters.tag)), escape="\\"))
    if filters.competitor:
        conditions.append(
            exists()
            .where(Listing.product_id == Suggestion.product_id, Listing.active.is_(True))
            .where(Listing.competitor_id == Competitor.id, Competitor.name == filters.competitor)
        )
    if filters.skus:
        conditions.append(Product.sku.in_(filters.skus))
    if filters.product_ids is not None:
        conditions.append(Suggestion.product_id.in_(filters.product_ids))
    return conditions


#: a text search matching at most this many products is answered from their ids
TEXT_MATCHES_BY_ID = 500


def with_text_resolved(session: Session, filters: ReviewFilters) -> ReviewFilters:
    """`filters` with a text search that few products match replaced by those products' ids.

    The queue's pages walk an order index and stop after a page of rows; a text search that
    matches a handful of products out of 172,800 made that walk read nearly the whole index,
    checking each suggestion's product (SQLite 300 ms, PostgreSQL 390 ms for "drill 77"). Finding
    the products first is one pass over their names, which stops early when there are many, and
    then the page and the count are index lookups of those few. The set is the same: the same
    condition on the same products.
    """
    if not filters.q or filters.product_ids is not None:
        return filters
    pattern = _like(filters.q.lower())
    ids = session.execute(
        select(Product.id)
        .where(or_(_ContainsFolded(Product.sku, pattern), _ContainsFolded(Product.name, pattern)))
        .limit(TEXT_MATCHES_BY_ID + 1)
    ).scalars().all()
    if len(ids) > TEXT_MATCHES_BY_ID:
        return filters  # common text: walking the order index finds a page of it quickly
    return replace(filters, q=None, product_ids=tuple(sorted(ids)))


def _base(filters: ReviewFilters) -> Select[Any]:
    return select().select_from(Suggestion).join(Product, Product.id == Suggestion.product_id).where(*_where(filters))


def encode_cursor(sort: str, descending: bool, value: Any, row_id: int) -> str:
    if isinstance(value, datetime):
        value = {"t": value.isoformat()}
    raw = json.dumps([sort, descending, value, row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str, descending: bool) -> tuple[Any, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        cursor_sort, cursor_desc, value, row_id = json.loads(raw)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise ReviewQueryError("cursor: not a cursor this server gave out") from exc
    if cursor_sort != sort or cursor_desc != descending or not isinstance(row_id, int):
        raise ReviewQueryError("cursor: it belongs to another sort order; start from the first page")
    if isinstance(value, dict) and "t" in value:
        value = datetime.fromisoformat(value["t"])
    return value, row_id


def review_page(
    session: Session,
    filters: ReviewFilters | None = None,
    *,
    sort: str = "change",
    descending: bool = True,
    cursor: str | None = None,
    limit: int = 50,
    with_total: bool = True,
) -> ReviewPage:
    """One page of the queue, in `sort` order (ties by id), after `cursor` if given."""
    filters = with_text_resolved(session, filters or ReviewFilters())
    if not 1 <= limit <= MAX_LIMIT:
        raise ReviewQueryError(f"limit: expected 1 to {MAX_LIMIT}, got {limit}")
    key = _page_sort_key(sort, filters).label("sort_key")
    query = (
        _base(filters)
        .add_columns(
            Suggestion.id,
            Suggestion.product_id,
            Product.sku,
            Product.name,
            Product.tags,
            Product.cost,
            Suggestion.currency,
            Suggestion.status,
            Suggestion.strategy,
            Suggestion.current_price,
            Suggestion.suggested_price,
            Suggestion.reason,
            Suggestion.details,
            Suggestion.auto_approved,
            Suggestion.created_at,
            Suggestion.decided_by,
            Suggestion.expected_profit_change,
            key,
        )
        .order_by(key.desc() if descending else key.asc(), Suggestion.id.desc() if descending else Suggestion.id.asc())
        .limit(limit + 1)
    )
    if cursor:
        value, row_id = decode_cursor(cursor, sort, descending)
        expr = _page_sort_key(sort, filters)
        bound = tuple_(expr, Suggestion.id)
        after = tuple_(literal(value, expr.type), literal(row_id, Suggestion.id.type))
        query = query.where(bound < after if descending else bound > after)
    rows = session.execute(query).all()
    more = len(rows) > limit
    rows = rows[:limit]
    newest = _newest_offers(session, [r.product_id for r in rows])
    page_rows = [_row(r, newest.get(r.product_id)) for r in rows]
    next_cursor = None
    if more and rows:
        last = rows[-1]
        next_cursor = encode_cursor(sort, descending, _cursor_value(last.sort_key), last.id)
    if not with_total:
        return ReviewPage(page_rows, None, next_cursor, sort, descending)
    totals = review_totals(session, filters)
    return ReviewPage(
        page_rows, totals.count, next_cursor, sort, descending, totals.expected_profit, totals.with_profit_figure
    )


@dataclass(frozen=True)
class ReviewTotals:
    """What the whole filtered set adds up to."""

    count: int
    #: summed expected profit change per day, per currency (rows without a figure left out)
    expected_profit: dict[str, Decimal]
    #: how many rows have an expected profit change
    with_profit_figure: int


def review_totals(session: Session, filters: ReviewFilters) -> ReviewTotals:
    """The filtered set's size and summed expected profit change.

    On PostgreSQL the answer is kept per process for the database snapshot it was counted in (see
    `_snapshot_key`): paging through a filtered queue, or coming back to it, counts it once for as
    long as nothing is committed anywhere on the server. Counting a set that a product filter
    selects costs PostgreSQL 50-120 ms of CPU at 172,800 products (it joins every pending suggestion),
    which on every page was most of a filtered Review page's cost.
    """
    filters = with_text_resolved(session, filters)
    key = _snapshot_key(session, filters)
    if key is not None:
        with _totals_lock:
            cached = _totals_cache.get(key)
            if cached is not None:
                _totals_cache.move_to_end(key)
                return cached
    totals = _count_totals(session, filters)
    if key is not None:
        with _totals_lock:
            _totals_cache[key] = totals
            while len(_totals_cache) > _TOTALS_CACHE_SIZE:
                _totals_cache.popitem(last=False)
    return totals


#: review_totals() answers per (database, filters, snapshot), most recently used last
_totals_cache: OrderedDict[tuple[str, ReviewFilters, str], ReviewTotals] = OrderedDict()
_totals_lock = threading.Lock()
_TOTALS_CACHE_SIZE = 256
_SNAPSHOT_QUERY = text("SELECT CAST(pg_current_snapshot() AS TEXT), pg_current_xact_id_if_assigned()")
_SNAPSHOT_QUERY_BEFORE_13 = text("SELECT CAST(txid_current_snapshot() AS TEXT), txid_current_if_assigned()")


def _snapshot_key(session: Session, filters: ReviewFilters) -> tuple[str, ReviewFilters, str] | None:
    """A key under which a count is exact, or None where there is none (SQLite, or a transaction
    that has written).

    What a PostgreSQL statement sees is decided by its snapshot alone (xmin, xmax and the
    transactions in progress): two statements with equal snapshots see the same rows, in every
    table. So a count kept under its snapshot's text is exactly what counting again would give,
    and any commit on the server, by any process, makes new statements' snapshots differ. A
    transaction's own uncommitted writes are the exception, hence the second column. The snapshot
    is read just before counting; the count's own, taken a moment later, can only be newer, so a
    kept answer is never older than its key.
    """
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return None
    version = connection.dialect.server_version_info or (0,)
    snapshot, own_transaction = connection.execute(
        _SNAPSHOT_QUERY if version >= (13,) else _SNAPSHOT_QUERY_BEFORE_13
    ).one()
    if own_transaction is not None:
        return None
    return (connection.engine.url.render_as_string(hide_password=True), filters, str(snapshot))


def _count_totals(session: Session, filters: ReviewFilters) -> ReviewTotals:
    """Two queries, each answered from an index (migration 0011_review_totals): the count, and the
    sums over just the rows that have a figure. One query grouped by currency would have to sort
    every row of the set by currency (SQLite: 44 ms for 172,505 pending suggestions, against 6 + 0).
    """
    figure = Suggestion.expected_profit_change
    if _needs_product(filters):
        count_query = _base(filters).add_columns(func.count())
        sums_query = _base(filters).add_columns(Suggestion.currency, func.sum(figure), func.count(figure))
    else:  # no join of 172,800 products
        count_query = select(func.count()).select_from(Suggestion).where(*_where(filters))
        sums_query = select(Suggestion.currency, func.sum(figure), func.count(figure)).where(*_where(filters))
    count = int(session.execute(count_query).scalar_one())
    sums: dict[str, Decimal] = {}
    with_figure = 0
    for currency, total, figures in session.execute(
        sums_query.where(figure.is_not(None)).group_by(Suggestion.currency).order_by(Suggestion.currency)
    ):
        with_figure += int(figures)
        amount = _money(total)
        if amount is not None:
            # SQLite sums the stored floats: back to the column's places
            sums[currency] = amount.quantize(MONEY_PLACES)
    return ReviewTotals(count, sums, with_figure)


def _cursor_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    return value


def _needs_product(filters: ReviewFilters) -> bool:
    return bool(filters.q or filters.tag or filters.skus or filters.margin_below is not None)


def review_ids(session: Session, filters: ReviewFilters, *, limit: int | None = None) -> list[int]:
    """The ids of the whole filtered set (what "select all N" means), oldest id first."""
    query = _base(with_text_resolved(session, filters)).add_columns(Suggestion.id).order_by(Suggestion.id)
    if limit is not None:
        query = query.limit(limit)
    return list(session.execute(query).scalars())


#: facets() answers kept per database and status: (monotonic time, answer)
_facets_cache: dict[tuple[str, str], tuple[float, dict[str, list[str]]]] = {}
_facets_lock = threading.Lock()


def facets(session: Session, status: str = "pending", *, max_age: float = 0.0) -> dict[str, list[str]]:
    """Values the filters can take (strategies with rows, tags and competitors that exist).

    With `max_age` (seconds), an answer that recent for the same database is reused: the tags are
    read from every active product (172,800: ~70 ms of CPU on SQLite, the biggest part of a Review
    page), and a choice list a few seconds old costs a filter that selects nothing, nothing more.
    """
    key = (session.get_bind().engine.url.render_as_string(hide_password=True), status)
    if max_age > 0:
        with _facets_lock:
            cached = _facets_cache.get(key)
        if cached is not None and time.monotonic() - cached[0] < max_age:
            return cached[1]
    answer = _read_facets(session, status)
    if max_age > 0:
        with _facets_lock:
            _facets_cache[key] = (time.monotonic(), answer)
    return answer


def _read_facets(session: Session, status: str) -> dict[str, list[str]]:
    strategies = session.execute(
        select(Suggestion.strategy).where(Suggestion.status == status).distinct().order_by(Suggestion.strategy)
    ).scalars()
    competitors = session.execute(select(Competitor.name).order_by(Competitor.name)).scalars()
    tags: set[str] = set()
    text = cast(Product.tags, String)  # PostgreSQL's json has no equality: DISTINCT over its text
    for (value,) in session.execute(select(text).where(Product.active.is_(True)).distinct()):
        tags.update(json.loads(value) if value else ())
    return {"strategies": list(strategies), "competitors": list(competitors), "tags": sorted(tags)}


def _newest_offers_query(products: ColumnElement[bool]) -> Select[int, int, datetime]:
    return (
        select(Listing.product_id, func.count(PriceHistory.id), func.max(PriceHistory.last_seen_at))
        .join(PriceHistory, PriceHistory.id == Listing.latest_history_id)
        .where(products, Listing.active.is_(True), PriceHistory.price.is_not(None), counts_as_offer())
        .group_by(Listing.product_id)
    )


#: per product: how many competitor offers, and when the newest was last seen. Built once: building
#: it and its cache key for each page cost as much as running it (SQLite: 0.3 + 0.5 of 1.6 ms). On
#: PostgreSQL the ids are one array parameter, so the statement's text is the same every time and
#: neither SQLAlchemy nor psycopg rewrites it for 50 parameters on each page.
_NEWEST_OFFERS = _newest_offers_query(Listing.product_id.in_(bindparam("product_ids", expanding=True)))
_NEWEST_OFFERS_PG = _newest_offers_query(
    Listing.product_id == func.any(bindparam("product_ids", type_=postgresql.ARRAY(Integer)))
)


def _newest_offers(session: Session, product_ids: Sequence[int]) -> dict[int, tuple[int, datetime | None]]:
    """Per product: how many competitor offers, and when the newest was last seen."""
    if not product_ids:
        return {}
    query = _NEWEST_OFFERS_PG if session.get_bind().dialect.name == "postgresql" else _NEWEST_OFFERS
    result: dict[int, tuple[int, datetime | None]] = {}
    for product_id, count, newest in session.execute(query, {"product_ids": sorted(set(product_ids))}):
        result[product_id] = (int(count), _utc(newest))
    return result


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _money(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return None


def _pct(part: Decimal, whole: Decimal) -> Decimal:
    return (part * 100 / whole).quantize(Decimal("0.1"))


def _ratio(ours: Decimal, market: Decimal | None) -> Decimal | None:
    if market is None or market <= 0:
        return None
    return (ours / market).quantize(Decimal("0.001"))


def _row(r: Any, newest: tuple[int, datetime | None] | None) -> ReviewRow:
    details: dict[str, Any] = r.details if isinstance(r.details, dict) else {}
    current, suggested, cost = r.current_price, r.suggested_price, r.cost
    median = _money(details.get("competitor_median"))
    flags = []
    strategy_price = _money(details.get("strategy_price"))
    if strategy_price is not None and strategy_price != suggested:
        flags.append("guardrail")
    offers_used = details.get("offers_used") or []
    if isinstance(offers_used, list) and any(isinstance(o, dict) and "original" in o for o in offers_used):
        flags.append("converted")
    total_offers = details.get("offers_total")
    if isinstance(total_offers, int) and isinstance(offers_used, list) and total_offers > len(offers_used):
        flags.append("filtered")  # some offers were left out (stale, suspicious, out of stock…)
    if details.get("suspicious"):
        flags.append("suspicious")
    if r.auto_approved:
        flags.append("auto_approved")
    return ReviewRow(
        id=r.id,
        product_id=r.product_id,
        sku=r.sku,
        name=r.name,
        currency=r.currency,
        tags=tuple(r.tags or ()),
        status=r.status,
        strategy=r.strategy,
        current_price=current,
        suggested_price=suggested,
        change_pct=_pct(suggested - current, current) if current else Decimal(0),
        cost=cost,
        margin_before_pct=_pct(current - cost, current) if cost is not None and current else None,
        margin_after_pct=_pct(suggested - cost, suggested) if cost is not None and suggested else None,
        competitor_min=_money(details.get("competitor_min")),
        competitor_median=median,
        competitor_max=_money(details.get("competitor_max")),
        index_before=_ratio(current, median),
        index_after=_ratio(suggested, median),
        rank_before=details.get("rank_before") if isinstance(details.get("rank_before"), int) else None,
        rank_after=details.get("rank_after") if isinstance(details.get("rank_after"), int) else None,
        offers=newest[0] if newest else 0,
        newest_offer_at=newest[1] if newest else None,
        reason_steps=tuple(step.strip() for step in (r.reason or "").split("; ") if step.strip()),
        flags=tuple(flags),
        created_at=_utc(r.created_at) or r.created_at,
        decided_by=r.decided_by,
        expected_profit_change=_money(r.expected_profit_change),
        details=details,
    )


#: the fields of a row's JSON, in order (its stored details stay inside)
_JSON_FIELDS = tuple(name for name in ReviewRow.__dataclass_fields__ if name != "details")


def row_to_json(row: ReviewRow) -> dict[str, Any]:
    """A row as JSON-ready values (money as strings, times as ISO 8601)."""
    out: dict[str, Any] = {}
    for name in _JSON_FIELDS:
        value = getattr(row, name)
        kind = type(value)  # exact types: this runs for every field of every row of every page
        if kind is Decimal:
            value = str(value)
        elif kind is datetime:
            value = value.isoformat()
        elif kind is tuple:
            value = list(value)
        out[name] = value
    out["reason"] = row.reason
    return out
