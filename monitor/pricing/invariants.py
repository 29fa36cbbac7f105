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
    """What `final` breaks, given the strategy's price `asked`; empty when it breaks nothing.

    Runs for every suggestion, so the messages are only written for what is broken.
    """
    current = product.price
    configured = assignment.guardrails
    floors: list[tuple[Decimal, str]] = []  # (value, what)
    ceilings: list[tuple[Decimal, str]] = []
    if "margin_floor" in configured and product.cost is not None:
        margin = Decimal(str(assignment.min_margin))
        floors.append(((product.cost * (1 + margin / 100)).quantize(CENTS, rounding=ROUND_CEILING), "margin floor"))
    if "map_floor" in configured and product.map_price is not None:
        floors.append((product.map_price, "MAP"))
    if "min_max" in configured:
        if product.min_price is not None:
            floors.append((product.min_price, "min price"))
        if product.max_price is not None:
            ceilings.append((product.max_price, "max price"))
    if "max_change" in configured and assignment.max_change is not None:
        limit = (current * Decimal(str(assignment.max_change)) / 100).quantize(CENTS, rounding=ROUND_FLOOR)
        floors.append((current - limit, "max change"))
        ceilings.append((current + limit, "max change"))

    breaches = [f"below {_name(what, value, assignment, current)}" for value, what in floors if final < value]
    breaches += [f"above {_name(what, value, assignment, current)}" for value, what in ceilings if final > value]
    if breaches:
        return breaches
    low = max(floors)[0] if floors else None
    high = min(ceilings)[0] if ceilings else None
    target = asked if low is None else max(asked, low)
    target = target if high is None else min(target, high)
    wanted, got = _direction(target, current), _direction(final, current)
    if wanted != got:
        breaches.append(
            f"a {got} where the strategy's price within the bounds ({format_price(target)}) "
            f"is {'no change' if wanted == 'no change' else 'a ' + wanted}"
        )
    return breaches


def _name(what: str, value: Decimal, assignment: Assignment, current: Decimal) -> str:
    if what == "max change":
        return f"max change {Decimal(str(assignment.max_change)).normalize():f}% of {format_price(current)}"
    return f"{what} {format_price(value)}"


def _direction(price: Decimal, current: Decimal) -> str:
    return "raise" if price > current else "cut" if price < current else "no change"
