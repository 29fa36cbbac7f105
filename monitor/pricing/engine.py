"""The pricing engine: which offers count, which strategy chain a product gets, and running it safely.

Pure computation over plain values: no database session here (see monitor.pricing.workflow for
the orchestration with the store). `price_many` runs the strategies in worker processes under
the configured time limit (monitor.pricing.isolation); a plugin that raises, hangs, crashes or
returns nonsense is reported with its name and the product, and the product keeps its price.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from monitor.demand.estimate import DemandEstimate
from monitor.demand.profit import profit_impact
from monitor.errors import ConfigError
from monitor.money import MoneyRangeError, check_money, format_amount
from monitor.pricing import (
    HistoryPoint,
    NoChange,
    Offer,
    PricingContext,
    Product,
    Strategy,
    Suggestion,
    market_median,
)
from monitor.pricing.guardrails import Limits, apply_guardrails, guardrail_bounds
from monitor.pricing.invariants import invariant_breaches
from monitor.pricing.loader import StrategyManager
from monitor.settings import Assignment, PricingSettings

if TYPE_CHECKING:
    from monitor.pricing.isolation import PendingBatch, StrategyWorkers

logger = logging.getLogger(__name__)

CENTS = Decimal("0.01")

# (competitor, url, price, currency, in_stock, observed_at, last_seen_at, suspicious)
RawOffer = tuple[Any, ...]
# (product id, product, raw offers, its history reader[, its demand model or None])
PricingItem = tuple[Any, ...]


@dataclass
class Outcome:
    """What happened to one product."""

    sku: str
    product_id: int
    kind: str  # "suggested" | "unchanged" | "no_change" | "held" | "refused" | "failed"
    strategy: str | None = None
    price: Decimal | None = None
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    auto_approve: bool = False


@dataclass
class ResolvedAssignment:
    assignment: Assignment
    where: str
    chain: list[tuple[str, Strategy | None, str | None, dict[str, Any]]]  # name, strategy, load error, options


def effective_assignment(pricing: PricingSettings, sku: str, tags: Sequence[str]) -> tuple[str, Assignment]:
    """The default, overlaid with the first matching tag's keys, then the SKU's keys."""
    where = "pricing.default"
    assignment = pricing.default
    for tag, override in pricing.tags.items():
        if tag in tags:
            assignment = assignment.model_copy(update={k: getattr(override, k) for k in override.model_fields_set})
            where = f"pricing.tags.{tag}"
            break
    by_sku = pricing.skus.get(sku)
    if by_sku is not None:
        assignment = assignment.model_copy(update={k: getattr(by_sku, k) for k in by_sku.model_fields_set})
        where = f"{where}+pricing.skus.{sku}"
    return where, assignment


def filter_offers(
    raw: Sequence[RawOffer], product: Product, assignment: Assignment, rates: dict[str, float], now: datetime
) -> tuple[tuple[Offer, ...], tuple[Offer, ...]]:
    """(offers that count, all offers) for one product under one assignment.

    A listing whose page did not say whether the item is in stock counts as in stock: only a
    stated "out of stock" removes it. A page without a currency is taken to be in ours.
    """
    used: list[Offer] = []
    everything: list[Offer] = []
    include = set(assignment.include)
    exclude = set(assignment.exclude)
    for competitor, url, price, currency, in_stock, observed_at, last_seen_at, suspicious in raw:
        currency = currency or product.currency
        offer = Offer(competitor, price, currency, in_stock, observed_at, last_seen_at, bool(suspicious), url or "")
        everything.append(offer)
        if (include and competitor not in include) or competitor in exclude:
            continue
        if assignment.in_stock_only and in_stock is False:
            continue
        if assignment.ignore_suspicious and suspicious:
            continue
        if assignment.max_age is not None and now - last_seen_at > assignment.max_age:
            continue
        if currency != product.currency:
            rate = rates.get(f"{currency}:{product.currency}")
            if assignment.other_currencies == "skip" or rate is None:
                continue
            converted = (price * Decimal(str(rate))).quantize(CENTS, rounding=ROUND_HALF_UP)
            offer = Offer(
                competitor,
                converted,
                product.currency,
                in_stock,
                observed_at,
                last_seen_at,
                bool(suspicious),
                url or "",
                original_price=price,
                original_currency=currency,
            )
        used.append(offer)
    return tuple(used), tuple(everything)


def rank_of(price: Decimal, offers: Sequence[Offer]) -> int:
    """1 + how many competitor offers are strictly cheaper than `price`."""
    return 1 + sum(1 for o in offers if o.price < price)


def market_details(product: Product, offers: Sequence[Offer], all_offers: Sequence[Offer]) -> dict[str, Any]:
    prices = sorted(o.price for o in offers)
    middle = len(prices) // 2
    if prices:
        mid = prices[middle] if len(prices) % 2 else ((prices[middle - 1] + prices[middle]) / 2).quantize(CENTS)
    return {
        "competitor_min": format_amount(prices[0]) if prices else None,
        "competitor_median": format_amount(mid) if prices else None,
        "competitor_max": format_amount(prices[-1]) if prices else None,
        "rank_before": rank_of(product.price, offers),
        "offers_total": len(all_offers),
        "offers_used": [
            {
                "competitor": o.competitor,
                "price": format_amount(o.price),
                "currency": o.currency,
                "in_stock": o.in_stock,
                **(
                    {"original": f"{format_amount(o.original_price)} {o.original_currency}"}
                    if o.original_price is not None
                    else {}
                ),
            }
            for o in offers
        ],
    }


def check_result(result: Any, product: Product) -> str | None:
    """Why a strategy's return value is unacceptable, or None."""
    if isinstance(result, NoChange):
        return None
    if not isinstance(result, Suggestion):
        return f"returned {type(result).__name__}, expected Suggestion or NoChange"
    price = result.price
    if not isinstance(price, Decimal):
        return f"returned a price of type {type(price).__name__}, expected Decimal"
    if not price.is_finite():
        return f"returned a price that is not a finite number ({price})"
    if price <= 0:
        return f"returned a price that is not positive ({price})"
    try:
        check_money(price, what="price")
    except MoneyRangeError as exc:  # e.g. 1e30 or twelve digits: the store could not keep it
        return f"returned a price pricemon cannot keep ({exc})"
    if result.currency is not None and result.currency != product.currency:
        return f"returned a price in {result.currency}, the product is priced in {product.currency}"
    return None


class PricingEngine:
    """Prices products: resolves each product's assignment, filters its offers, runs its chain."""

    def __init__(self, pricing: PricingSettings, manager: StrategyManager) -> None:
        self.pricing = pricing
        self.manager = manager
        self._resolved: dict[str, ResolvedAssignment] = {}
        self._workers: StrategyWorkers | None = None
        self.validate()

    def validate(self) -> None:
        """Check every configured assignment now, so a typo fails before any product is priced."""
        self.resolve("pricing.default", self.pricing.default)
        for tag in self.pricing.tags:
            self.resolve(*effective_assignment(self.pricing, "\0", [tag]))
        for sku in self.pricing.skus:
            self.resolve(*effective_assignment(self.pricing, sku, []))

    def resolve(self, where: str, assignment: Assignment) -> ResolvedAssignment:
        cached = self._resolved.get(where)
        if cached is not None:
            return cached
        for name in assignment.options:
            if name not in self.manager.sources:
                self.manager.load(name)  # raises ConfigError naming what is known
        chain = []
        for name in assignment.strategies:
            source = self.manager.load(name)
            options = self.manager.resolve_options(name, assignment.options.get(name, {}), where)
            chain.append((name, source.strategy, source.error, options))
        resolved = ResolvedAssignment(assignment, where, chain)
        self._resolved[where] = resolved
        return resolved

    def assignment_for(self, sku: str, tags: Sequence[str]) -> ResolvedAssignment:
        return self.resolve(*effective_assignment(self.pricing, sku, tags))

    def price(
        self,
        product_id: int,
        product: Product,
        raw_offers: Sequence[RawOffer],
        now: datetime,
        history: Callable[[datetime | None], Sequence[HistoryPoint]],
        mark: Callable[[str], None] = lambda _label: None,
        resolved: ResolvedAssignment | None = None,
        demand: DemandEstimate | None = None,
    ) -> Outcome:
        resolved = resolved or self.assignment_for(product.sku, product.tags)
        assignment = resolved.assignment
        offers, all_offers = filter_offers(raw_offers, product, assignment, self.pricing.rates, now)
        def limits() -> tuple[Decimal | None, Decimal | None]:
            allowed = Limits.of(guardrail_bounds(product, assignment))
            return allowed.low, allowed.high

        context = PricingContext(product, offers, now, all_offers, history, demand, limits)
        details = market_details(product, offers, all_offers)
        declined: list[str] = []
        for name, strategy, load_error, options in resolved.chain:
            if strategy is None:
                return Outcome(product.sku, product_id, "failed", name, error=f"strategy {name} {load_error}")
            mark(name)
            try:
                result = strategy.suggest(context, options)
            except Exception as exc:  # a plugin's bug must not stop the run
                return Outcome(
                    product.sku, product_id, "failed", name, error=f"strategy {name} raised {type(exc).__name__}: {exc}"
                )
            problem = check_result(result, product)
            if problem is not None:
                return Outcome(product.sku, product_id, "failed", name, error=f"strategy {name} {problem}")
            if isinstance(result, NoChange):
                declined.append(f"{name}: {result.reason}")
                continue
            assert isinstance(result, Suggestion)
            guarded = apply_guardrails(result.price, product, assignment)
            reason = "; ".join([result.reason, *guarded.steps])
            details = {
                **details,
                "rank_after": rank_of(guarded.price, offers),
                "guardrails": list(guarded.checks),
                "strategy_price": format_amount(result.price),
                "assignment": resolved.where,
            }
            if guarded.held is not None:  # no price satisfies every guardrail: ours stays
                return Outcome(
                    product.sku, product_id, "held", name, reason=f"{reason}; {guarded.held}", details=details
                )
            kind = "unchanged" if guarded.price == product.price else "suggested"
            if kind == "suggested" and demand is not None:
                # What the move is expected to do to sales and profit, when the model can say.
                impact = profit_impact(demand, product.price, guarded.price, product.cost, market_median(offers))
                if impact is not None:
                    details["expected"] = impact
            # The second line of defence: a suggestion that breaks an invariant is never stored,
            # let alone auto-approved, whatever went wrong in the chain.
            breaches = []
            if kind == "suggested":
                breaches = invariant_breaches(guarded.price, result.price, product, assignment)
            if breaches:
                return Outcome(
                    product.sku,
                    product_id,
                    "refused",
                    name,
                    guarded.price,
                    reason,
                    details,
                    error=f"refused {format_amount(guarded.price)} ({reason}): {'; '.join(breaches)}",
                )
            return Outcome(
                product.sku,
                product_id,
                kind,
                name,
                guarded.price,
                reason,
                details,
                auto_approve=assignment.auto_approve,
            )
        return Outcome(product.sku, product_id, "no_change", reason="; ".join(declined), details=details)

    def price_many(
        self,
        items: Sequence[PricingItem],
        now: datetime,
    ) -> list[Outcome]:
        """Price a batch in strategy worker processes (monitor.pricing.isolation): a plugin that
        crashes or overruns `pricing.timeout` fails its product only. Call close() when done."""
        return self._pool().price_many(items, now)

    def submit(self, items: Sequence[PricingItem], now: datetime) -> PendingBatch:
        """Like price_many, but return at once: the workers price `items` while the caller goes
        on (reading the next batch); collect() returns their outcomes."""
        return self._pool().submit(items, now)

    def collect(self, pending: PendingBatch) -> list[Outcome]:
        return self._pool().collect(pending)

    def start_workers(self) -> None:
        """Start the worker processes now, in the background (price_many waits for them)."""
        self._pool().start()

    def _pool(self) -> StrategyWorkers:
        if self._workers is None:
            from monitor.pricing.isolation import StrategyWorkers, worker_count

            self._workers = StrategyWorkers(self.pricing, self.manager, worker_count(self.pricing.workers))
        return self._workers

    def close(self) -> None:
        """Stop the worker processes, if any were started."""
        if self._workers is not None:
            self._workers.close()
            self._workers = None

    def __enter__(self) -> PricingEngine:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def check_strategy_name(manager: StrategyManager, name: str) -> None:
    if name not in manager.sources:
        raise ConfigError(f"unknown strategy {name!r} (known: {', '.join(manager.names())})")
