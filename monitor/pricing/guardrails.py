"""Guardrails applied after a strategy, in the configured order: floors, limits, rounding.

Each step that moves the price is written into the reason (`margin floor 20.50 -> 20.50`); a
floor set by an earlier step is never undercut by a later ceiling or by rounding down.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from monitor.pricing import Product, format_price
from monitor.settings import Assignment

CENTS = Decimal("0.01")


@dataclass(frozen=True)
class Guarded:
    price: Decimal
    steps: tuple[str, ...]  # the steps that moved the price, for the reason
    checks: tuple[str, ...]  # the name of every step evaluated, for the details


def _candidates(price: Decimal, rounding: str, ladder: tuple[Decimal, ...]) -> tuple[Decimal | None, Decimal | None]:
    """The nearest rounded prices at or below and at or above `price`."""
    if rounding in (".99", ".95"):
        ending = Decimal(rounding.replace(".", "0."))
        down = (price - ending).to_integral_value(rounding=ROUND_FLOOR) + ending
        up = down if down == price else down + 1
        return (down if down > 0 else None), up
    if rounding == "whole":
        down = price.to_integral_value(rounding=ROUND_FLOOR)
        return (down if down > 0 else None), price.to_integral_value(rounding=ROUND_CEILING)
    if rounding == "ladder":
        below = [p for p in ladder if p <= price]
        above = [p for p in ladder if p >= price]
        return (max(below) if below else None), (min(above) if above else None)
    return price, price


def round_price(
    price: Decimal, rounding: str, direction: str, ladder: tuple[Decimal, ...] = (), floor: Decimal | None = None
) -> Decimal:
    """Round `price` to a price point; rounding down never crosses `floor` (it rounds up instead)."""
    if rounding == "none":
        return price
    down, up = _candidates(price, rounding, ladder)
    if direction == "up":
        chosen = up
    elif direction == "down":
        chosen = down
    else:
        options = [c for c in (down, up) if c is not None]
        chosen = min(options, key=lambda c: (abs(c - price), -c)) if options else None
    if chosen is None or (floor is not None and chosen < floor):
        chosen = up if up is not None and (floor is None or up >= floor) else None
    return price if chosen is None else chosen


def apply_guardrails(price: Decimal, product: Product, assignment: Assignment) -> Guarded:
    """Run the assignment's guardrails over a strategy's price, in their configured order."""
    floor: Decimal | None = None
    steps: list[str] = []
    checks: list[str] = []

    for name in assignment.guardrails:
        # Floors: (value, label) of this step, if it applies to the product.
        floors: list[tuple[Decimal, str]] = []
        if name == "margin_floor" and product.cost is not None:
            margin = Decimal(str(assignment.min_margin))
            value = (product.cost * (1 + margin / 100)).quantize(CENTS, rounding=ROUND_CEILING)
            floors.append((value, f"margin floor {margin.normalize():f}%" if margin else "cost floor"))
        elif name == "map_floor" and product.map_price is not None:
            floors.append((product.map_price, "MAP floor"))
        elif name == "min_max" and product.min_price is not None:
            floors.append((product.min_price, "min"))
        for value, label in floors:
            floor = value if floor is None else max(floor, value)
            checks.append(label)
            if price < value:
                price = value
                steps.append(f"{label} {format_price(value)} -> {format_price(price)}")
        if name == "min_max":
            if product.max_price is not None:
                # A ceiling never pushes below a floor: selling under cost or MAP is the worse mistake.
                ceiling = product.max_price if floor is None else max(product.max_price, floor)
                checks.append("max")
                if price > ceiling:
                    price = ceiling
                    steps.append(f"max {format_price(product.max_price)} -> {format_price(price)}")
        elif name == "max_change" and assignment.max_change is not None:
            share = Decimal(str(assignment.max_change))
            limit = (product.price * share / 100).quantize(CENTS, rounding=ROUND_FLOOR)
            low, high = product.price - limit, product.price + limit
            if floor is not None:
                low = max(low, floor)
            checks.append("max change")
            clamped = min(max(price, low), max(high, low))
            if clamped != price:
                price = clamped
                steps.append(f"max change {share.normalize():f}% -> {format_price(price)}")
        elif name == "round" and assignment.rounding != "none":
            ladder = tuple(Decimal(p) for p in assignment.ladder)
            rounded = round_price(price, assignment.rounding, assignment.rounding_direction, ladder, floor)
            label = f"round {assignment.rounding}"
            checks.append(label)
            if rounded != price:
                price = rounded
                steps.append(f"{label} -> {format_price(price)}")
    return Guarded(price, tuple(steps), tuple(checks))
