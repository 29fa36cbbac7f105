"""The guardrail chain as a table (every guardrail x every rounding mode x every rounding direction,
for raises, cuts and no change) and as a property: whatever the prices and the configuration, the
final price is within every configured bound and moves the way the strategy's bounded price does,
or the product keeps its price because no price fits."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.pricing import Product
from monitor.pricing.guardrails import apply_guardrails
from monitor.pricing.invariants import invariant_breaches
from monitor.settings import GUARDRAILS, Assignment

HELD = "held"
LADDER = ("24.99", "27.49", "29.99", "39.99", "44.99", "49.99", "54.99", "59.99")
MODES = (".99", ".95", "whole", "ladder", "none")
DIRECTIONS = ("down", "up", "nearest")

# name: (product fields, assignment fields, strategy price, {mode: (down, up, nearest)})
# Our price is 50.00 unless the product says otherwise; a single value stands for all three directions.
TABLE: dict[str, tuple[dict[str, str], dict[str, Any], str, dict[str, Any]]] = {
    "margin floor lifts a cut": (
        {"cost": "40.00"}, {"min_margin": 10}, "42.00",
        {".99": "44.99", ".95": "44.95", "whole": "44", "ladder": "44.99", "none": "44.00"},
    ),
    "MAP lifts a cut": (
        {"map_price": "45.50"}, {}, "42.00",
        {".99": "45.99", ".95": "45.95", "whole": "46", "ladder": "49.99", "none": "45.50"},
    ),
    "min lifts a cut": (
        {"min_price": "46.20"}, {}, "30.00",
        {".99": "46.99", ".95": "46.95", "whole": "47", "ladder": "49.99", "none": "46.20"},
    ),
    "max caps a raise": (
        {"max_price": "57.30"}, {}, "70.00",
        {".99": "56.99", ".95": "56.95", "whole": "57", "ladder": "54.99", "none": "57.30"},
    ),
    "max change limits a cut": (  # 42.50..57.50
        {}, {"max_change": 15}, "40.00",
        {".99": "42.99", ".95": "42.95", "whole": "43", "ladder": "44.99", "none": "42.50"},
    ),
    "max change limits a raise": (
        {}, {"max_change": 15}, "70.00",
        {".99": "56.99", ".95": "56.95", "whole": "57", "ladder": "54.99", "none": "57.50"},
    ),
    "a free raise": (
        {}, {}, "52.40",
        {".99": ("51.99", "52.99", "51.99"), ".95": ("51.95", "52.95", "51.95"), "whole": ("52", "53", "52"),
         "ladder": "54.99", "none": "52.40"},  # ladder down would be 49.99, a cut
    ),
    "a free cut": (
        {}, {}, "47.60",
        {".99": ("46.99", "47.99", "47.99"), ".95": ("46.95", "47.95", "47.95"), "whole": ("47", "48", "48"),
         "ladder": ("44.99", "49.99", "49.99"), "none": "47.60"},
    ),
    "a raise that rounding down would make a cut": (
        {"price": "27.50"}, {}, "27.90",
        {".99": "27.99", ".95": "27.95", "whole": "28", "ladder": "29.99", "none": "27.90"},
    ),
    "a cut that rounding up would make a raise": (
        {"price": "29.50"}, {}, "29.20",
        {".99": "28.99", ".95": "28.95", "whole": "29", "ladder": "27.49", "none": "29.20"},
    ),
    "no change stays no change": (
        {"price": "27.50"}, {}, "27.50",
        dict.fromkeys(MODES, "27.50"),
    ),
    "a floor turns a cut into a raise": (  # our price is under the cost: the floor decides
        {"price": "10.00", "cost": "12.00"}, {}, "9.00",
        {".99": "12.99", ".95": "12.95", "whole": "12", "ladder": "24.99", "none": "12.00"},
    ),
    "no price point fits the allowed raise": (  # 27.23..27.77
        {"price": "27.50"}, {"max_change": 1}, "27.90",
        {".99": HELD, ".95": HELD, "whole": HELD, "ladder": HELD, "none": "27.77"},
    ),
    "bounds that exclude each other": (
        {"price": "48.00", "cost": "45.00", "max_price": "40.00"}, {}, "30.00",
        dict.fromkeys(MODES, HELD),
    ),
}  # fmt: skip

CASES = [
    pytest.param(name, mode, direction, id=f"{name}-{mode}-{direction}")
    for name in TABLE
    for mode in MODES
    for direction in DIRECTIONS
]


def product(fields: dict[str, str]) -> Product:
    values = {k: Decimal(v) for k, v in fields.items()}
    return Product(sku="A-1", name="Kettle", price=values.pop("price", Decimal("50.00")), currency="EUR", **values)


@pytest.mark.parametrize(("name", "mode", "direction"), CASES)
def test_the_guardrail_table(name: str, mode: str, direction: str) -> None:
    fields, options, asked, expected_by_mode = TABLE[name]
    expected = expected_by_mode[mode]
    if isinstance(expected, tuple):
        expected = expected[DIRECTIONS.index(direction)]
    item = product(fields)
    assignment = Assignment(rounding=mode, rounding_direction=direction, ladder=LADDER, **options)
    result = apply_guardrails(Decimal(asked), item, assignment)
    if expected == HELD:
        assert result.held is not None and result.price == item.price
        assert result.held.endswith(f"the price stays {item.price}")
        return
    assert result.held is None
    assert result.price == Decimal(expected)
    assert invariant_breaches(result.price, Decimal(asked), item, assignment) == []


def test_the_table_covers_every_guardrail_and_both_moves() -> None:
    used = set()
    for fields, options, _, _ in TABLE.values():
        used |= {"margin_floor"} if "cost" in fields else set()
        used |= {"map_floor"} if "map_price" in fields else set()
        used |= {"min_max"} if {"min_price", "max_price"} & set(fields) else set()
        used |= {"max_change"} if "max_change" in options else set()
    assert used | {"round"} == set(GUARDRAILS)


# --- the property ---------------------------------------------------------------------------------

CENTS = Decimal("0.01")
money = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("3000"), places=2, allow_nan=False,
                    allow_infinity=False)


@st.composite
def cases(draw: st.DrawFn) -> tuple[Product, Assignment, Decimal]:
    current = draw(money)
    near = st.decimals(min_value=max(Decimal("0.01"), current / 2), max_value=current * 2, places=2)

    def maybe(values: st.SearchStrategy[Decimal]) -> Decimal | None:
        return draw(st.none() | values)

    item = Product(
        sku="P", name="P", price=current, currency="EUR",
        cost=maybe(near), map_price=maybe(near), min_price=maybe(near), max_price=maybe(near),
    )
    order = draw(st.permutations(GUARDRAILS))
    guardrails = order[: draw(st.integers(min_value=0, max_value=len(order)))]
    assignment = Assignment(
        guardrails=guardrails,
        min_margin=draw(st.sampled_from([0, 0.5, 2.5, 10, 35])),
        max_change=draw(st.none() | st.sampled_from([0.5, 1, 5, 15, 50, 150])),
        rounding=draw(st.sampled_from(MODES)),
        rounding_direction=draw(st.sampled_from(DIRECTIONS)),
        ladder=tuple(str(p) for p in draw(st.lists(near, max_size=6, unique=True))),
    )
    asked = draw(near | money | st.just(current))
    return item, assignment, asked


def bounds(item: Product, a: Assignment) -> tuple[list[Decimal], list[Decimal]]:
    """Every configured floor and ceiling, from their definitions in docs/strategies.md."""
    floors, ceilings = [], []
    if "margin_floor" in a.guardrails and item.cost is not None:
        floors.append((item.cost * (1 + Decimal(str(a.min_margin)) / 100)).quantize(CENTS, ROUND_CEILING))
    if "map_floor" in a.guardrails and item.map_price is not None:
        floors.append(item.map_price)
    if "min_max" in a.guardrails:
        floors += [item.min_price] if item.min_price is not None else []
        ceilings += [item.max_price] if item.max_price is not None else []
    if "max_change" in a.guardrails and a.max_change is not None:
        limit = (item.price * Decimal(str(a.max_change)) / 100).quantize(CENTS, ROUND_FLOOR)
        floors.append(item.price - limit)
        ceilings.append(item.price + limit)
    return floors, ceilings


def is_point(price: Decimal, a: Assignment) -> bool:
    if a.rounding == ".99":
        return price % 1 == Decimal("0.99")
    if a.rounding == ".95":
        return price % 1 == Decimal("0.95")
    if a.rounding == "whole":
        return price % 1 == 0
    return price in {Decimal(p) for p in a.ladder}


def sign(value: Decimal) -> int:
    return (value > 0) - (value < 0)


def clamp(price: Decimal, low: Decimal | None, high: Decimal | None) -> Decimal:
    price = price if low is None else max(price, low)
    return price if high is None else min(price, high)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_the_final_price_is_within_every_bound_or_there_is_no_suggestion(case) -> None:
    item, a, asked = case
    result = apply_guardrails(asked, item, a)
    floors, ceilings = bounds(item, a)
    low, high = max(floors, default=None), min(ceilings, default=None)
    rounds = "round" in a.guardrails and a.rounding != "none"
    if result.held is not None:
        assert result.price == item.price
        if low is not None and high is not None and low > high:
            return  # no price satisfies every bound
        # held by rounding: there really is no price point that way within the bounds
        assert rounds
        target = clamp(asked, low, high)
        way = sign(target - item.price)
        assert way != 0
        lo = Decimal("0.01") if low is None else max(low, Decimal("0.01"))
        hi = high if high is not None else max(target, item.price) + 2
        if a.rounding == "ladder":
            points = [Decimal(p) for p in a.ladder]
        else:
            step = Decimal(1)
            offset = {".99": Decimal("0.99"), ".95": Decimal("0.95"), "whole": Decimal(0)}[a.rounding]
            start = lo.to_integral_value(ROUND_FLOOR) - 1
            points = [start + step * i + offset for i in range(int(hi - start) + 2)]
        assert not [p for p in points if lo <= p <= hi and sign(p - item.price) == way and p > 0]
        return
    final = result.price
    assert all(final >= f for f in floors) and all(final <= c for c in ceilings)
    target = clamp(asked, low, high)
    assert sign(final - item.price) == sign(target - item.price)
    if rounds and final != item.price:
        ladder_top = max((Decimal(p) for p in a.ladder), default=None)
        uncovered = a.rounding == "ladder" and (ladder_top is None or final > ladder_top)
        assert is_point(final, a) or uncovered
    assert invariant_breaches(final, asked, item, a) == []
