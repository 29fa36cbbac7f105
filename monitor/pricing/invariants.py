"""The invariants a suggested price must satisfy after the whole chain (strategy, guardrails, rounding).

The guardrails are built to satisfy them; this module checks them again on its own, from the
product and the assignment alone, as a second line of defence: the engine refuses any suggestion
that breaks one, so it is never stored, auto-approved or applied.

1. Every configured bound holds: margin floor (cost plus `min_margin` %, up to the cent), MAP,
   min/max price, and `max_change` % of our current price.
2. The move keeps its direction: the final price moves from our price the same way as the
   strategy's price held within those bounds (a raise is never turned into a cut, a cut never
   into a raise, and no change stays no change).
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from monitor.pricing import Product, format_price
from monitor.settings import Assignment

CENTS = Decimal("0.01")


def invariant_breaches(final: Decimal, asked: Decimal, product: Product, assignment: Assignment) -> list[str]:
    """What `final` breaks, given the strategy's price `asked`; empty when it breaks nothing."""
    current = product.price
    configured = set(assignment.guardrails)
    floors: list[tuple[Decimal, str]] = []
    ceilings: list[tuple[Decimal, str]] = []
    if "margin_floor" in configured and product.cost is not None:
        margin = Decimal(str(assignment.min_margin))
        floor = (product.cost * (1 + margin / 100)).quantize(CENTS, rounding=ROUND_CEILING)
        floors.append((floor, f"margin floor {format_price(floor)}"))
    if "map_floor" in configured and product.map_price is not None:
        floors.append((product.map_price, f"MAP {format_price(product.map_price)}"))
    if "min_max" in configured:
        if product.min_price is not None:
            floors.append((product.min_price, f"min price {format_price(product.min_price)}"))
        if product.max_price is not None:
            ceilings.append((product.max_price, f"max price {format_price(product.max_price)}"))
    if "max_change" in configured and assignment.max_change is not None:
        share = Decimal(str(assignment.max_change))
        limit = (current * share / 100).quantize(CENTS, rounding=ROUND_FLOOR)
        label = f"max change {share.normalize():f}% of {format_price(current)}"
        floors.append((current - limit, label))
        ceilings.append((current + limit, label))

    breaches = [f"below {label}" for value, label in floors if final < value]
    breaches += [f"above {label}" for value, label in ceilings if final > value]
    low = max((value for value, _ in floors), default=None)
    high = min((value for value, _ in ceilings), default=None)
    if not breaches and (low is None or high is None or low <= high):
        target = asked if low is None else max(asked, low)
        target = target if high is None else min(target, high)
        wanted, got = _direction(target, current), _direction(final, current)
        if wanted != got:
            breaches.append(f"a {got} where the strategy's price within the bounds ({format_price(target)}) "
                            f"is {'no change' if wanted == 'no change' else 'a ' + wanted}")
    return breaches


def _direction(price: Decimal, current: Decimal) -> str:
    return "raise" if price > current else "cut" if price < current else "no change"
