"""Shapes of real product pages, one fixture per failure class (tests/scrape/fixtures/real_world/).

Each page was written after what real shops publish (schema.org and Google's product structured
data docs, Shopify/Magento/WooCommerce theme markup, bug reports against extraction libraries);
expected.json says how each is read. A wrong price is the worst outcome, so every page that cannot
be settled from its own evidence must come out ``ambiguous`` with its candidates, never a guess.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from monitor.scrape.extract import ExtractionRules, extract
from monitor.scrape.fetch import Fetcher, extraction_rules
from monitor.settings import Competitor, ScrapeSettings

REAL_WORLD = Path(__file__).parent / "fixtures" / "real_world"
EXPECTED: dict[str, dict[str, Any]] = {
    key: value for key, value in json.loads((REAL_WORLD / "expected.json").read_text()).items() if key != "_comment"
}


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_real_world_page(case: str) -> None:
    expected = EXPECTED[case]
    body = (REAL_WORLD / case.split("#")[0]).read_bytes()
    result = extract(body, ExtractionRules(**expected.get("rules", {})), url=expected.get("url"))
    assert result.status == expected["status"], result.message
    if expected["status"] == "ok":
        assert str(result.price) == expected["price"], result.message
        assert result.currency == expected["currency"]
        assert result.method == expected["method"]
    else:
        assert result.price is None and result.currency is None
    if "candidates" in expected:
        assert [f"{c.price} {c.currency} {c.method}" for c in result.candidates] == expected["candidates"]
    for key in ("in_stock", "sku", "gtin"):
        if key in expected:
            assert getattr(result, key) == expected[key], key


def test_every_fixture_page_is_checked() -> None:
    pages = {p.name for p in REAL_WORLD.glob("*.html")}
    assert pages == {case.split("#")[0] for case in EXPECTED}


def test_ambiguous_variants_say_their_range() -> None:
    result = extract((REAL_WORLD / "variants_product_group.html").read_bytes())
    assert result.status == "ambiguous"
    assert {c.price for c in result.candidates} == {Decimal("12.00"), Decimal("14.00")}
    assert "12.00" in result.message and "14.00" in result.message


def test_page_prices_are_listed_but_never_chosen() -> None:
    result = extract((REAL_WORLD / "prediscount_jsonld.html").read_bytes())
    assert result.status == "ambiguous"
    assert "struck through" in result.message
    assert [c.source for c in result.candidates if c.method == "page"] == ["page text '100,00 €'"]


# ---------------------------------------------------------------------------- through the command


def test_json_island_selectors_from_the_config_and_the_page_url_through_the_fetcher(
    pricemon_cli, write_config, shop
) -> None:
    shop.pages["/p/x2"] = (REAL_WORLD / "island_next_data.html").read_text(encoding="utf-8")
    variants = (REAL_WORLD / "variants_product_group.html").read_text(encoding="utf-8")
    shop.pages["/p/sock3"] = variants.replace("https://socks.example", shop.base)
    config = write_config(
        f"""
[scrape]
retries = 0

[[competitors]]
name = "nextshop"
base_url = "{shop.base}/"

[competitors.selectors]
json_script = "script#__NEXT_DATA__"
json_price = "props.pageProps.product.pricing.current.value"
json_currency = "props.pageProps.product.pricing.current.currency"
json_in_stock = "props.pageProps.product.stock.status"
"""
    )
    pricemon = pricemon_cli(config)
    out = pricemon("extract", shop.url("/p/x2"), "--competitor", "nextshop", "--json").json()
    assert (out["price"], out["currency"], out["in_stock"], out["method"]) == ("24990.00", "INR", True, "json")
    # the page's own URL selects the variant (?size=l) among offers with different prices
    out = pricemon("extract", shop.url("/p/sock3?size=l"), "--json").json()
    assert (out["price"], out["currency"], out["method"]) == ("14.00", "EUR", "jsonld")
    refused = pricemon("extract", shop.url("/p/sock3"), "--json", expect=3)
    assert "ambiguous" in refused.stderr


def test_bad_json_island_settings_are_config_errors(pricemon_cli, write_config) -> None:
    config = write_config(
        """
[[competitors]]
name = "nextshop"
base_url = "https://shop.example/"

[competitors.selectors]
json_script = "script#__NEXT_DATA__"
json_price = "props.[price"
"""
    )
    out = pricemon_cli(config)("config", "check", expect=None)
    assert out.exit_code != 0
    assert "json_price" in out.stderr and "JMESPath" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(
    "value",
    [None, True, -1, "", "abc", [], {}, [1, "x"], {"@id": "x"}, {"value": {"value": 1}}, "http://[", {"price": [1, 2]}],
)
def test_odd_structured_values_never_raise(value: object) -> None:
    product = {
        "@type": "product",
        "name": value,
        "url": value,
        "sku": value,
        "offers": [
            {"@type": "Offer", "price": value, "url": value, "sku": value, "priceSpecification": value},
            {"@type": "Offer", "price": "3.00", "url": "http://[", "priceSpecification": [{"referenceQuantity": 1}]},
        ],
        "hasVariant": [{"@type": "Product", "offers": {"price": value, "url": value}}],
    }
    body = (
        '<link rel="canonical" href="http://[::1"><script type="application/ld+json">'
        + json.dumps(product)
        + '</script><h1>x</h1><del>3.00</del><form action="/cart/add"><input name="id" value="1"></form>'
    )
    for rules in (ExtractionRules(), ExtractionRules(json_script="script", json_price="offers[].price")):
        result = extract(body, rules, url="http://[")
        assert result.status in {"ok", "ambiguous", "not_found"}


def test_opengraph_zero_beside_a_structured_out_of_stock_is_no_price() -> None:
    html = """<meta property="product:price:amount" content="0"><meta property="product:price:currency" content="EUR">
    <script type="application/ld+json">{"@type": "Product", "name": "Lamp",
    "offers": {"price": "0", "availability": "https://schema.org/OutOfStock"}}</script>"""
    result = extract(html)
    assert (result.status, result.price, result.in_stock) == ("not_found", None, False)


def test_a_page_skipped_as_unchanged_by_the_previous_extractor_is_read_again(shop) -> None:
    body = (REAL_WORLD / "main_product_without_price.html").read_bytes()
    shop.pages["/p/table"] = body.decode()
    competitor = Competitor(name="acme", base_url=shop.base, min_delay="0s", respect_robots_txt=False)
    # the body hash the previous extractor stored with the price it read (the care oil's 18.00)
    old_hash = hashlib.sha256(body + repr(extraction_rules(competitor)).encode()).hexdigest()[:32]

    async def check(body_hash: str | None) -> tuple[str, str | None]:
        async with Fetcher(competitor, ScrapeSettings(retries=0)) as fetcher:
            result = await fetcher.check(
                1, shop.url("/p/table"), product_gtin=None, product_currency="GBP", body_hash=body_hash
            )
            return result.outcome, result.body_hash

    outcome, _ = asyncio.run(check(old_hash))
    assert outcome == "not_found"  # read again, and now refused
    # while the current extractor's own hash still spares re-reading an unchanged page
    shop.pages["/p/table"] = (REAL_WORLD / "case_types_keys.html").read_text(encoding="utf-8")
    outcome, new_hash = asyncio.run(check(None))
    assert outcome == "observed" and new_hash
    assert asyncio.run(check(new_hash))[0] == "unchanged"
