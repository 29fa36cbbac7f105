"""Guardrails after a strategy: floors, limits, rounding, in the configured order, each step in the reason."""

from __future__ import annotations

from decimal import Decimal

import pytest

from monitor.pricing import Product
from monitor.pricing.guardrails import apply_guardrails, round_price
from monitor.settings import Assignment


def product(**fields: str) -> Product:
    values = {k: Decimal(v) for k, v in fields.items()}
    return Product(sku="A-1", name="Kettle", price=values.pop("price", Decimal("25.00")), currency="EUR", **values)


def guard(price: str, item: Product, **assignment: object):
    return apply_guardrails(Decimal(price), item, Assignment(**assignment))


def test_the_documented_example_reason() -> None:
    # undercut 1% of 19.99 -> 19.79, then a 2.5% margin over cost 20.00 -> 20.50, then .99
    result = guard("19.79", product(cost="20.00"), min_margin=2.5)
    assert result.price == Decimal("20.99")
    assert result.steps == ("margin floor 2.5% 20.50 -> 20.50", "round .99 -> 20.99")


def test_below_cost_is_lifted_to_the_cost_floor() -> None:
    result = guard("9.00", product(cost="12.00"), rounding="none")
    assert (result.price, result.steps) == (Decimal("12.00"), ("cost floor 12.00 -> 12.00",))


def test_map_floor() -> None:
    result = guard("15.00", product(map_price="18.50"), rounding="none")
    assert (result.price, result.steps) == (Decimal("18.50"), ("MAP floor 18.50 -> 18.50",))
    # above MAP nothing moves
    assert guard("19.00", product(map_price="18.50"), rounding="none").steps == ()


def test_min_and_max() -> None:
    assert guard("5.00", product(min_price="10.00"), rounding="none").price == Decimal("10.00")
    high = guard("99.00", product(max_price="40.00"), rounding="none")
    assert (high.price, high.steps) == (Decimal("40.00"), ("max 40.00 -> 40.00",))


def test_a_ceiling_under_the_cost_holds_the_price() -> None:
    # no price is both >= cost 45 and <= max 40: neither bound is broken, the product keeps its price
    result = guard("50.00", product(price="48.00", cost="45.00", max_price="40.00"), rounding="none")
    assert result.price == Decimal("48.00")
    assert result.held == (
        "no price satisfies every guardrail: cost floor 45.00 is above max 40.00; the price stays 48.00"
    )


def test_max_change_per_suggestion() -> None:
    down = guard("10.00", product(price="20.00"), max_change=10, rounding="none")
    assert (down.price, down.steps) == (Decimal("18.00"), ("max change 10% -> 18.00",))
    up = guard("30.00", product(price="20.00"), max_change=10, rounding="none")
    assert up.price == Decimal("22.00")


def test_order_is_the_configured_one() -> None:
    item = product(price="100.00", cost="60.00")
    # max change first limits the drop to 90, which already clears the cost floor
    floor_last = guard("40.00", item, guardrails=["max_change", "margin_floor"], max_change=10, rounding="none")
    assert (floor_last.price, floor_last.steps) == (Decimal("90.00"), ("max change 10% -> 90.00",))
    # the cost floor first lifts 40 to 60, which a 50% limit then allows
    floor_first = guard("40.00", item, guardrails=["margin_floor", "max_change"], max_change=50, rounding="none")
    assert floor_first.price == Decimal("60.00")
    assert floor_first.steps == ("cost floor 60.00 -> 60.00",)


@pytest.mark.parametrize(
    ("price", "rounding", "direction", "expected"),
    [
        ("19.79", ".99", "down", "18.99"),
        ("19.79", ".99", "up", "19.99"),
        ("19.79", ".99", "nearest", "19.99"),
        ("19.99", ".99", "down", "19.99"),
        ("19.79", ".95", "down", "18.95"),
        ("19.40", "whole", "nearest", "19"),
        ("19.40", "whole", "up", "20"),
        ("0.50", ".99", "down", "0.99"),  # nothing positive below: rounds up
        ("13.20", "ladder", "down", "9.99"),
        ("13.20", "ladder", "up", "14.99"),
        ("13.20", "ladder", "nearest", "14.99"),
        ("99.00", "ladder", "up", "99.00"),  # above the ladder: left alone
    ],
)
def test_rounding(price: str, rounding: str, direction: str, expected: str) -> None:
    ladder = (Decimal("9.99"), Decimal("14.99"), Decimal("19.99"))
    assert round_price(Decimal(price), rounding, direction, ladder)[0] == Decimal(expected)


def test_rounding_down_never_crosses_a_floor() -> None:
    result = guard("20.30", product(cost="20.10"))  # default .99 down would give 19.99 < cost
    assert result.price == Decimal("20.99")


def test_the_default_chain_has_cost_floor_and_99_rounding() -> None:
    default = Assignment()
    assert default.strategies == ("match_lowest",)
    assert default.guardrails[0] == "margin_floor" and default.rounding == ".99"
    assert guard("18.40", product(cost="10.00")).price == Decimal("17.99")
