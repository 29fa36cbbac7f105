"""The database schema as typed SQLAlchemy 2.x models.

Money is `Decimal` in SQL NUMERIC(14, 4); every timestamp is timezone-aware UTC. Price history is
change-only: a row per *state* of a listing (price, currency, stock), with the time it was first
and last seen. The schema is created and changed only by the Alembic migrations in `migrations/`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    cast,
    func,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

MONEY_PLACES = Decimal("0.0001")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that goes in as UTC and always comes back timezone-aware.

    SQLite has no time zones, so values are normalised to UTC on the way in and tagged UTC on
    the way out; PostgreSQL stores them as `timestamptz`.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pricemon stores only timezone-aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Money(TypeDecorator[Decimal]):
    """NUMERIC(14, 4) read back as an exact Decimal on every backend.

    SQLite keeps NUMERIC values as 64-bit floats; 14 significant digits round-trip exactly
    through them, so the value is re-read from its shortest repr and quantised to 4 places.
    """

    impl = Numeric(14, 4)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Numeric(14, 4, asdecimal=False))
        return dialect.type_descriptor(Numeric(14, 4))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"money must be a Decimal, got {type(value).__name__}")
        value = value.quantize(MONEY_PLACES)
        return float(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(repr(value) if isinstance(value, float) else str(value)).quantize(MONEY_PLACES)


# A 64-bit key on PostgreSQL; SQLite only auto-increments a column declared exactly INTEGER.
BigId = BigInteger().with_variant(Integer(), "sqlite")
#: share of each listings page filled on PostgreSQL; the rest is room for in-place (HOT) updates
LISTINGS_FILLFACTOR = 85

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        datetime: UTCDateTime(),
        Decimal: Money(),
        dict[str, Any]: JSON(),
        list[str]: JSON(),
    }


class Product(Base):
    """One item of our own catalogue."""

    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(500))
    currency: Mapped[str] = mapped_column(String(3))
    price: Mapped[Decimal]
    cost: Mapped[Decimal | None]
    min_price: Mapped[Decimal | None]
    max_price: Mapped[Decimal | None]
    map_price: Mapped[Decimal | None]
    gtin: Mapped[str | None] = mapped_column(String(14))
    # Identity for matching competitors' pages (monitor.matching): manufacturer part number, brand.
    mpn: Mapped[str | None] = mapped_column(String(100))
    brand: Mapped[str | None] = mapped_column(String(200))
    tags: Mapped[list[str]] = mapped_column(default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # When an import last set the price: a price pricemon applied after it is kept by a re-import.
    price_imported_at: Mapped[datetime | None]

    listings: Mapped[list[Listing]] = relationship(back_populates="product", cascade="all, delete-orphan")


class Competitor(Base):
    """A shop we watch; declared in config and mirrored here so history can refer to it."""

    __tablename__ = "competitors"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    base_url: Mapped[str] = mapped_column(String(2048))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    listings: Mapped[list[Listing]] = relationship(back_populates="competitor")


class Listing(Base):
    """One competitor URL showing one of our products, with the state of its last check."""

    __tablename__ = "listings"
    # Every check updates its listing, so no index may hold a column a check writes
    # (next_check_at, last_checked_at, ...): PostgreSQL can then update the row in place (a HOT
    # update, helped by the free room fillfactor leaves in each page) instead of adding an entry
    # to every index of the table for each of the 170,000 checks of a sweep. A due-check query
    # reads one competitor's listings by competitor_id and filters the rest.
    # product_id lookups use the unique (product_id, competitor_id) index.
    __table_args__ = (
        UniqueConstraint("product_id", "competitor_id"),
        Index("ix_listings_competitor_id", "competitor_id"),
        {"postgresql_with": {"fillfactor": LISTINGS_FILLFACTOR}},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    competitor_id: Mapped[int] = mapped_column(ForeignKey("competitors.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2048))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    # Scheduling and health.
    next_check_at: Mapped[datetime | None]
    last_checked_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_outcome: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(String(500))
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)

    # Conditional requests: what the server said last time, and the hash of the body we parsed.
    etag: Mapped[str | None] = mapped_column(String(255))
    last_modified: Mapped[str | None] = mapped_column(String(64))
    body_hash: Mapped[str | None] = mapped_column(String(40))

    # The listing's newest history row. Not a foreign key: the two tables would refer to each
    # other, which SQLite cannot add after the fact; history rows are only deleted with their listing.
    latest_history_id: Mapped[int | None] = mapped_column(BigId)
    # The run whose check is the latest: a cluster chunk run again after its worker died skips
    # the listings its first delivery already stored (not indexed, so checks stay HOT updates).
    last_run_id: Mapped[int | None] = mapped_column(Integer)

    product: Mapped[Product] = relationship(back_populates="listings")
    competitor: Mapped[Competitor] = relationship(back_populates="listings")


class PriceHistory(Base):
    """One state of a listing (price, currency, stock) from `observed_at` until it was last seen.

    A check that sees the same state writes no row, so the table grows with the changes, not
    with the checks. The price at time T is the row with the greatest `observed_at <= T`. Until
    when a state was confirmed is `last_seen_at` once a newer row superseded it; for a listing's
    newest row it is the listing's `last_success_at` (checks that see it again do not rewrite
    it), so read it with `monitor.store.history.seen_until()`.
    """

    __tablename__ = "price_history"
    __table_args__ = (
        # history of one listing over a time range; also the latest state of a listing
        Index("ix_price_history_listing_time", "listing_id", "observed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    listing_id: Mapped[int] = mapped_column(ForeignKey("listings.id", ondelete="CASCADE"))
    price: Mapped[Decimal | None]
    currency: Mapped[str | None] = mapped_column(String(3))
    in_stock: Mapped[bool | None] = mapped_column(Boolean)
    observed_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    # Moved more than scrape.suspicious_change from the previous state: not trusted until a
    # second check sees the same price (which clears the flag).
    suspicious: Mapped[bool] = mapped_column(Boolean, default=False)
    # The page's currency differs from the product's: stored as found, flagged for strategies.
    currency_mismatch: Mapped[bool] = mapped_column(Boolean, default=False)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("scrape_runs.id", ondelete="SET NULL"), index=True)


class ScrapeRun(Base):
    """One sweep (CLI, daemon or benchmark): when, over what, and how it went."""

    __tablename__ = "scrape_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    trigger: Mapped[str] = mapped_column(String(20))
    competitors: Mapped[list[str]] = mapped_column(default=list)
    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default="running")
    # {competitor name: {outcome: count, "seconds": float}}
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    checked: Mapped[int] = mapped_column(Integer, default=0)
    changed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    # The process that runs the sweep, "run:ID@HOST:PID" (see monitor.store.leases); a run still
    # "running" whose process is gone is closed as interrupted once its leases have expired.
    holder: Mapped[str | None] = mapped_column(String(255))


class SweepLease(Base):
    """A competitor's sweep lease: at most one process sweeps a competitor at a time, everywhere.

    Taken with one atomic statement, renewed by the holder's heartbeat while it sweeps, released
    when it is done. A holder that dies stops renewing, so its lease expires and can be taken over.
    """

    __tablename__ = "sweep_leases"

    competitor: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    # Not a foreign key: a lease may outlive its run's row (a worker of a cluster holds it for a chunk).
    run_id: Mapped[int | None] = mapped_column(Integer)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    acquired_at: Mapped[datetime]
    renewed_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class ClusterChunk(Base):
    """One task of a cluster sweep: some of one competitor's listings, run by one worker at a time.

    The database is the truth about a chunk (Celery keeps no results): queued -> running -> done,
    or failed (for good, with the error), or cancelled (its sweep stopped before it started).
    `counts` grows with every batch a worker commits, in the batch's own transaction, so a chunk
    run again after its worker died adds only what the first delivery had not stored.
    """

    __tablename__ = "cluster_chunks"
    __table_args__ = (Index("ix_cluster_chunks_run_state", "run_id", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("scrape_runs.id", ondelete="CASCADE"))
    competitor: Mapped[str] = mapped_column(String(100))
    listing_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    size: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    # deliveries that started running it (a lease held elsewhere does not count)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(255))
    holder: Mapped[str | None] = mapped_column(String(255))
    queued_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text)


class ClusterWorker(Base):
    """A `pricemon worker`: its heartbeat and what its processes did, for status and metrics."""

    __tablename__ = "cluster_workers"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    concurrency: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    seen_at: Mapped[datetime]
    chunks_done: Mapped[int] = mapped_column(Integer, default=0)
    chunks_failed: Mapped[int] = mapped_column(Integer, default=0)
    listings_checked: Mapped[int] = mapped_column(BigInteger, default=0)


class Suggestion(Base):
    """A price a strategy suggests for one product, waiting for review."""

    __tablename__ = "suggestions"
    __table_args__ = (Index("ix_suggestions_status_product", "status", "product_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    strategy: Mapped[str] = mapped_column(String(200))
    current_price: Mapped[Decimal]
    suggested_price: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(Text)
    # pending -> approved -> applied, or rejected, or superseded by a newer suggestion
    status: Mapped[str] = mapped_column(String(16), default="pending")
    auto_approved: Mapped[bool] = mapped_column(Boolean, default=False)
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(100))
    # market snapshot when suggested: competitor min/median/max, our rank, offers used
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # expected profit per day after minus before, under the demand model (None: no usable model
    # or no cost); the units, revenue and profit it comes from are in details["expected"]
    expected_profit_change: Mapped[Decimal | None]

    product: Mapped[Product] = relationship()


def suggestion_change_size() -> Any:
    """|suggested - current| / current as SQL: the review queue's default sort key and the expression
    of its index (migration 0009_review_idx); `op("/")` keeps SQLAlchemy from rewriting the division."""
    current = cast(Suggestion.current_price, Float)
    return func.abs((cast(Suggestion.suggested_price, Float) - current).self_group().op("/")(current))


Index("ix_suggestions_review_change", Suggestion.status, suggestion_change_size(), Suggestion.id)
# the review queue's totals, strategy choices and product-filtered counts, read from the index
# alone (migrations 0009_review_idx, 0011_review_totals)
Index(
    "ix_suggestions_review_cover",
    Suggestion.status,
    Suggestion.product_id,
    Suggestion.current_price,
    Suggestion.suggested_price,
    Suggestion.strategy,
    Suggestion.currency,
    Suggestion.expected_profit_change,
)
# the rows with an expected profit figure, in one range (migration 0011_review_totals)
Index("ix_suggestions_review_profit", Suggestion.status, Suggestion.expected_profit_change, Suggestion.currency)


class PriceChange(Base):
    """Audit record of a price we applied, and its delivery through the price feed."""

    __tablename__ = "price_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), index=True)
    suggestion_id: Mapped[int | None] = mapped_column(ForeignKey("suggestions.id", ondelete="SET NULL"))
    old_price: Mapped[Decimal]
    new_price: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    strategy: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    applied_by: Mapped[str] = mapped_column(String(100))
    applied_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # webhook delivery: "none" when no webhook is configured, else pending -> sending -> sent (or
    # failed, retried); "sending" is one feed send's claim, taken at feed_claimed_at
    feed_state: Mapped[str] = mapped_column(String(16), default="none", index=True)
    feed_claimed_at: Mapped[datetime | None]
    feed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    feed_error: Mapped[str | None] = mapped_column(String(500))
    feed_sent_at: Mapped[datetime | None]

    product: Mapped[Product] = relationship()


class AlertEvent(Base):
    """Something an alert rule fired on; `key` makes each event unique per rule across restarts."""

    __tablename__ = "alert_events"
    __table_args__ = (UniqueConstraint("rule", "key"), Index("ix_alert_events_rule_subject", "rule", "subject"))

    id: Mapped[int] = mapped_column(primary_key=True)
    rule: Mapped[str] = mapped_column(String(100))
    key: Mapped[str] = mapped_column(String(255))
    # what the quiet period applies to, e.g. "listing:42" or "competitor:acme"
    subject: Mapped[str] = mapped_column(String(255))
    condition: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class AlertDelivery(Base):
    """One event's delivery through one channel; undelivered ones are retried, never dropped."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (Index("ix_alert_deliveries_status", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("alert_events.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    next_attempt_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]


class DiscoveredPage(Base):
    """A page of a competitor's shop found by `pricemon discover`, with the product it showed.

    `status`: "product" (a product page, identity read), "other" (no product on it), "gone"
    (404/410 at the last discovery), "failed" (any other fetch failure; what it showed before is kept).
    """

    __tablename__ = "discovered_pages"
    __table_args__ = (UniqueConstraint("competitor_id", "url"), Index("ix_discovered_pages_gtin", "gtin"))

    id: Mapped[int] = mapped_column(primary_key=True)
    competitor_id: Mapped[int] = mapped_column(ForeignKey("competitors.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2048))
    found_via: Mapped[str] = mapped_column(String(16))  # sitemap | crawl | known (re-checked)
    status: Mapped[str] = mapped_column(String(16))
    http_status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    name: Mapped[str | None] = mapped_column(String(500))
    brand: Mapped[str | None] = mapped_column(String(200))
    mpn: Mapped[str | None] = mapped_column(String(100))
    gtin: Mapped[str | None] = mapped_column(String(14))  # GTIN-14, check digit verified
    shop_sku: Mapped[str | None] = mapped_column(String(100))
    price: Mapped[Decimal | None]
    currency: Mapped[str | None] = mapped_column(String(3))
    image_url: Mapped[str | None] = mapped_column(String(2048))
    # hash of the identity (gtin, mpn, brand, name): a new one means the page shows another product
    fingerprint: Mapped[str | None] = mapped_column(String(32))
    needs_matching: Mapped[bool] = mapped_column(Boolean, default=True)
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)
    changed_at: Mapped[datetime | None]


class MatchCandidate(Base):
    """A proposed pairing of one discovered page with one of our products, and its review.

    proposed -> accepted (a listing now watches the page) | rejected. `why` says what agreed
    and what conflicted; `rematch` is set when an accepted page went away or changed product.
    """

    __tablename__ = "match_candidates"
    __table_args__ = (
        UniqueConstraint("page_id", "product_id"),
        Index("ix_match_candidates_status", "status", "competitor_id"),
        Index("ix_match_candidates_product", "product_id", "competitor_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("discovered_pages.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    competitor_id: Mapped[int] = mapped_column(ForeignKey("competitors.id", ondelete="CASCADE"))
    score: Mapped[float] = mapped_column(Float)
    method: Mapped[str] = mapped_column(String(16))  # gtin | mpn | title
    status: Mapped[str] = mapped_column(String(16), default="proposed")
    why: Mapped[dict[str, Any]] = mapped_column(default=dict)
    rematch: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(100))


class ApiToken(Base):
    """A bearer token of the web app and its API: only the SHA-256 of the token is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # viewer < approver < admin (monitor.store.tokens.ROLES)
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class SalesDay(Base):
    """Our own sales of one product on one day (imported): units sold, revenue, and the price charged."""

    __tablename__ = "sales_days"
    __table_args__ = (UniqueConstraint("product_id", "date"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    date: Mapped[date] = mapped_column(Date)
    units: Mapped[int] = mapped_column(Integer)
    revenue: Mapped[Decimal]
    # From the file, else from pricemon's applied-price history at import time; None: not known.
    price: Mapped[Decimal | None]


class TrafficDay(Base):
    """Our own shop's traffic for one product on one day (imported): product page sessions and clicks."""

    __tablename__ = "traffic_days"
    __table_args__ = (UniqueConstraint("product_id", "date"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    date: Mapped[date] = mapped_column(Date)
    sessions: Mapped[int] = mapped_column(Integer)
    clicks: Mapped[int | None] = mapped_column(Integer)


class DemandEstimateRow(Base):
    """A product's latest fitted demand model (see `monitor.demand.estimate.DemandEstimate`)."""

    __tablename__ = "demand_estimates"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), unique=True)
    status: Mapped[str] = mapped_column(String(20))
    elasticity: Mapped[float | None] = mapped_column(Float)
    ci_low: Mapped[float | None] = mapped_column(Float)
    ci_high: Mapped[float | None] = mapped_column(Float)
    cross_elasticity: Mapped[float | None] = mapped_column(Float)
    conversion_rate: Mapped[float | None] = mapped_column(Float)
    conversion_elasticity: Mapped[float | None] = mapped_column(Float)
    observations: Mapped[int] = mapped_column(Integer)
    base_units: Mapped[float | None] = mapped_column(Float)
    ref_price: Mapped[Decimal | None]
    ref_index: Mapped[float | None] = mapped_column(Float)
    method: Mapped[str] = mapped_column(String(200), default="")
    fitted_at: Mapped[datetime]
