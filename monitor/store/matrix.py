"""The price matrix: our products against every competitor, each cell our price index.

A cell is our price over that competitor's newest price for the product (same currency only),
classed as `cheaper` (we are below them by more than the band), `near`, `dearer`, or `map`
when the competitor advertises below the product's minimum advertised price. Unconfirmed
(suspicious) and out-of-stock prices are shown but flagged. Products are paged by SKU.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import ColumnElement, Float, String, and_, cast, exists, func, or_, select
from sqlalchemy.orm import Session

from monitor.money import format_amount
from monitor.store.history import counts_as_offer
from monitor.store.models import Competitor, Listing, PriceHistory, Product
from monitor.store.review import ReviewQueryError

Band = Literal["cheaper", "near", "dearer", "map"]
BANDS: tuple[Band, ...] = ("cheaper", "near", "dearer", "map")
#: within this share of the competitor's price we are "near" it
NEAR = Decimal("0.02")
CHUNK = 900


@dataclass(frozen=True)
class MatrixFilters:
    tag: str | None = None
    q: str | None = None
    competitor: str | None = None  # only products this competitor lists
    band: Band | None = None  # only products with at least one cell in this band

    def __post_init__(self) -> None:
        if self.band is not None and self.band not in BANDS:
            raise ReviewQueryError(f"band: expected one of {', '.join(BANDS)}, got {self.band!r}")


@dataclass(frozen=True)
class Cell:
    price: Decimal
    currency: str | None
    index: Decimal | None  # ours / theirs; None when the currencies differ
    band: Band | None
    in_stock: bool | None
    suspicious: bool


@dataclass(frozen=True)
class MatrixRow:
    sku: str
    name: str
    price: Decimal
    currency: str
    map_price: Decimal | None
    cells: dict[str, Cell] = field(default_factory=dict)


@dataclass(frozen=True)
class MatrixPage:
    competitors: list[str]
    rows: list[MatrixRow]
    next_after: str | None  # the SKU to continue after; None on the last page


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def band_of(ours: Decimal, theirs: Decimal, map_price: Decimal | None) -> Band:
    if map_price is not None and theirs < map_price:
        return "map"
    if ours < theirs * (1 - NEAR):
        return "cheaper"
    if ours > theirs * (1 + NEAR):
        return "dearer"
    return "near"


def _band_condition(band: Band) -> ColumnElement[bool]:
    # float arithmetic in SQL: Money binds only Decimals, and the band edges need no cent precision
    theirs, ours = cast(PriceHistory.price, Float), cast(Product.price, Float)
    low, high = 1 - float(NEAR), 1 + float(NEAR)
    test: ColumnElement[bool]
    if band == "map":
        test = and_(Product.map_price.is_not(None), PriceHistory.price < Product.map_price)
    elif band == "cheaper":
        test = ours < theirs * low
    elif band == "dearer":
        test = ours > theirs * high
    else:
        test = and_(ours >= theirs * low, ours <= theirs * high)
    return exists(
        select(Listing.id)
        .join(PriceHistory, PriceHistory.id == Listing.latest_history_id)
        .where(
            Listing.product_id == Product.id,
            Listing.active.is_(True),
            PriceHistory.price.is_not(None),
            PriceHistory.currency == Product.currency,
            counts_as_offer(),
            test,
        )
    )


def _conditions(filters: MatrixFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [Product.active.is_(True)]
    if filters.q:
        pattern = _like(filters.q.lower())
        conditions.append(
            or_(func.lower(Product.sku).like(pattern, escape="\\"), func.lower(Product.name).like(pattern, escape="\\"))
        )
    if filters.tag:
        conditions.append(cast(Product.tags, String).like(_like(json.dumps(filters.tag)), escape="\\"))
    if filters.competitor:
        conditions.append(
            exists()
            .where(Listing.product_id == Product.id, Listing.active.is_(True))
            .where(Listing.competitor_id == Competitor.id, Competitor.name == filters.competitor)
        )
    if filters.band:
        conditions.append(_band_condition(filters.band))
    return conditions


def _cells(session: Session, products: Sequence[Any]) -> dict[int, dict[str, Cell]]:
    by_id = {p.id: p for p in products}
    cells: dict[int, dict[str, Cell]] = {pid: {} for pid in by_id}
    ids = sorted(by_id)
    for start in range(0, len(ids), CHUNK):
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
                Listing.product_id.in_(ids[start : start + CHUNK]),
                Listing.active.is_(True),
                PriceHistory.price.is_not(None),
                counts_as_offer(),
            )
        )
        for product_id, competitor, price, currency, in_stock, suspicious in session.execute(query):
            product = by_id[product_id]
            same = currency in (None, product.currency) and price > 0
            index = (product.price / price).quantize(Decimal("0.001")) if same else None
            band = band_of(product.price, price, product.map_price) if same else None
            cells[product_id][competitor] = Cell(price, currency, index, band, in_stock, bool(suspicious))
    return cells


def _products(filters: MatrixFilters) -> Any:
    return (
        select(Product.id, Product.sku, Product.name, Product.price, Product.currency, Product.map_price)
        .where(*_conditions(filters))
        .order_by(Product.sku)
    )


def matrix_page(
    session: Session, filters: MatrixFilters | None = None, *, after: str | None = None, limit: int = 50
) -> MatrixPage:
    """One page of the matrix: up to `limit` products after SKU `after`, every competitor a column."""
    filters = filters or MatrixFilters()
    if not 1 <= limit <= 500:
        raise ReviewQueryError(f"limit: expected 1 to 500, got {limit}")
    query = _products(filters).limit(limit + 1)
    if after:
        query = query.where(Product.sku > after)
    products = session.execute(query).all()
    more = len(products) > limit
    products = products[:limit]
    cells = _cells(session, products)
    competitors = list(session.execute(select(Competitor.name).order_by(Competitor.name)).scalars())
    if filters.competitor:
        competitors = [c for c in competitors if c == filters.competitor] or competitors
    rows = [MatrixRow(p.sku, p.name, p.price, p.currency, p.map_price, cells[p.id]) for p in products]
    return MatrixPage(competitors, rows, products[-1].sku if more and products else None)


def matrix_csv_rows(session: Session, filters: MatrixFilters | None = None) -> Iterator[list[Any]]:
    """The whole filtered matrix as CSV rows (header first): index and band per competitor."""
    filters = filters or MatrixFilters()
    competitors = list(session.execute(select(Competitor.name).order_by(Competitor.name)).scalars())
    if filters.competitor:
        competitors = [c for c in competitors if c == filters.competitor]
    header: list[Any] = ["sku", "name", "our_price", "currency", "map_price"]
    for name in competitors:
        header += [f"{name}_price", f"{name}_index", f"{name}_band"]
    yield header
    after: str | None = None
    while True:
        page = matrix_page(session, filters, after=after, limit=500)
        for row in page.rows:
            line: list[Any] = [row.sku, row.name, format_amount(row.price), row.currency, format_amount(row.map_price) or ""]
            for name in competitors:
                cell = row.cells.get(name)
                line += [format_amount(cell.price), cell.index or "", cell.band or ""] if cell else ["", "", ""]
            yield line
        if page.next_after is None:
            return
        after = page.next_after
