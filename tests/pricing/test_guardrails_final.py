"""Guardrails are final, through `pricemon suggest` on SQLite and PostgreSQL: after the whole chain
the price satisfies every configured bound, rounding never reverses the move, a product no price
fits keeps its own, and the engine refuses (by SKU) whatever breaks an invariant anyway."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from monitor.pricing import engine as pricing_engine
from monitor.pricing.workflow import compute_suggestions
from monitor.settings import load_settings
from monitor.store.models import PriceChange
from tests.conftest import run_pricemon
from tests.pricing.conftest import CONFIG, Market

UNDERCUT_2_MAX_15 = (
    '[pricing.default]\nstrategies = ["undercut"]\nmax_change = 15\nauto_approve = true\n'
    "options = { undercut = { percent = 2 } }\n"
)


def sabotage_guardrails(market: Market, monkeypatch, broken_price: str, extra_config: str = "") -> None:
    """Simulate a bug in a guardrail wherever products are priced: strategies run in worker
    processes, so the bug is planted by a plugin file that every such process imports (this one
    too, which gets its own guardrail back when the test ends)."""
    monkeypatch.setattr(pricing_engine, "apply_guardrails", pricing_engine.apply_guardrails)
    folder = market.config_path.parent / "sabotage"
    folder.mkdir(exist_ok=True)
    (folder / "broken_guardrails.py").write_text(
        "from decimal import Decimal\n"
        "from monitor.pricing import engine\n"
        "from monitor.pricing.guardrails import Guarded\n\n"
        "def broken(price, product, assignment):\n"
        f"    return Guarded({broken_price}, (), ())\n\n"
        "engine.apply_guardrails = broken\n",
        encoding="utf-8",
    )
    market.config_path.write_text(f'strategies_dir = "{folder}"\n' + CONFIG + extra_config, encoding="utf-8")


def prices(market: Market) -> dict[str, str]:
    return {p["sku"]: p["price"] for p in market.pricemon("products", "--json").json()}


def price_changes(market: Market) -> list[PriceChange]:
    with market.store.session() as session:
        return list(session.scalars(select(PriceChange).order_by(PriceChange.id)))


def test_max_change_holds_after_rounding_even_when_auto_approved(market: Market) -> None:
    # The case: 26.99, lowest 22.49, undercut 2% -> 22.04, max change 15% -> 22.95, and
    # .99 rounding down gave 21.99, an 18.5% cut that was auto-applied. 22.99 is the .99 point inside.
    market.reconfigure(UNDERCUT_2_MAX_15)
    market.products("sku,name,price,currency\nA-1,Kettle,26.99,EUR\n")
    market.listings([("A-1", "acme")])
    market.observe({("A-1", "acme"): "22.49"})
    summary = market.pricemon("suggest", "--json").json()
    assert (summary["suggested"], summary["auto_applied"], summary["refused"]) == (1, 1, 0)
    assert prices(market) == {"A-1": "22.99"}
    [change] = price_changes(market)
    assert abs(change.new_price - change.old_price) <= Decimal("26.99") * 15 / 100
    assert change.reason == "lowest: acme 22.49; undercut 2% -> 22.04; max change 15% -> 22.95; round .99 -> 22.99"


def test_a_raise_is_never_rounded_into_a_cut(market: Market) -> None:
    # The demo's JUI-900: already the cheapest at 27.50; match_lowest asks for 27.90 and .99
    # rounding down gave 26.99, a cut. The allowed point is the other way: 27.99.
    market.products("sku,name,price,currency,cost\nJUI-900,Citrus juicer,27.50,EUR,14.00\n")
    market.listings([("JUI-900", "acme"), ("JUI-900", "globex"), ("JUI-900", "initech")])
    market.observe({("JUI-900", "acme"): "27.90", ("JUI-900", "globex"): "28.45", ("JUI-900", "initech"): "29.00"})
    market.pricemon("suggest")
    [suggestion] = market.pricemon("suggestions", "--json").json()
    assert (suggestion["current_price"], suggestion["suggested_price"]) == ("27.50", "27.99")
    assert suggestion["reason"] == "lowest: acme 27.90; round .99 -> 27.99 (26.99 would not be a raise)"


def test_a_cut_is_never_rounded_into_a_raise_and_no_change_stays_no_change(market: Market) -> None:
    market.reconfigure('[pricing.default]\nrounding_direction = "up"\n')
    market.products("sku,name,price,currency\nCUT-1,Lamp,29.50,EUR\nSAME-2,Mug,27.50,EUR\n")
    market.listings([("CUT-1", "acme"), ("SAME-2", "acme")])
    # CUT-1: 29.20 rounded up is 29.99, a raise: 28.99 instead. SAME-2: the market is at our
    # price, which is no .99 point: it stays, rather than become a raise to 27.99.
    market.observe({("CUT-1", "acme"): "29.20", ("SAME-2", "acme"): "27.50"})
    summary = market.pricemon("suggest", "--json").json()
    assert (summary["suggested"], summary["unchanged"]) == (1, 1)
    [suggestion] = market.pricemon("suggestions", "--json").json()
    assert (suggestion["sku"], suggestion["suggested_price"]) == ("CUT-1", "28.99")
    assert suggestion["reason"] == "lowest: acme 29.20; round .99 -> 28.99 (29.99 would not be a cut)"


def test_when_no_price_fits_the_product_keeps_its_price_and_says_why(market: Market) -> None:
    market.products("sku,name,price,currency\nJUI-900,Citrus juicer,27.50,EUR\n")
    market.listings([("JUI-900", "acme")])
    market.observe({("JUI-900", "acme"): "27.90"})
    market.pricemon("suggest")
    [old] = market.pricemon("suggestions", "--json").json()
    assert old["suggested_price"] == "27.99"

    # At most 1% (27.23..27.77): no .99 point is a raise within it.
    market.reconfigure("[pricing.default]\nmax_change = 1\nauto_approve = true\n")
    summary = market.pricemon("suggest", "--json").json()
    assert (summary["held"], summary["suggested"], summary["auto_applied"]) == (1, 0, 0)
    [held] = summary["held_reasons"]
    assert held == {
        "sku": "JUI-900",
        "strategy": "match_lowest",
        "reason": "lowest: acme 27.90; max change 1% -> 27.77; round .99: no price point for this raise above "
        "27.50, up to 27.77 (max change 1%); the price stays 27.50",
    }
    assert prices(market) == {"JUI-900": "27.50"}
    assert market.pricemon("suggestions", "--json").json() == []  # the old one no longer holds
    assert [s["id"] for s in market.pricemon("suggestions", "--status", "superseded", "--json").json()] == [old["id"]]
    text = market.pricemon("suggest")
    assert "1 held by the guardrails" in text.stdout
    assert "JUI-900 keeps its price: lowest: acme 27.90; max change 1% -> 27.77;" in text.stderr


def test_bounds_that_exclude_each_other_hold_the_price(market: Market) -> None:
    # A maximum under the cost: no price is both. Selling at 45 broke the max before; now neither breaks.
    market.products("sku,name,price,currency,cost,max_price\nA-1,Kettle,48.00,EUR,45.00,40.00\n")
    market.listings([("A-1", "acme")])
    market.observe({("A-1", "acme"): "30.00"})
    summary = market.pricemon("suggest", "--json").json()
    assert (summary["held"], summary["suggested"]) == (1, 0)
    assert summary["held_reasons"][0]["reason"] == (
        "lowest: acme 30.00; no price satisfies every guardrail: cost floor 45.00 is above max 40.00; "
        "the price stays 48.00"
    )


def test_the_engine_refuses_a_suggestion_that_breaks_an_invariant(market: Market, monkeypatch) -> None:
    """The second line of defence: were the guardrails to let a price through that breaks a bound or
    reverses the move (simulated here by guardrails that do nothing), the suggestion is refused and
    reported by SKU; it is never stored, auto-approved or applied, and the other products go on."""
    up_3 = '[pricing.skus."UP-3"]\nstrategies = ["match_lowest"]\n'
    sabotage_guardrails(market, monkeypatch, "price", UNDERCUT_2_MAX_15 + up_3)
    market.products(
        "sku,name,price,currency,cost\nA-1,Kettle,26.99,EUR,\nB-2,Mug,10.00,EUR,\nC-3,Lamp,12.00,EUR,11.00\n"
        "UP-3,Pan,20.00,EUR,\n"
    )
    market.listings([("A-1", "acme"), ("B-2", "acme"), ("C-3", "acme"), ("UP-3", "acme")])
    # 22.04 is an 18.3% cut; C-3: 10.29 is under its cost 11.00; B-2 (9.31) and UP-3 (21.00,
    # match_lowest) are within every bound even without rounding.
    market.observe({("A-1", "acme"): "22.49", ("B-2", "acme"): "9.50", ("C-3", "acme"): "10.50",
                    ("UP-3", "acme"): "21.00"})
    settings = load_settings(market.config_path, database_url=market.database_url, environ={})
    summary = compute_suggestions(settings, market.store)
    assert (summary.refused, summary.suggested, summary.auto_applied) == (2, 2, 2)
    errors = {e["sku"]: e["error"] or "" for e in summary.errors}
    assert set(errors) == {"A-1", "C-3"}
    assert errors["A-1"].startswith("refused 22.04 (lowest: acme 22.49; undercut 2% -> 22.04): ")
    assert errors["A-1"].endswith("below max change 15% of 26.99")
    assert errors["C-3"].endswith("below margin floor 11.00")
    assert prices(market) == {"A-1": "26.99", "B-2": "9.31", "C-3": "12.00", "UP-3": "21.00"}
    assert {c.new_price for c in price_changes(market)} == {Decimal("9.31"), Decimal("21.00")}
    stored = market.pricemon("suggestions", "--status", "all", "--json").json()
    assert sorted((s["sku"], s["status"]) for s in stored) == [("B-2", "applied"), ("UP-3", "applied")]


@pytest.mark.parametrize("guard", ["reverse", "none"])
def test_the_engine_refuses_a_reversed_move(market: Market, monkeypatch, guard: str) -> None:
    # A raise turned into a cut within every bound is refused just the same; so is a change where
    # the strategy asked for none.
    broken = 'product.price - Decimal("0.51")' if guard == "reverse" else "product.price + 1"
    sabotage_guardrails(market, monkeypatch, broken)
    market.products("sku,name,price,currency\nJUI-900,Citrus juicer,27.50,EUR\n")
    market.listings([("JUI-900", "acme")])
    market.observe({("JUI-900", "acme"): "27.90" if guard == "reverse" else "27.50"})
    out = market.pricemon("suggest")
    assert "0 suggestion(s)" in out.stdout and "1 refused" in out.stdout
    expected = ("a cut where the strategy's price within the bounds (27.90) is a raise" if guard == "reverse"
                else "a raise where the strategy's price within the bounds (27.50) is no change")
    assert f"JUI-900: refused {'26.99' if guard == 'reverse' else '28.50'} (lowest: acme" in out.stderr
    assert expected in out.stderr
    assert market.pricemon("suggestions", "--status", "all", "--json").json() == []


def test_the_demo_never_reverses_a_move(tmp_path, pricemon_cli) -> None:
    # `pricemon demo` as a user runs it: its JUI-900 (27.50, the cheapest) was suggested a cut to 26.99.
    done = run_pricemon("demo", "--out", "demo", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    suggestions = pricemon_cli(tmp_path / "demo" / "pricemon.toml")("suggestions", "--json").json()
    moves = {s["sku"]: (Decimal(s["current_price"]), Decimal(s["suggested_price"]),
                        Decimal(s["details"]["strategy_price"])) for s in suggestions}
    assert moves["JUI-900"] == (Decimal("27.50"), Decimal("27.99"), Decimal("27.90"))
    for sku, (current, suggested, asked) in moves.items():
        assert (suggested > current) == (asked > current) and suggested != current, sku
