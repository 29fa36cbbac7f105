"""Our own sales and traffic in: `pricemon import sales` and `pricemon import traffic`.

One row per product and day. Imports work like the catalogue's (monitor.store.catalog): every
row is checked first, every problem is reported as `FILE:LINE: field: problem`, and only a
clean file is written, in one transaction, as upserts keyed by (product, date), so importing
the same file twice leaves the tables as one import did.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from monitor.errors import ImportDataError
from monitor.money import parse_amount
from monitor.store.catalog import _read_csv  # the catalogue imports' reader: same header checks and messages
from monitor.store.models import MONEY_PLACES, PriceChange, Product, SalesDay, TrafficDay

SALES_REQUIRED = ("sku", "date", "units", "revenue")
SALES_OPTIONAL = ("price",)
TRAFFIC_REQUIRED = ("sku", "date", "sessions")
TRAFFIC_OPTIONAL = ("clicks",)
CHUNK = 900  # SKUs per IN (...) list: below SQLite's bound-parameter limit
WRITE_CHUNK = 5000  # rows per executemany batch
#: the largest count accepted: units, sessions and clicks are 32-bit integer columns
MAX_COUNT = 2**31 - 1


@dataclass(frozen=True, slots=True)
class DailyImportSummary:
    """What an import wrote: rows new to the table, and rows already there (rewritten with the file's values)."""

    inserted: int
    updated: int
    #: rows whose price came from pricemon's applied-price history (the file had no price)
    prices_from_history: int = 0

    @property
    def total(self) -> int:
        return self.inserted + self.updated


def _date(text: str, problems: _Problems) -> date | None:
    if not text:
        problems.add("date", "required value is empty")
        return None
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        problems.add("date", f"expected a date as YYYY-MM-DD, got {text!r}")
        return None


def _count(row: dict[str, str], field: str, problems: _Problems, *, required: bool) -> int | None:
    text = row.get(field, "")
    if not text:
        if required:
            problems.add(field, "required value is empty")
        return None
    try:
        value = int(text)
    except ValueError:
        problems.add(field, f"expected a whole number, got {text!r}")
        return None
    if value < 0:
        problems.add(field, f"negative count {text}")
        return None
    if value > MAX_COUNT:
        problems.add(field, f"too large: {text}")
        return None
    return value


def _amount(row: dict[str, str], field: str, problems: _Problems, *, required: bool) -> Decimal | None:
    text = row.get(field, "")
    if not text:
        if required:
            problems.add(field, "required value is empty")
        return None
    try:
        value = parse_amount(text)
    except ValueError as exc:
        problems.add(field, f"{exc}")
        return None
    if value < 0:
        problems.add(field, f"negative amount {text}")
        return None
    if field == "price" and value == 0:
        problems.add(field, "a price must be greater than zero")
        return None
    return value


@dataclass(frozen=True, slots=True)
class RowProblem:
    """One bad value: at `position` (a file's line, or a JSON body's row index), in `field`."""

    position: int
    field: str
    message: str


class RowsDataError(ImportDataError):
    """Rows given as JSON (`POST /api/v1/sales|traffic`) were rejected; nothing was written.

    `rows` holds each problem with its row index and field, for the API's problem details.
    """

    def __init__(self, source: str, rows: list[RowProblem]) -> None:
        self.rows = rows
        super().__init__(source, [f"{source}[{p.position}]: {p.field}: {p.message}" for p in rows])


class _Problems:
    """The problems found so far, each at the row being checked: `add(field, message)`."""

    def __init__(self) -> None:
        self.found: list[RowProblem] = []
        self.position = 0

    def add(self, field: str, message: str) -> None:
        self.found.append(RowProblem(self.position, field, message))

    def __len__(self) -> int:
        return len(self.found)


Rows = dict[tuple[str, date], tuple[int, tuple[Any, ...]]]


def _parse(rows_in: Iterable[tuple[int, dict[str, str]]], values: Any, unit: str) -> tuple[Rows, _Problems]:
    """Rows keyed by (sku, date) with their position, and the problems found; `values(raw,
    problems)` checks a row's own columns and returns them, or None when one is bad.

    The one validation for both sources: a CSV file's (line, row) and a JSON body's (index, row)."""
    problems = _Problems()
    rows: Rows = {}
    for position, raw in rows_in:
        problems.position = position
        if "__extra__" in raw:
            problems.add("row", raw["__extra__"])
            continue
        sku = raw.get("sku", "")
        if not sku:
            problems.add("sku", "required value is empty")
            continue
        day = _date(raw.get("date", ""), problems)
        checked = values(raw, problems)
        if day is None or checked is None:
            continue
        key = (sku, day)
        if key in rows:
            problems.add("date", f"duplicate row for {sku!r} on {day} (first on {unit} {rows[key][0]})")
            continue
        rows[key] = (position, checked)
    return rows, problems


def _product_ids(session: Session, skus: Sequence[str]) -> dict[str, int]:
    ids: dict[str, int] = {}
    for start in range(0, len(skus), CHUNK):
        query = select(Product.sku, Product.id).where(Product.sku.in_(skus[start : start + CHUNK]))
        ids.update((sku, product_id) for sku, product_id in session.execute(query))
    return ids


def _check_skus(
    session: Session, rows: Rows, problems: _Problems, fail: Callable[[list[RowProblem]], Exception]
) -> dict[str, int]:
    ids = _product_ids(session, sorted({sku for sku, _ in rows}))
    reported: set[str] = set()
    for (sku, _day), (position, _values) in rows.items():
        if sku not in ids and sku not in reported:
            reported.add(sku)  # once per SKU: a missing product would otherwise fill the report with its days
            problems.position = position
            problems.add("sku", f"unknown SKU {sku!r} (import it with `pricemon import products`)")
    if problems.found:
        raise fail(sorted(problems.found, key=lambda p: p.position))
    return ids


def _file_error(path: Path) -> Callable[[list[RowProblem]], Exception]:
    def fail(found: list[RowProblem]) -> Exception:
        return ImportDataError(str(path), [f"{path}:{p.position}: {p.field}: {p.message}" for p in found])

    return fail


def _rows_error(source: str) -> Callable[[list[RowProblem]], Exception]:
    return lambda found: RowsDataError(source, found)


def json_rows(rows: Sequence[dict[str, Any]]) -> Iterator[tuple[int, dict[str, str]]]:
    """A JSON body's rows as the CSV reader gives them: (index, row of text), absent or null as ''.

    Numbers become their text, so `12.5` and `"12.5"` are checked alike; booleans, lists and
    objects are left as a marker the checks reject (a number field is not `true`)."""
    for index, row in enumerate(rows):
        cells: dict[str, str] = {}
        for key, value in row.items():
            if value is None:
                cells[key] = ""
            elif isinstance(value, bool) or not isinstance(value, str | int | float):
                cells[key] = repr(value)
            else:
                cells[key] = str(value)
        yield index, cells


def _upsert(session: Session, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> tuple[int, int]:
    """Insert or update `rows` (tuples of product_id, date, then `columns`) by (product_id, date);
    returns (inserted, updated).

    Below the ORM, because a sales file is often a million rows: PostgreSQL gets them through
    COPY into a temporary table and one INSERT .. SELECT .. ON CONFLICT; SQLite through the
    driver's executemany of the same upsert (values converted as the column types would).
    """
    if not rows:
        return 0, 0
    connection = session.connection()
    count = text(f"SELECT count(*) FROM {table}")
    before = connection.execute(count).scalar_one()
    names = ("product_id", "date", *columns)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns)
    conflict = f"ON CONFLICT (product_id, date) DO UPDATE SET {updates}"
    if connection.dialect.name == "postgresql":
        staging = f"import_{table}"
        connection.exec_driver_sql(
            f"CREATE TEMPORARY TABLE {staging} ON COMMIT DROP AS SELECT {', '.join(names)} FROM {table} WITH NO DATA"
        )
        driver = connection.connection.dbapi_connection
        assert driver is not None
        with driver.cursor() as cursor, cursor.copy(f"COPY {staging} ({', '.join(names)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
            for row in rows:
                copy.write_row(row)
        connection.exec_driver_sql(
            f"INSERT INTO {table} ({', '.join(names)}) SELECT {', '.join(names)} FROM {staging} {conflict}"
        )
        connection.exec_driver_sql(f"DROP TABLE {staging}")
    else:
        statement = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))}) {conflict}"
        for start in range(0, len(rows), WRITE_CHUNK):
            connection.exec_driver_sql(statement, [_sqlite_values(row) for row in rows[start : start + WRITE_CHUNK]])
    inserted = connection.execute(count).scalar_one() - before
    return inserted, len(rows) - inserted


def _sqlite_values(row: tuple[Any, ...]) -> tuple[Any, ...]:
    # what the Date and Money column types store on SQLite: ISO text, and floats of 4-place amounts
    return tuple(
        v.isoformat() if isinstance(v, date) else float(v.quantize(MONEY_PLACES)) if isinstance(v, Decimal) else v
        for v in row
    )


class AppliedPrices:
    """The price pricemon had applied to each product at the end of a day, from `price_changes`
    (and the product's current price where nothing was ever applied)."""

    def __init__(self, session: Session, product_ids: Sequence[int]) -> None:
        self._changes: dict[int, tuple[list[datetime], list[Decimal], Decimal]] = {}
        self._current: dict[int, Decimal] = {}
        for start in range(0, len(product_ids), CHUNK):
            chunk = product_ids[start : start + CHUNK]
            for product_id, price in session.execute(select(Product.id, Product.price).where(Product.id.in_(chunk))):
                self._current[product_id] = price
            query = (
                select(PriceChange.product_id, PriceChange.applied_at, PriceChange.old_price, PriceChange.new_price)
                .where(PriceChange.product_id.in_(chunk))
                .order_by(PriceChange.product_id, PriceChange.applied_at, PriceChange.id)
            )
            for product_id, applied_at, old, new in session.execute(query):
                times, prices, _first = self._changes.setdefault(product_id, ([], [], old))
                times.append(applied_at)
                prices.append(new)

    def on(self, product_id: int, day: date) -> Decimal | None:
        changes = self._changes.get(product_id)
        if changes is None:
            return self._current.get(product_id)
        times, prices, first_old = changes
        end_of_day = datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)
        index = bisect.bisect_left(times, end_of_day)
        return first_old if index == 0 else prices[index - 1]


def _sales_values(raw: dict[str, str], problems: _Problems) -> tuple[Any, ...] | None:
    found = len(problems)
    units = _count(raw, "units", problems, required=True)
    revenue = _amount(raw, "revenue", problems, required=True)
    price = _amount(raw, "price", problems, required=False)
    return None if len(problems) > found else (units, revenue, price)


def _traffic_values(raw: dict[str, str], problems: _Problems) -> tuple[Any, ...] | None:
    found = len(problems)
    sessions = _count(raw, "sessions", problems, required=True)
    clicks = _count(raw, "clicks", problems, required=False)
    return None if len(problems) > found else (sessions, clicks)


def _write_sales(session: Session, rows: Rows, ids: dict[str, int]) -> DailyImportSummary:
    needs_price = sorted({ids[sku] for (sku, _), (_, (_u, _r, price)) in rows.items() if price is None})
    applied = AppliedPrices(session, needs_price) if needs_price else None
    records: list[tuple[Any, ...]] = []
    from_history = 0
    for (sku, day), (_position, (units, revenue, price)) in rows.items():
        product_id = ids[sku]
        if price is None and applied is not None:
            price = applied.on(product_id, day)
            from_history += 1
        records.append((product_id, day, units, revenue, price))
    rows.clear()
    inserted, updated = _upsert(session, SalesDay.__tablename__, ("units", "revenue", "price"), records)
    return DailyImportSummary(inserted, updated, from_history)


def _write_traffic(session: Session, rows: Rows, ids: dict[str, int]) -> DailyImportSummary:
    records = [(ids[sku], day, sessions, clicks) for (sku, day), (_pos, (sessions, clicks)) in rows.items()]
    rows.clear()
    inserted, updated = _upsert(session, TrafficDay.__tablename__, ("sessions", "clicks"), records)
    return DailyImportSummary(inserted, updated)


def import_sales(session: Session, path: Path) -> DailyImportSummary:
    """Upsert daily sales from a CSV (`sku,date,units,revenue` + optional `price`).

    A row without a price gets the price pricemon had applied at the end of that day (from
    `price_changes`; the product's price when none was ever applied).
    """
    rows, problems = _parse(_read_csv(path, SALES_REQUIRED, SALES_OPTIONAL), _sales_values, "line")
    ids = _check_skus(session, rows, problems, _file_error(path))
    return _write_sales(session, rows, ids)


def import_traffic(session: Session, path: Path) -> DailyImportSummary:
    """Upsert daily traffic from a CSV (`sku,date,sessions` + optional `clicks`)."""
    rows, problems = _parse(_read_csv(path, TRAFFIC_REQUIRED, TRAFFIC_OPTIONAL), _traffic_values, "line")
    ids = _check_skus(session, rows, problems, _file_error(path))
    return _write_traffic(session, rows, ids)


def upsert_sales_rows(session: Session, rows: Sequence[dict[str, Any]], source: str = "rows") -> DailyImportSummary:
    """The same as `import_sales`, for rows given as JSON objects with the CSV's fields
    (`POST /api/v1/sales`); bad rows raise `RowsDataError` naming each row's index and field."""
    parsed, problems = _parse(json_rows(rows), _sales_values, "row")
    ids = _check_skus(session, parsed, problems, _rows_error(source))
    return _write_sales(session, parsed, ids)


def upsert_traffic_rows(session: Session, rows: Sequence[dict[str, Any]], source: str = "rows") -> DailyImportSummary:
    """The same as `import_traffic`, for rows given as JSON objects (`POST /api/v1/traffic`)."""
    parsed, problems = _parse(json_rows(rows), _traffic_values, "row")
    ids = _check_skus(session, parsed, problems, _rows_error(source))
    return _write_traffic(session, parsed, ids)
