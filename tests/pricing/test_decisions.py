"""Say what will happen: `approve`, `reject` and `apply` take --dry-run and change nothing then;
`approve --all` reports what it approved; IDs or --sku together with --all is an error."""

from __future__ import annotations

from sqlalchemy import func, select

from monitor.store.models import PriceChange
from tests.pricing.conftest import Market


def _three_pending(market: Market) -> dict[str, int]:
    market.products("sku,name,price,currency\nA-1,a,50.00,EUR\nB-2,b,50.00,EUR\nC-3,c,50.00,EUR\n")
    market.listings([("A-1", "acme"), ("B-2", "acme"), ("C-3", "acme")])
    market.observe({("A-1", "acme"): "40.00", ("B-2", "acme"): "45.00", ("C-3", "acme"): "30.00"})
    market.pricemon("suggest")
    return {s["sku"]: s["id"] for s in market.pricemon("suggestions", "--json").json()}


def _statuses(market: Market) -> dict[str, str]:
    return {s["sku"]: s["status"] for s in market.pricemon("suggestions", "--status", "all", "--json").json()}


def test_dry_runs_change_nothing_and_say_what_would_happen(market: Market) -> None:
    ids = _three_pending(market)

    preview = market.pricemon("approve", "--all", "--dry-run", "--json").json()
    assert (preview["approved"], preview["ids"], preview["dry_run"]) == (3, sorted(ids.values()), True)
    assert _statuses(market) == {"A-1": "pending", "B-2": "pending", "C-3": "pending"}
    text = market.pricemon("reject", "--sku", "C-3", "--dry-run").stdout
    assert "would reject 1 suggestion(s)" in text and f"{ids['C-3']} C-3: 50.00 -> 29.99 EUR" in text
    assert _statuses(market)["C-3"] == "pending"

    market.pricemon("reject", "--sku", "C-3")
    approved = market.pricemon("approve", "--all", "--json").json()  # what --all approved, by id
    assert (approved["approved"], approved["ids"]) == (2, [ids["A-1"], ids["B-2"]])
    assert [s["sku"] for s in approved["suggestions"]] == ["A-1", "B-2"]
    assert approved["dry_run"] is False

    would = market.pricemon("apply", "--dry-run", "--json").json()
    assert [(c["sku"], c["new_price"]) for c in would["applied"]] == [("A-1", "39.99"), ("B-2", "44.99")]
    assert would["dry_run"] is True and would["feed"] is None
    assert "would apply 2 price(s)" in market.pricemon("apply", "--dry-run").stdout
    with market.store.session() as session:
        assert session.scalar(select(func.count()).select_from(PriceChange)) == 0
    assert {p["sku"]: p["price"] for p in market.pricemon("products", "--json").json()}["A-1"] == "50.00"
    assert _statuses(market) == {"A-1": "approved", "B-2": "approved", "C-3": "rejected"}

    applied = market.pricemon("apply", "--json").json()
    assert [c["sku"] for c in applied["applied"]] == ["A-1", "B-2"]
    assert market.pricemon("apply", "--dry-run", "--json").json()["applied"] == []


def test_ids_or_skus_together_with_all_is_an_error(market: Market) -> None:
    ids = _three_pending(market)
    for args in ([str(ids["A-1"]), "--all"], ["--sku", "A-1", "--all"]):
        for command in ("approve", "reject"):
            result = market.pricemon(command, *args, expect=1)
            assert result.stderr.startswith("pricemon: error: --all") and "Traceback" not in result.stderr
    assert set(_statuses(market).values()) == {"pending"}  # nothing decided
