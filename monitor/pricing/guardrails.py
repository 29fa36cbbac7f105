"""Guardrails applied after a strategy: floors and limits in the configured order, then rounding.

The guardrails are final: the price they return satisfies every configured bound (margin floor,
MAP, min/max, max_change), and rounding never turns the move into its opposite (a raise is never
rounded into a cut, a cut never into a raise, and no change stays no change). When no price
satisfies them all, the result is `held`: the product keeps its price and `held` says why.

Each step that moves the price is written into the reason (`margin floor 2.5% 20.50 -> 20.50`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from functools import lru_cache
from typing import NamedTuple

from monitor.pricing import Product, format_price
from monitor.settings import Assignment

CENTS = Decimal("0.01")


class Bound(NamedTuple):
    """What one guardrail allows: `low <= price <= high` (None: no limit that side)."""

    label: str  # as the reason names it: "margin floor 2.5%", "MAP floor", "min", "max", "max change 15%"
    low: Decimal | None = None
    high: Decimal | None = None


@dataclass(frozen=True)
class Guarded:
    price: Decimal  # the product's own price when `held`
    steps: tuple[str, ...]  # the steps that moved the price, for the reason
    checks: tuple[str, ...]  # the name of every step evaluated, for the details
    held: str | None = None  # why no price satisfies every guardrail; the product keeps its price


@lru_cache(maxsize=64)
def _percent(value: float) -> tuple[Decimal, str]:
    """A configured percentage as a Decimal and as the reason writes it (`2.5`): once per value."""
    share = Decimal(str(value))
    return share, f"{share.normalize():f}"


def margin_floor(product: Product, assignment: Assignment) -> Bound | None:
    if product.cost is None:
        return None
    margin, shown = _percent(assignment.min_margin)
    value = (product.cost * (1 + margin / 100)).quantize(CENTS, rounding=ROUND_CEILING)
    return Bound(f"margin floor {shown}%" if margin else "cost floor", value)


def change_limit(product: Product, assignment: Assignment) -> Bound | None:
    if assignment.max_change is None:
        return None
    share, shown = _percent(assignment.max_change)
    limit = (product.price * share / 100).quantize(CENTS, rounding=ROUND_FLOOR)
    return Bound(f"max change {shown}%", product.price - limit, product.price + limit)


def guardrail_bounds(product: Product, assignment: Assignment) -> list[Bound]:
    """The bounds the configured guardrails set on this product, in the configured order."""
    bounds: list[Bound] = []
    for name in assignment.guardrails:
        if name == "margin_floor":
            floor = margin_floor(product, assignment)
            if floor is not None:
                bounds.append(floor)
        elif name == "map_floor" and product.map_price is not None:
            bounds.append(Bound("MAP floor", product.map_price))
        elif name == "min_max":
            if product.min_price is not None:
                bounds.append(Bound("min", product.min_price))
            if product.max_price is not None:
                bounds.append(Bound("max", None, product.max_price))
        elif name == "max_change":
            limit = change_limit(product, assignment)
            if limit is not None:
                bounds.append(limit)
    return bounds


def _candidates(price: Decimal, rounding: str, ladder: tuple[Decimal, ...]) -> tuple[Decimal | None, Decimal | None]:
    """The nearest price points at or below and at or above `price` (None: there is none)."""
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


@dataclass(frozen=True)
class Limits:
    """The overlap of every bound: the highest floor and the lowest ceiling, with their labels."""

    low: Decimal | None = None
    low_label: str = ""
    high: Decimal | None = None
    high_label: str = ""

    @classmethod
    def of(cls, bounds: list[Bound]) -> Limits:
        low: Decimal | None = None
        high: Decimal | None = None
        low_label = high_label = ""
        for label, floor, ceiling in bounds:
            if floor is not None and (low is None or floor > low):
                low, low_label = floor, label
            if ceiling is not None and (high is None or ceiling < high):
                high, high_label = ceiling, label
        return cls(low, low_label, high, high_label)

    def why_not(self, point: Decimal) -> tuple[str, str] | None:
        """(why `point` is outside, the bound's label), or None when it is inside."""
        if self.low is not None and point < self.low:
            return f"{format_price(point)} is below {self.low_label} {format_price(self.low)}", self.low_label
        if self.high is not None and point > self.high:
            return f"{format_price(point)} is above {self.high_label} {format_price(self.high)}", self.high_label
        return None


def round_price(
    price: Decimal,
    rounding: str,
    direction: str,
    ladder: tuple[Decimal, ...] = (),
    *,
    limits: Limits = Limits(),
    current: Decimal | None = None,
) -> tuple[Decimal | None, str, str]:
    """The price point for `price`: the `direction` first, the other way if that one is not allowed.

    Allowed means within `limits` and, when `current` is given, on the same side of it as `price`
    (a raise stays a raise, a cut a cut, `price == current` stays as it is). Returns (point, note,
    label): point is None when no point is allowed; note says why the preferred point was not
    taken and label names the bound it broke ("" for the direction). A price above the highest
    ladder point is left as it is: the ladder does not cover it.
    """
    if rounding == "none" or (current is not None and price == current):
        return price, "", ""
    down, up = _candidates(price, rounding, ladder)
    if rounding == "ladder" and up is None:
        return price, "", ""

    def why_not(point: Decimal) -> tuple[str, str] | None:
        if current is not None and price > current >= point:
            return f"{format_price(point)} would not be a raise", ""
        if current is not None and price < current <= point:
            return f"{format_price(point)} would not be a cut", ""
        return limits.why_not(point)

    order: list[Decimal | None]
    if direction == "up":
        order = [up, down]
    elif direction == "down":
        order = [down, up]
    else:
        present = [c for c in (down, up) if c is not None]
        present.sort(key=lambda c: (abs(c - price), -c))  # the closer; on a tie, the higher
        order = [*present]
    refused: tuple[str, str] | None = None
    for point in order:
        if point is None:
            continue
        why = why_not(point)
        if why is None:
            return (point, *(refused or ("", "")))
        refused = refused or why
    return (None, *(refused or ("", "")))


def _moved(bound: Bound, value: Decimal) -> str:
    # "cost floor 20.00 -> 20.00", "max 40.00 -> 40.00", "max change 15% -> 22.95"
    if bound.low is not None and bound.high is not None:
        return f"{bound.label} -> {format_price(value)}"
    return f"{bound.label} {format_price(value)} -> {format_price(value)}"


def apply_guardrails(price: Decimal, product: Product, assignment: Assignment) -> Guarded:
    """Run the assignment's guardrails over a strategy's price: bounds in the configured order, then rounding."""
    current = product.price
    bounds = guardrail_bounds(product, assignment)
    rounding = f"round {assignment.rounding}" if assignment.rounding != "none" else None
    checks = ["max change" if b.label.startswith("max change") else b.label for b in bounds]
    if rounding and "round" in assignment.guardrails:
        checks.append(rounding)
    limits = Limits.of(bounds)
    if limits.low is not None and limits.high is not None and limits.low > limits.high:
        return Guarded(
            current,
            (),
            tuple(checks),
            held=(
                f"no price satisfies every guardrail: {limits.low_label} {format_price(limits.low)} is above "
                f"{limits.high_label} {format_price(limits.high)}; the price stays {format_price(current)}"
            ),
        )

    # Clamped one guardrail at a time, each into its own bounds: as all of them overlap, the
    # price ends inside every one whatever the order (a later step never undoes an earlier one),
    # and each move is named in the reason in the configured order. Rounding comes last, wherever
    # it is listed: it picks a point inside all of them, which no other step could then move.
    steps: list[str] = []
    moved_by: set[str] = set()
    for bound in bounds:
        if bound.low is not None and price < bound.low:
            price = bound.low
        elif bound.high is not None and price > bound.high:
            price = bound.high
        else:
            continue
        steps.append(_moved(bound, price))
        moved_by.add(bound.label)
    if rounding and "round" in assignment.guardrails:
        ladder = tuple(Decimal(p) for p in assignment.ladder)
        rounded, note, by = round_price(
            price, assignment.rounding, assignment.rounding_direction, ladder, limits=limits, current=current
        )
        if rounded is None:
            way = "raise" if price > current else "cut"
            return Guarded(
                current,
                tuple(steps),
                tuple(checks),
                held=(
                    f"{rounding}: no price point for this {way} {_allowed(limits, current, way)}"
                    f"; the price stays {format_price(current)}"
                ),
            )
        if rounded != price:
            price = rounded
            # Why it went the other way, unless the step that set the bound already says so.
            shown = note and by not in moved_by
            steps.append(f"{rounding} -> {format_price(price)}" + (f" ({note})" if shown else ""))
    return Guarded(price, tuple(steps), tuple(checks))


def _allowed(limits: Limits, current: Decimal, way: str) -> str:
    """`above 27.50, up to 27.77 (max change 1%)`: where an allowed price point had to be."""
    low = f"{format_price(limits.low)} ({limits.low_label})" if limits.low is not None else None
    high = f"{format_price(limits.high)} ({limits.high_label})" if limits.high is not None else None
    if way == "raise":
        above = limits.low is not None and limits.low > current
        return (f"from {low}" if above else f"above {format_price(current)}") + (f", up to {high}" if high else "")
    below = limits.high is not None and limits.high < current
    return (f"from {low}, " if low else "") + (f"up to {high}" if below else f"below {format_price(current)}")
