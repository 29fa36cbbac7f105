"""The pricing strategy plugin contract: what a strategy receives, what it returns, how it declares options.

A strategy is any class or object with `name`, `description`, `options` and
`suggest(context, options)`. It registers in the entry-point group `pricemon.strategies`
(or lives in a `*.py` file of the plugins folder). Strategies are pure: no network, no database
session, no clock other than `context.now`. See docs/strategies.md.

    from decimal import Decimal
    from monitor.pricing import NoChange, Option, PricingContext, Suggestion

    class Cheapest:
        name = "cheapest_plus"
        description = "Lowest competitor price plus a fixed amount."
        options = {"plus": Option(Decimal, Decimal("0.00"), "Amount added to the lowest price.")}

        def suggest(self, context: PricingContext, options: dict) -> Suggestion | NoChange:
            if not context.offers:
                return NoChange("no competitor offers")
            low = min(context.offers, key=lambda o: o.price)
            return Suggestion(low.price + options["plus"], f"lowest: {low.competitor} {low.price}")
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol, runtime_checkable

from monitor.demand.estimate import DemandEstimate
from monitor.money import format_amount

ENTRY_POINT_GROUP = "pricemon.strategies"


@dataclass(frozen=True)
class Product:
    """Our own product as a strategy sees it (read-only)."""

    sku: str
    name: str
    price: Decimal
    currency: str
    cost: Decimal | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    map_price: Decimal | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Offer:
    """The latest trusted state of one competitor listing, in the product's currency.

    `original_price`/`original_currency` are set when the price was converted from another
    currency through the configured rate table.
    """

    competitor: str
    price: Decimal
    currency: str
    in_stock: bool | None
    observed_at: datetime
    last_seen_at: datetime
    suspicious: bool = False
    url: str = ""
    original_price: Decimal | None = None
    original_currency: str | None = None


@dataclass(frozen=True)
class HistoryPoint:
    """One stored state of a competitor listing of this product (change-only history)."""

    competitor: str
    price: Decimal | None
    currency: str | None
    in_stock: bool | None
    observed_at: datetime
    last_seen_at: datetime
    suspicious: bool


def _no_history(_since: datetime | None) -> Sequence[HistoryPoint]:
    return ()


def _no_limits() -> tuple[Decimal | None, Decimal | None]:
    return None, None


@dataclass(frozen=True)
class PricingContext:
    """Everything a strategy may look at for one product.

    `offers` are already filtered by the assignment (in stock, fresh, not suspicious, wanted
    competitors, converted currency); `all_offers` are the unfiltered latest states. `demand` is
    the product's fitted demand model (`pricemon demand fit`), or None when none was fitted;
    only `demand.usable` models should drive a price.
    """

    product: Product
    offers: tuple[Offer, ...]
    now: datetime
    all_offers: tuple[Offer, ...] = ()
    history_reader: Callable[[datetime | None], Sequence[HistoryPoint]] = field(default=_no_history, repr=False)
    demand: DemandEstimate | None = None
    limits_reader: Callable[[], tuple[Decimal | None, Decimal | None]] = field(default=_no_limits, repr=False)

    def price_history(self, since: datetime | None = None) -> Sequence[HistoryPoint]:
        """This product's competitor price history, oldest first (read lazily on first use)."""
        return self.history_reader(since)

    def allowed_range(self) -> tuple[Decimal | None, Decimal | None]:
        """(lowest, highest) price the assignment's guardrails allow before rounding (margin floor,
        MAP, min/max, max_change); None where nothing limits that side."""
        return self.limits_reader()


@dataclass(frozen=True)
class Suggestion:
    """Set the product's price to `price`; `reason` is shown to the reviewer.

    `currency` may be given as a check: it must be the product's currency.
    """

    price: Decimal
    reason: str
    currency: str | None = None


@dataclass(frozen=True)
class NoChange:
    """Leave the price alone, and say why."""

    reason: str


Result = Suggestion | NoChange


@dataclass(frozen=True)
class Option:
    """One option of a strategy: its type (Decimal, int, bool or str), default and help text.

    `choices` limits a str option to the given values.
    """

    type: type
    default: Any
    description: str
    choices: tuple[str, ...] | None = None

    def convert(self, value: Any) -> Any:
        """The config value as this option's type; ValueError says what was expected."""
        if self.type is Decimal:
            if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
                raise ValueError(f"expected a number, got {value!r}")
            try:
                number = Decimal(str(value))
            except InvalidOperation:
                raise ValueError(f"expected a number, got {value!r}") from None
            if not number.is_finite():
                raise ValueError(f"expected a finite number, got {value!r}")
            return number
        if self.type is bool:
            if not isinstance(value, bool):
                raise ValueError(f"expected true or false, got {value!r}")
            return value
        if self.type is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"expected a whole number, got {value!r}")
            return value
        if self.type is str:
            if not isinstance(value, str):
                raise ValueError(f"expected a string, got {value!r}")
            if self.choices is not None and value not in self.choices:
                raise ValueError(f"expected one of {', '.join(self.choices)}, got {value!r}")
            return value
        raise ValueError(f"unsupported option type {self.type!r}")


@runtime_checkable
class Strategy(Protocol):
    """What the engine calls. A class with these attributes works as well as an instance."""

    name: str
    description: str
    options: Mapping[str, Option]

    def suggest(self, context: PricingContext, options: Mapping[str, Any]) -> Result: ...


def lowest(offers: Sequence[Offer]) -> tuple[Decimal, list[Offer]] | None:
    """The lowest price among `offers` and every offer at that price (ties), or None."""
    if not offers:
        return None
    low = min(o.price for o in offers)
    return low, [o for o in offers if o.price == low]


def format_price(price: Decimal) -> str:
    """`Decimal("19.9900")` -> `"19.99"`: how prices appear in reasons."""
    return format_amount(price) or ""


def describe_offers(offers: Sequence[Offer]) -> str:
    """`Acme 19.99` or `Acme, Globex 19.99` for tied offers (names sorted)."""
    names = ", ".join(sorted(o.competitor for o in offers))
    return f"{names} {format_price(offers[0].price)}"


def market_median(offers: Sequence[Offer]) -> Decimal | None:
    """The median price of `offers` (the mean of the middle two for an even count), or None."""
    prices = sorted(o.price for o in offers)
    if not prices:
        return None
    middle = len(prices) // 2
    return prices[middle] if len(prices) % 2 else (prices[middle - 1] + prices[middle]) / 2


__all__ = [
    "ENTRY_POINT_GROUP",
    "DemandEstimate",
    "HistoryPoint",
    "NoChange",
    "Offer",
    "Option",
    "PricingContext",
    "Product",
    "Result",
    "Strategy",
    "Suggestion",
    "describe_offers",
    "format_price",
    "lowest",
    "market_median",
]
