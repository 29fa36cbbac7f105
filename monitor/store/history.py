"""Change-only price history: recording checks in batches, and reading prices back at any time.

A check that sees the same price, currency and stock as the listing's newest history row writes
nothing to the history; anything else adds a row. Until when a state was seen is `last_seen_at`
for a row that a newer one superseded, and the listing's `last_success_at` for its newest row
(`seen_until` reads either). That spares a sweep one row UPDATE per unchanged check, most of the
checks on a quiet day. `record_checks` stores a whole batch of listings in a handful of
statements, which is what lets a sweep store >1,000 checks/s; `record_batch` runs it in a
transaction of its own so that a check the database refuses costs that listing, not its batch.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import cast

from sqlalchemy import ColumnElement, Row, Table, any_, bindparam, case, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.orm.util import AliasedClass

from monitor.money import MoneyRangeError, check_money
from monitor.store.database import begin_write
from monitor.store.models import Listing, PriceHistory

logger = logging.getLogger(__name__)

#: outcomes of a check that saw the page as it should be
SUCCESS_OUTCOMES = frozenset({"changed", "unchanged", "not_modified", "suspicious"})
#: outcomes of a check that could not record a trustworthy price
FAILURE_OUTCOMES = frozenset(
    {
        "not_found",
        "ambiguous",
        "mismatch",
        "gone",
        "http_error",
        "timeout",
        "blocked_by_robots",
        "blocked_address",
        "tls_error",
        "invalid_content",
        "invalid_price",
        "store_error",
    }
)
#: outcomes that say the page is no longer an offer for our product: its latest price is no
#: longer one (the history stays), until a check reads the page again
NOT_AN_OFFER = frozenset({"gone", "mismatch", "not_found", "ambiguous"})
#: a check that saw the latest state again without reading a price: a 304, or the same body
SEEN_AGAIN = frozenset({"not_modified", "unchanged"})
#: what a fetcher may report; "observed" (a price was read) becomes changed/unchanged/suspicious here
FETCH_OUTCOMES = FAILURE_OUTCOMES | {"observed", "not_modified", "unchanged"}


@dataclass(slots=True)
class CheckResult:
    """What one check of one listing found; the fetcher fills it, `record_checks` stores it.

    `outcome` is "observed" when a price was read from the page, "not_modified" for a 304,
    "unchanged" when the body hash matched the last parsed body, or one of FAILURE_OUTCOMES.
    """

    listing_id: int
    outcome: str
    checked_at: datetime
    price: Decimal | None = None
    currency: str | None = None
    in_stock: bool | None = None
    currency_mismatch: bool = False
    error: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None


@dataclass(frozen=True, slots=True)
class StateChange:
    """A listing's trusted state moved: what the alerting and the sweep summary look at."""

    listing_id: int
    history_id: int
    old_price: Decimal | None
    new_price: Decimal | None
    old_in_stock: bool | None
    new_in_stock: bool | None
    currency: str | None


@dataclass(slots=True)
class RecordResult:
    outcomes: Counter[str]
    changes: list[StateChange]
    rows_inserted: int = 0


def _moved_too_far(old: Decimal | None, new: Decimal | None, share: float) -> bool:
    if old is None or new is None or old <= 0:
        return False
    return abs(new - old) / old > Decimal(str(share))


def record_checks(
    session: Session,
    results: Sequence[CheckResult],
    *,
    run_id: int | None,
    interval: timedelta,
    suspicious_change: float = 0.5,
) -> RecordResult:
    """Store one batch of checks: history rows, listing state, and when each is due next.

    Runs in the caller's transaction, so a batch is stored whole or not at all.
    """
    outcomes: Counter[str] = Counter()
    changes: list[StateChange] = []
    if not results:
        return RecordResult(outcomes, changes)
    for result in results:
        if result.outcome not in FETCH_OUTCOMES:
            raise ValueError(f"unknown check outcome {result.outcome!r} for listing {result.listing_id}")

    postgresql = session.connection().dialect.name == "postgresql"
    ids = sorted({r.listing_id for r in results})
    # What is compared with must stay as read until this batch commits, or two writers racing on a
    # listing would both add the same new state and each point the listing at its own row. So the
    # listings are read under a lock: their rows on PostgreSQL (in id order, so two batches never
    # wait for each other in a circle; NO KEY, so history rows may still refer to them), the
    # database's one write lock on SQLite (taken before reading, not when the first write comes).
    begin_write(session)
    listing_query = (
        select(
            Listing.id,
            Listing.latest_history_id,
            Listing.consecutive_failures,
            Listing.last_success_at,
            PriceHistory.suspicious,
        )
        .outerjoin(PriceHistory, PriceHistory.id == Listing.latest_history_id)
        .where(_among(Listing.id, ids, postgresql))
    )
    if postgresql:  # only the listings are locked: the history row is on the outer join's nullable side
        listing_query = listing_query.order_by(Listing.id).with_for_update(of=Listing, key_share=True)
    listing_rows = session.execute(listing_query).all()
    latest_id = {row.id: row.latest_history_id for row in listing_rows}
    failures = {row.id: row.consecutive_failures for row in listing_rows}
    last_success = {row.id: row.last_success_at for row in listing_rows}
    unconfirmed = {row.id for row in listing_rows if row.suspicious}
    # A page that was read needs its listing's latest state to compare with; a 304 or an
    # unchanged body saw the latest row again, which the listing's last_success_at records, and
    # needs it only when that row is suspicious: seeing it again confirms it.
    compared = [
        latest_id[r.listing_id]
        for r in results
        if latest_id.get(r.listing_id)
        and (r.outcome == "observed" or (r.outcome in SEEN_AGAIN and r.listing_id in unconfirmed))
    ]
    latest: dict[int, Row[int, int, Decimal | None, str | None, bool | None, bool, datetime]] = {}
    if compared:
        for row in session.execute(
            select(
                PriceHistory.id,
                PriceHistory.listing_id,
                PriceHistory.price,
                PriceHistory.currency,
                PriceHistory.in_stock,
                PriceHistory.suspicious,
                PriceHistory.last_seen_at,
            ).where(_among(PriceHistory.id, compared, postgresql))
        ):
            latest[row.listing_id] = row

    superseded: list[dict[str, object]] = []  # a newer row replaces the latest: fix its last_seen_at
    confirmations: list[dict[str, object]] = []  # a suspicious state seen a second time
    new_rows: list[dict[str, object]] = []
    new_row_listing: list[int] = []
    listing_updates: dict[int, dict[str, object]] = {}

    for result in results:
        if result.listing_id not in latest_id:
            continue  # deleted while it was being checked
        outcome = result.outcome
        error = result.error
        if outcome == "observed" and (refused := _refused_price(result.price)) is not None:
            outcome, error = "invalid_price", refused  # the fetcher's checks missed it: still one row's fault
        previous = latest.get(result.listing_id)
        if outcome in SEEN_AGAIN:
            if latest_id[result.listing_id] is None:
                outcome = "not_found"  # nothing recorded yet to be unchanged from; should not happen
            elif previous is not None and previous.suspicious:
                # The same page as the check that read the suspicious price: seen a second time.
                confirmations.append({"b_id": previous.id, "run_id": run_id, "suspicious": False})
                outcome = "changed"
                changes.append(_confirmed(result.listing_id, previous))
        elif outcome == "observed":
            same = (
                previous is not None
                and previous.price == result.price
                and previous.currency == result.currency
                and previous.in_stock == result.in_stock
            )
            if same and previous is not None:
                if previous.suspicious:
                    # still the latest row: its listing's last_success_at says when it was seen
                    confirmations.append({"b_id": previous.id, "run_id": run_id, "suspicious": False})
                    outcome = "changed"
                    changes.append(_confirmed(result.listing_id, previous))
                else:
                    outcome = "unchanged"
            else:
                suspicious = (
                    previous is not None
                    and previous.currency == result.currency
                    and _moved_too_far(previous.price, result.price, suspicious_change)
                )
                outcome = "suspicious" if suspicious else "changed"
                new_rows.append(
                    {
                        "listing_id": result.listing_id,
                        "price": result.price,
                        "currency": result.currency,
                        "in_stock": result.in_stock,
                        "observed_at": result.checked_at,
                        "last_seen_at": result.checked_at,
                        "suspicious": suspicious,
                        "currency_mismatch": result.currency_mismatch,
                        "run_id": run_id,
                    }
                )
                new_row_listing.append(result.listing_id)
                if previous is not None:
                    # The superseded row was last seen at the listing's last success before this check.
                    last_seen = max(previous.last_seen_at, last_success[result.listing_id] or previous.last_seen_at)
                    if last_seen != previous.last_seen_at:
                        superseded.append({"b_id": previous.id, "last_seen_at": last_seen})

        success = outcome in SUCCESS_OUTCOMES
        update_row: dict[str, object] = {
            "b_id": result.listing_id,
            "last_checked_at": result.checked_at,
            "next_check_at": result.checked_at + interval,
            "last_outcome": outcome,
            "consecutive_failures": 0 if success else failures[result.listing_id] + 1,
            "last_error": None if success else (error or outcome)[:500],
            "last_run_id": run_id,
        }
        if success:
            # Never backwards: a writer that lost a race may carry an older check than the one stored.
            before = last_success[result.listing_id]
            update_row["last_success_at"] = result.checked_at if before is None else max(before, result.checked_at)
        if (
            result.etag is not None
            or result.last_modified is not None
            or (outcome == "changed" and result.outcome == "observed")
        ):
            # Validators are the server's text: one longer than its column is dropped, not stored.
            update_row["etag"] = result.etag if result.etag is None or len(result.etag) <= ETAG_MAX else None
            last_modified = result.last_modified
            update_row["last_modified"] = last_modified if last_modified is None or len(last_modified) <= 64 else None
        if result.body_hash is not None:
            update_row["body_hash"] = result.body_hash
        listing_updates[result.listing_id] = update_row
        outcomes[outcome] += 1

    # Core executemany throughout: the ORM's bulk UPDATE by primary key costs several times more
    # Python per row, and a sweep stores every check. The SET clause is each group's keys.
    if superseded:
        _update_by_id(session, _HISTORY, superseded)
    if confirmations:
        _update_by_id(session, _HISTORY, confirmations)
    if new_rows:
        inserted = session.scalars(
            insert(PriceHistory).returning(PriceHistory.id, sort_by_parameter_order=True), new_rows
        ).all()
        for listing_id, history_id, new in zip(new_row_listing, inserted, new_rows, strict=True):
            listing_updates[listing_id]["latest_history_id"] = history_id
            before = latest.get(listing_id)
            if not new["suspicious"]:
                changes.append(
                    StateChange(
                        listing_id=listing_id,
                        history_id=history_id,
                        old_price=before.price if before else None,
                        new_price=new["price"],  # type: ignore[arg-type]
                        old_in_stock=before.in_stock if before else None,
                        new_in_stock=new["in_stock"],  # type: ignore[arg-type]
                        currency=new["currency"],  # type: ignore[arg-type]
                    )
                )
    _update_by_id(session, _LISTINGS, list(listing_updates.values()))
    return RecordResult(outcomes, changes, rows_inserted=len(new_rows))


def _refused_price(price: Decimal | None) -> str | None:
    if price is None:  # an observed page may show no price (out of stock)
        return None
    try:
        check_money(price, what="price")
    except MoneyRangeError as exc:
        return str(exc)
    return None


#: the longest ETag the listings table keeps
ETAG_MAX = 255

#: Errors that one row's values cause (a number the column cannot hold, a constraint); anything
#: else (the database is down, a lock timed out) is the batch's and is raised as it is.
_ROW_ERRORS = (DataError, IntegrityError, StatementError)


def _is_row_error(exc: Exception) -> bool:
    if isinstance(exc, DataError | IntegrityError):
        return True
    # A StatementError that is not a DBAPIError was raised while binding a value (Money's
    # quantize on SQLite, for one), before the statement reached the database.
    return isinstance(exc, StatementError) and not isinstance(exc, DBAPIError)


def record_batch(
    session_scope: Callable[[], AbstractContextManager[Session]],
    results: Sequence[CheckResult],
    *,
    run_id: int | None,
    interval: timedelta,
    suspicious_change: float = 0.5,
    on_recorded: Callable[[Session, RecordResult], None] | None = None,
) -> RecordResult:
    """`record_checks` in a transaction of its own (`session_scope()` opens and commits one).

    `on_recorded(session, result)` runs in each of those transactions, so what it writes (a
    cluster chunk's counts) commits with the checks or not at all.

    If the database refuses a value of one row, the batch is stored again one check per
    transaction: the checks it accepts are stored, and a check it still refuses is recorded as a
    `store_error` of its listing. Other database errors are raised: the batch is not stored.
    """

    def store(part: Sequence[CheckResult]) -> RecordResult:
        with session_scope() as session:
            recorded = record_checks(
                session, part, run_id=run_id, interval=interval, suspicious_change=suspicious_change
            )
            if on_recorded is not None:
                on_recorded(session, recorded)
            return recorded

    try:
        return store(results)
    except _ROW_ERRORS as exc:
        if not _is_row_error(exc):
            raise
        logger.warning(
            "the database refused a batch of %d checks (%s); storing them one by one", len(results), _db_error(exc)
        )
    total = RecordResult(Counter(), [])
    for result in results:
        try:
            part = store([result])
        except _ROW_ERRORS as exc:
            if not _is_row_error(exc):
                raise
            message = f"the database refused this check: {_db_error(exc)}"
            logger.warning("listing %d: %s", result.listing_id, message)
            part = store([CheckResult(result.listing_id, "store_error", result.checked_at, error=message)])
        total.outcomes.update(part.outcomes)
        total.changes.extend(part.changes)
        total.rows_inserted += part.rows_inserted
    return total


def _db_error(exc: Exception) -> str:
    """The database's own words, without the statement and its parameters (scraped values)."""
    cause = getattr(exc, "orig", None) or exc.__cause__ or exc
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    return f"{type(cause).__name__}: {text[:200]}"


def _confirmed(
    listing_id: int, row: Row[int, int, Decimal | None, str | None, bool | None, bool, datetime]
) -> StateChange:
    """A suspicious state seen again is now trusted. The state before it is not at hand here;
    whoever needs it (alerts) reads it from the history."""
    return StateChange(
        listing_id=listing_id,
        history_id=row.id,
        old_price=None,
        new_price=row.price,
        old_in_stock=None,
        new_in_stock=row.in_stock,
        currency=row.currency,
    )


def _among(column: InstrumentedAttribute[int], ids: list[int], postgresql: bool) -> ColumnElement[bool]:
    """`column IN ids`. On PostgreSQL as one array parameter (`= ANY`): an IN list of a batch's
    500 ids is rendered, sent and parsed anew for every batch and is never prepared (SELECT of
    500 listings: 9-11 -> 3-4 us of CPU per id)."""
    if postgresql:
        return column == any_(bindparam("ids", ids, type_=ARRAY(column.type)))
    return column.in_(ids)


def seen_until(history: type[PriceHistory] | AliasedClass[PriceHistory] = PriceHistory) -> ColumnElement[datetime]:
    """Until when a history row's state was seen, for a query that joins the row's listing.

    The listing's newest row is not rewritten by the checks that see it again: its listing's
    `last_success_at` says when it was last seen. `history` may be an alias of PriceHistory.
    """
    latest = func.coalesce(Listing.last_success_at, history.last_seen_at, type_=history.last_seen_at.type)
    return case((history.id == Listing.latest_history_id, latest), else_=history.last_seen_at)


def counts_as_offer() -> ColumnElement[bool]:
    """For a query over listings: the listing's latest state is still an offer (its latest check
    did not say the page is gone, shows another product, or has no price any more)."""
    return or_(Listing.last_outcome.is_(None), Listing.last_outcome.not_in(NOT_AN_OFFER))


_HISTORY = cast(Table, PriceHistory.__table__)
_LISTINGS = cast(Table, Listing.__table__)


def _update_by_id(session: Session, table: Table, rows: list[dict[str, object]]) -> None:
    """UPDATE rows by `b_id`, one executemany per set of columns (a failed check, for example,
    leaves the validators alone)."""
    groups: dict[tuple[str, ...], list[dict[str, object]]] = {}
    for row in rows:
        groups.setdefault(tuple(row), []).append(row)
    connection = session.connection()
    for group in groups.values():
        connection.execute(update(table).where(table.c.id == bindparam("b_id")), group)


def price_at(session: Session, listing_id: int, when: datetime) -> PriceHistory | None:
    """The state of a listing at `when`: the newest row first observed at or before it."""
    return session.scalars(
        select(PriceHistory)
        .where(PriceHistory.listing_id == listing_id, PriceHistory.observed_at <= when)
        .order_by(PriceHistory.observed_at.desc(), PriceHistory.id.desc())
        .limit(1)
    ).first()


def history_between(session: Session, listing_id: int, start: datetime, end: datetime) -> list[PriceHistory]:
    """Every state a listing was in between `start` and `end`: the one in force at `start`, then
    each change up to `end`, oldest first."""
    opening = price_at(session, listing_id, start)
    rows = list(
        session.scalars(
            select(PriceHistory)
            .where(
                PriceHistory.listing_id == listing_id,
                PriceHistory.observed_at > start,
                PriceHistory.observed_at <= end,
            )
            .order_by(PriceHistory.observed_at, PriceHistory.id)
        )
    )
    return ([opening] if opening is not None else []) + rows
