"""Built-in strategies and the shared offer filters, on crafted offer sets, through the real engine
(strategies found through their `pricemon.strategies` entry points)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from monitor.errors import ConfigError
from monitor.pricing import Product
from monitor.pricing.engine import Outcome, PricingEngine
from monitor.pricing.loader import StrategyManager
from monitor.settings import settings_from_mapping
from tests.pricing.conftest import NOW

FRESH = NOW - timedelta(minutes=5)


def offer(competitor: str, price: str, *, currency: str = "EUR", in_stock: bool | None = True,
          age: timedelta = timedelta(minutes=5), suspicious: bool = False) -> tuple[Any, ...]:
    seen = NOW - age
    first_seen = seen - timedelta(hours=1)
    return (competitor, f"http://127.0.0.1:9/{competitor}", Decimal(price), currency, in_stock, first_seen, seen,
            suspicious)


def price(offers: list[tuple[Any, ...]], *, our: str = "50.00", cost: str | None = None, pricing: dict | None = None,
          **product: Any) -> Outcome:
    """Price one product; by default without guardrails so the strategy's own price shows."""
    config = {"default": {"guardrails": [], **(pricing or {})}}
    if "rates" in config["default"]:
        config["rates"] = config["default"].pop("rates")
    settings = settings_from_mapping({"pricing": config})
    engine = PricingEngine(settings.pricing, StrategyManager())
    view = Product(sku="A-1", name="Kettle", price=Decimal(our), currency="EUR",
                   cost=Decimal(cost) if cost else None, **product)
    return engine.price(1, view, offers, NOW, lambda _since: ())


def test_match_lowest_names_every_tied_competitor() -> None:
    out = price([offer("globex", "19.99"), offer("acme", "19.99"), offer("initech", "24.00")])
    assert (out.kind, out.strategy, out.price) == ("suggested", "match_lowest", Decimal("19.99"))
    assert out.reason == "lowest: acme, globex 19.99"
    assert out.details["competitor_min"] == "19.99" and out.details["competitor_max"] == "24.00"
    assert out.details["competitor_median"] == "19.99"
    assert (out.details["rank_before"], out.details["rank_after"]) == (4, 1)


def test_all_out_of_stock_means_no_suggestion() -> None:
    out = price([offer("acme", "10.00", in_stock=False), offer("globex", "11.00", in_stock=False)])
    assert out.kind == "no_change" and out.price is None
    assert "no competitor offer counts" in out.reason
    # ... unless the assignment counts out-of-stock offers too
    assert price([offer("acme", "10.00", in_stock=False)], pricing={"in_stock_only": False}).price == Decimal("10.00")


def test_unknown_stock_counts_as_in_stock() -> None:
    assert price([offer("acme", "12.00", in_stock=None)]).price == Decimal("12.00")


def test_stale_and_suspicious_offers_do_not_count() -> None:
    offers = [offer("acme", "10.00", age=timedelta(days=3)), offer("globex", "11.00", suspicious=True),
              offer("initech", "12.00")]
    assert price(offers).price == Decimal("12.00")
    assert price(offers, pricing={"max_age": "4d"}).price == Decimal("10.00")
    assert price(offers, pricing={"ignore_suspicious": False}).price == Decimal("11.00")


def test_other_currencies_are_converted_or_skipped() -> None:
    offers = [offer("acme", "20.00", currency="USD"), offer("globex", "19.00")]
    converted = price(offers, pricing={"rates": {"USD:EUR": 0.9}})
    assert converted.price == Decimal("18.00")
    assert converted.details["offers_used"][0]["original"] == "20.00 USD"
    assert price(offers).price == Decimal("19.00")  # no rate: skipped
    assert price(offers, pricing={"rates": {"USD:EUR": 0.9}, "other_currencies": "skip"}).price == Decimal("19.00")


def test_include_and_exclude_competitors() -> None:
    offers = [offer("acme", "10.00"), offer("globex", "11.00"), offer("initech", "12.00")]
    assert price(offers, pricing={"exclude": ["acme"]}).price == Decimal("11.00")
    assert price(offers, pricing={"include": ["initech"]}).price == Decimal("12.00")


@pytest.mark.parametrize(
    ("options", "expected", "reason"),
    [
        ({}, "19.98", "lowest: acme 19.99; undercut 0.01 -> 19.98"),
        ({"amount": "0.50"}, "19.49", "lowest: acme 19.99; undercut 0.50 -> 19.49"),
        ({"percent": 1}, "19.79", "lowest: acme 19.99; undercut 1% -> 19.79"),
    ],
)
def test_undercut_by_amount_or_percent(options: dict, expected: str, reason: str) -> None:
    out = price([offer("acme", "19.99"), offer("globex", "25.00")],
                pricing={"strategies": ["undercut"], "options": {"undercut": options}})
    assert (out.price, out.reason) == (Decimal(expected), reason)


def test_position_by_rank_and_median() -> None:
    offers = [offer("acme", "10.00"), offer("globex", "14.00"), offer("initech", "30.00")]
    rank2 = price(offers, pricing={"strategies": ["position"], "options": {"position": {"rank": 2}}})
    assert (rank2.price, rank2.reason) == (Decimal("14.00"), "rank 2 of 3: 14.00")
    median = price(offers, pricing={"strategies": ["position"]})
    assert (median.price, median.reason) == (Decimal("14.00"), "median of 3 offer(s): 14.00")
    quarter = price(offers, pricing={"strategies": ["position"], "options": {"position": {"percentile": 25}}})
    assert quarter.price == Decimal("12.00")
    # a rank beyond the number of offers is the most expensive one
    assert price(offers, pricing={"strategies": ["position"], "options": {"position": {"rank": 9}}}).price == 30


def test_raise_to_market_only_when_far_below() -> None:
    chain = {"strategies": ["raise_to_market"], "options": {"raise_to_market": {"gap_percent": 10}}}
    up = price([offer("acme", "20.00"), offer("globex", "25.00")], our="15.00", pricing=chain)
    assert (up.price, up.reason) == (Decimal("19.99"), "25.0% below lowest acme 20.00; raise to 19.99")
    close = price([offer("acme", "20.00")], our="19.00", pricing=chain)
    assert close.kind == "no_change" and "not more than 10%" in close.reason


def test_chain_falls_through_to_the_next_strategy() -> None:
    # raise_to_market declines (we are not cheap), match_lowest then answers
    out = price([offer("acme", "20.00")], our="30.00", pricing={"strategies": ["raise_to_market", "match_lowest"]})
    assert (out.strategy, out.price) == ("match_lowest", Decimal("20.00"))


def test_same_price_as_ours_is_not_a_suggestion() -> None:
    assert price([offer("acme", "50.00")], our="50.00").kind == "unchanged"


def test_options_are_validated_when_the_engine_starts() -> None:
    with pytest.raises(ConfigError, match="strategy 'undercut' has no option 'percentage'"):
        price([], pricing={"strategies": ["undercut"], "options": {"undercut": {"percentage": 1}}})
    with pytest.raises(ConfigError, match=r"option undercut.percent: expected a number"):
        price([], pricing={"strategies": ["undercut"], "options": {"undercut": {"percent": "lots"}}})
    with pytest.raises(ConfigError, match="unknown strategy 'match_lowset'"):
        price([], pricing={"strategies": ["match_lowset"]})


def test_tag_and_sku_overrides_only_replace_what_they_set() -> None:
    settings = settings_from_mapping({"pricing": {
        "default": {"guardrails": [], "options": {"undercut": {"amount": "1.00"}}},
        "tags": {"clearance": {"strategies": ["undercut"]}},
        "skus": {"A-1": {"options": {"undercut": {"amount": "2.00"}}}},
    }})
    engine = PricingEngine(settings.pricing, StrategyManager())
    offers = [offer("acme", "20.00")]

    def run(sku: str, tags: tuple[str, ...]) -> Outcome:
        view = Product(sku=sku, name="x", price=Decimal("30"), currency="EUR", tags=tags)
        return engine.price(1, view, offers, NOW, lambda _s: ())

    assert run("B-2", ()).price == Decimal("20.00")  # default: match_lowest
    assert run("B-2", ("clearance",)).price == Decimal("19.00")  # tag: undercut with the default's options
    assert run("A-1", ("clearance",)).price == Decimal("18.00")  # SKU: its own amount, the tag's strategy
