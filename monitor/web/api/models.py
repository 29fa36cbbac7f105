"""The API's contract: Pydantic models of what it takes and returns (the OpenAPI document is made
from them). Money is a decimal string ("19.99"), times are ISO 8601 UTC; a listing's URL is checked
by the same validator as a competitor's URLs in the config."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from monitor.settings import HttpUrl

Money = str


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Product(Model):
    sku: str
    name: str
    currency: str
    price: Money
    cost: Money | None
    min_price: Money | None
    max_price: Money | None
    map_price: Money | None
    gtin: str | None
    tags: list[str]
    active: bool


class ProductPage(Model):
    items: list[Product]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class ProductUpdate(Model):
    active: bool = Field(description="false deactivates the product: no more checks or suggestions.")


class Listing(Model):
    id: int
    sku: str
    competitor: str
    url: str
    active: bool
    price: Money | None
    currency: str | None
    in_stock: bool | None
    observed_at: str | None
    last_seen_at: str | None
    suspicious: bool
    last_checked_at: str | None
    last_outcome: str | None
    last_error: str | None
    consecutive_failures: int
    next_check_at: str | None


class ListingPage(Model):
    items: list[Listing]
    next_cursor: str | None


class ListingCreate(Model):
    sku: str = Field(min_length=1, max_length=64)
    competitor: str = Field(min_length=1, max_length=100, description="A competitor of the config.")
    url: HttpUrl = Field(max_length=2048)


class ListingUpdate(Model):
    active: bool = Field(description="false disables the listing: it is no longer checked; its history stays.")


class HistoryPoint(Model):
    competitor: str
    url: str
    price: Money | None
    currency: str | None
    in_stock: bool | None
    observed_at: str | None
    last_seen_at: str | None
    suspicious: bool
    currency_mismatch: bool


class History(Model):
    sku: str
    points: list[HistoryPoint]


class Suggestion(Model):
    id: int
    product_id: int
    sku: str
    name: str
    currency: str
    tags: list[str]
    status: str
    strategy: str
    current_price: Money
    suggested_price: Money
    change_pct: str = Field(description="Change from our price, in percent (decimal string).")
    cost: Money | None
    margin_before_pct: str | None
    margin_after_pct: str | None
    competitor_min: Money | None
    competitor_median: Money | None
    competitor_max: Money | None
    index_before: str | None = Field(description="Our price / the market median, before the change.")
    index_after: str | None
    rank_before: int | None
    rank_after: int | None
    offers: int
    newest_offer_at: str | None
    reason: str
    reason_steps: list[str]
    flags: list[str] = Field(description="guardrail, suspicious, converted, filtered, auto_approved")
    created_at: str
    decided_by: str | None
    expected_profit_change: Money | None = Field(
        description="Expected profit per day after the change minus before, under the demand model; "
        "null without a usable model or a cost."
    )


class SuggestionPage(Model):
    items: list[Suggestion]
    total: int | None = Field(
        description="Suggestions the filters select (null unless `include_total=true`: counting reads the "
        "whole filtered set)."
    )
    expected_profit_total: dict[str, Money] | None = Field(
        description="The filtered set's expected profit change per day, summed per currency "
        "(null unless `include_total=true`)."
    )
    with_profit_figure: int | None = Field(
        description="How many of the filtered set have an expected profit change (null unless `include_total=true`)."
    )
    next_cursor: str | None
    sort: str
    descending: bool


Direction = Literal["raise", "cut"]
SortKey = Literal["change", "impact", "sku", "name", "age", "margin"]


class SuggestionFilter(Model):
    """Which pending suggestions: the same filters as the list (and the Review page)."""

    tag: str | None = None
    competitor: str | None = None
    strategy: str | None = None
    direction: Direction | None = None
    min_change_pct: Decimal | None = Field(None, ge=0, le=100000)
    max_change_pct: Decimal | None = Field(None, ge=0, le=100000)
    margin_below: Decimal | None = Field(None, ge=-100000, le=100000)
    q: str | None = Field(None, max_length=200)


class Decision(Model):
    """The suggestions to decide: `ids`, or every pending one `filter` selects (`{}`: all pending)."""

    ids: list[int] | None = Field(None, min_length=1, max_length=10000)
    filter: SuggestionFilter | None = None
    dry_run: bool = Field(False, description="Say what would be decided; change nothing.")


class Decided(Model):
    id: int
    sku: str
    current_price: Money
    suggested_price: Money
    currency: str


class DecisionResult(Model):
    status: Literal["approved", "rejected"]
    count: int
    by: str = Field(description="Who decided: the token's name, as recorded on each suggestion.")
    dry_run: bool
    suggestions: list[Decided]


class ApplyRequest(Model):
    dry_run: bool = Field(False, description="Preview what would change and be sent; change nothing.")


class AppliedChange(Model):
    sku: str
    old_price: Money
    new_price: Money
    currency: str
    strategy: str | None = None
    suggestion_id: int | None = None


class Feed(Model):
    csv_rows: int | None = None
    csv_path: str | None = None
    sent: int = 0
    failed: int = 0
    error: str | None = None
    csv_error: str | None = None


class ApplyResult(Model):
    dry_run: bool
    by: str
    count: int
    applied: list[AppliedChange]
    feed: Feed | None = Field(description="What the price feed did; null on a dry run (nothing is sent).")


class ListingCounts(Model):
    total: int
    fresh: int
    stale: int
    failing: int


class CompetitorStatus(Model):
    name: str
    base_url: str
    enabled: bool
    schedule: str
    healthy: bool
    listings: ListingCounts
    last_success_at: str | None
    next_due_at: str | None
    last_sweep: dict[str, Any] | None
    failing_longest: list[dict[str, Any]]


class Competitors(Model):
    healthy: bool
    now: str
    staleness_limit_seconds: float
    competitors: list[CompetitorStatus]


class Sweep(Model):
    id: int
    trigger: str
    competitors: list[str]
    status: str
    started_at: str | None
    finished_at: str | None
    checked: int
    changed: int
    failed: int
    error: str | None
    counts: dict[str, Any]


class SweepPage(Model):
    items: list[Sweep]
    next_cursor: str | None


class AlertDelivery(Model):
    channel: str
    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: str | None
    delivered_at: str | None


class Alert(Model):
    id: int
    created_at: str
    rule: str
    condition: str
    subject: str
    message: str
    payload: dict[str, Any]
    deliveries: list[AlertDelivery]


class Alerts(Model):
    items: list[Alert]


#: a CSV cell as JSON: text, or a number (`12.5` and `"12.5"` are checked alike); null = empty; not a boolean
Cell = StrictStr | StrictInt | StrictFloat | None
#: rows per request to POST /sales and /traffic; a bigger set goes as several requests or a CSV import
MAX_DAILY_ROWS = 10_000


class SalesRow(Model):
    """One product and day of our sales: the columns of `pricemon import sales`."""

    sku: Cell = Field(description="The product's SKU (it must exist).")
    date: Cell = Field(description="The day, YYYY-MM-DD.")
    units: Cell = Field(description="Units sold that day (a whole number >= 0).")
    revenue: Cell = Field(description='Revenue that day, e.g. "199.80".')
    price: Cell = Field(None, description="Our price that day; absent: pricemon's applied price on that day.")


class TrafficRow(Model):
    """One product and day of our traffic: the columns of `pricemon import traffic`."""

    sku: Cell = Field(description="The product's SKU (it must exist).")
    date: Cell = Field(description="The day, YYYY-MM-DD.")
    sessions: Cell = Field(description="Sessions (e.g. product page views) that day, a whole number >= 0.")
    clicks: Cell = Field(None, description="Clicks (e.g. add-to-cart) that day, a whole number >= 0.")


class SalesUpload(Model):
    rows: list[SalesRow] = Field(max_length=MAX_DAILY_ROWS, description="One row per product and day.")


class TrafficUpload(Model):
    rows: list[TrafficRow] = Field(max_length=MAX_DAILY_ROWS, description="One row per product and day.")


class DailyImport(Model):
    """What an upload wrote: rows new to the table, rows already there (rewritten with these values)."""

    inserted: int
    updated: int
    prices_from_history: int | None = Field(
        None, description="Sales rows without a price that got pricemon's applied price (sales only)."
    )


# --- matches (the match review queue) ---

MatchStatus = Literal["proposed", "accepted", "rejected"]
MatchId = Annotated[int, Field(ge=1, le=2**63 - 1)]


class MatchProduct(Model):
    name: str
    brand: str | None
    mpn: str | None
    gtin: str | None
    price: Money
    currency: str


class MatchPage(Model):
    url: str
    status: str = Field(description="The page's state at the last look: ok, gone, ...")
    name: str | None
    brand: str | None
    mpn: str | None
    gtin: str | None = Field(description="GTIN-14, check digit verified.")
    shop_sku: str | None
    price: Money | None
    currency: str | None
    image_url: str | None


class Match(Model):
    id: int
    status: MatchStatus
    score: float
    method: str = Field(description="gtin, mpn or title")
    competitor: str
    sku: str
    product: MatchProduct
    page: MatchPage
    why: dict[str, Any] = Field(
        description="agreed (identifiers), title_score, conflicts (attributes), price, review (conflicting matches)"
    )
    rematch: str | None = Field(description="Why an accepted match is proposed again (its page went away).")
    decided_at: str | None
    decided_by: str | None


class MatchList(Model):
    items: list[Match]
    total: int = Field(description="Matches the filters select, on every page.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class MatchDecision(Model):
    """The matches to decide, by id."""

    ids: list[MatchId] = Field(min_length=1, max_length=10000)


class ListingsWritten(Model):
    inserted: int
    updated: int
    unchanged: int


class MatchDecisionResult(Model):
    decision: Literal["accept", "reject"]
    by: str = Field(description="Who decided: the token's name, as recorded on each match.")
    decided: list[int]
    unchanged: list[int] = Field(description="Already in the state asked for.")
    skipped: dict[str, str] = Field(description="Match id -> why it could not be decided.")
    listings: ListingsWritten | None = Field(description="Listings written for the accepted matches.")
