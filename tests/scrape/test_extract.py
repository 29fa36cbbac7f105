from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest

from monitor.scrape.extract import Candidate, Extraction, ExtractionRules, extract, validate_selector

FIXTURES = Path(__file__).parent / "fixtures"


def page(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def assert_ok(result: Extraction, price: str, currency: str | None, method: str) -> None:
    assert result.status == "ok", result.message
    assert result.price == Decimal(price)
    assert str(result.price) == price
    assert result.currency == currency
    assert result.method == method


# ---------------------------------------------------------------------------- JSON-LD


def test_jsonld_plain_product() -> None:
    result = extract(page("jsonld_plain.html"))
    assert_ok(result, "39.90", "EUR", "jsonld")
    assert result.in_stock is True
    assert result.gtin == "4006381333931"
    assert result.sku == "KT-1"
    assert result.candidates == (Candidate(Decimal("39.90"), "EUR", "jsonld", "JSON-LD Product.offers"),)


def test_jsonld_graph_resolves_offer_reference_and_ignores_related_products() -> None:
    result = extract(page("jsonld_graph.html"))
    assert_ok(result, "7.50", "GBP", "jsonld")
    assert result.in_stock is False  # http://schema.org/OutOfStock
    assert result.gtin == "00012345678905"
    assert result.sku == "GT-100"
    assert {c.price for c in result.candidates} == {Decimal("7.50")}  # teapot 24.00 / black tea 5.10 ignored


def test_jsonld_list_with_identical_offers_is_not_ambiguous() -> None:
    result = extract(page("jsonld_list_nested_offers.html"))
    assert_ok(result, "1299.00", "SEK", "jsonld")
    assert len(result.candidates) == 2
    assert result.in_stock is True
    assert result.sku == "DL-2"


def test_jsonld_aggregate_offer_range_is_ambiguous() -> None:
    result = extract(page("jsonld_aggregate_range.html"))
    assert result.status == "ambiguous"
    assert result.price is None and result.currency is None and result.method is None
    assert {c.price for c in result.candidates} == {Decimal("79.99"), Decimal("119.99")}
    assert "lowPrice" in result.message


def test_jsonld_aggregate_offer_with_equal_low_and_high_is_ok_and_preorder_is_not_in_stock() -> None:
    result = extract(page("jsonld_aggregate_single.html"))
    assert_ok(result, "79.99", "USD", "jsonld")
    assert result.in_stock is False


def test_jsonld_aggregate_offer_with_one_offer_uses_low_price() -> None:
    html = """<script type="application/ld+json">{"@type": "Product", "offers": {"@type": "AggregateOffer",
    "lowPrice": 15, "priceCurrency": "EUR", "offerCount": 1}}</script>"""
    assert_ok(extract(html), "15", "EUR", "jsonld")


def test_broken_jsonld_block_is_skipped_and_commented_trailing_comma_block_is_read() -> None:
    result = extract(page("jsonld_broken.html"))
    assert_ok(result, "8.95", "EUR", "jsonld")
    assert result.in_stock is False  # SoldOut
    assert result.sku == "MUG-9"


def test_several_different_offers_are_ambiguous() -> None:
    result = extract(page("jsonld_two_offers_different.html"))
    assert result.status == "ambiguous"
    assert [c.price for c in result.candidates] == [Decimal("19.00"), Decimal("17.50")]
    assert [c.source for c in result.candidates] == ["JSON-LD Product.offers[0]", "JSON-LD Product.offers[1]"]


def test_jsonld_type_list_webpage_main_entity_and_price_specification() -> None:
    html = """<script type="application/ld+json">{"@type": "ItemPage", "mainEntity": {"@type": ["Product", "Thing"],
    "offers": {"@type": "Offer", "priceSpecification": [
        {"@type": "UnitPriceSpecification", "price": "29.99", "priceCurrency": "EUR",
         "priceType": "https://schema.org/StrikethroughPrice"},
        {"@type": "UnitPriceSpecification", "price": "24.99", "priceCurrency": "EUR"}]}},
    "relatedLink": "https://x.example/"}</script>"""
    assert_ok(extract(html), "24.99", "EUR", "jsonld")


def test_top_level_item_list_of_products_is_not_the_page_product() -> None:
    html = """<script type="application/ld+json">{"@type": "ItemList", "itemListElement": [
    {"@type": "Product", "offers": {"@type": "Offer", "price": "3.00"}}]}</script>"""
    result = extract(html)
    assert result.status == "not_found"
    assert result.candidates == ()


# ---------------------------------------------------------------------------- microdata and OpenGraph


def test_microdata_ignores_related_and_similar_products() -> None:
    result = extract(page("microdata_decoys.html"))
    assert_ok(result, "89.00", "EUR", "microdata")
    assert result.in_stock is True  # the related jug's OutOfStock is not ours
    assert result.gtin == "5901234123457"
    assert result.sku == "BLX-1"
    assert [c.price for c in result.candidates] == [Decimal("89.00")]


def test_microdata_price_text_without_content_uses_locale_parsing() -> None:
    html = """<div itemscope itemtype="http://schema.org/Product"><div itemprop="offers" itemscope
    itemtype="http://schema.org/Offer"><span itemprop="price">1.299,00 €</span>
    <span itemprop="availability">http://schema.org/Discontinued</span></div></div>"""
    result = extract(html)
    assert_ok(result, "1299.00", "EUR", "microdata")
    assert result.in_stock is False


def test_opengraph_only() -> None:
    result = extract(page("opengraph_only.html"))
    assert_ok(result, "129.95", "CHF", "opengraph")
    assert result.in_stock is False
    assert result.sku == "RJ-77"


def test_opengraph_sale_price_wins_over_regular_price() -> None:
    assert_ok(extract(page("opengraph_sale.html")), "44.25", "GBP", "opengraph")


def test_same_price_in_jsonld_microdata_and_opengraph_is_not_ambiguous() -> None:
    result = extract(page("realistic_30kb.html"))
    assert_ok(result, "329.00", "USD", "jsonld")
    assert {c.method for c in result.candidates} == {"jsonld", "microdata", "opengraph"}
    assert result.gtin == "4006381333931"
    assert result.sku == "BP-3000"
    assert result.in_stock is True


def test_structured_sources_disagreeing_is_ambiguous() -> None:
    html = """<head><meta property="product:price:amount" content="20.00">
    <meta property="product:price:currency" content="EUR"></head>
    <script type="application/ld+json">
    {"@type": "Product", "offers": {"price": "18.00", "priceCurrency": "EUR"}}</script>"""
    result = extract(html)
    assert result.status == "ambiguous"
    assert {(c.price, c.method) for c in result.candidates} == {
        (Decimal("20.00"), "opengraph"),
        (Decimal("18.00"), "jsonld"),
    }


def test_same_amount_with_and_without_currency_is_one_price() -> None:
    html = """<meta property="product:price:amount" content="18.00">
    <script type="application/ld+json">
    {"@type": "Product", "offers": {"price": "18", "priceCurrency": "EUR"}}</script>"""
    assert_ok(extract(html, ExtractionRules(currency="USD")), "18", "EUR", "jsonld")


def test_default_currency_applies_when_page_names_none() -> None:
    html = """<script type="application/ld+json">{"@type": "Product", "offers": {"price": "18.40"}}</script>"""
    assert_ok(extract(html, ExtractionRules(currency="NOK")), "18.40", "NOK", "jsonld")
    assert_ok(extract(html), "18.40", None, "jsonld")


# ---------------------------------------------------------------------------- selectors


def test_selector_wins_over_decoys_in_the_page() -> None:
    result = extract(page("plain_selectors.html"), ExtractionRules(price=".product .price", in_stock=".in-stock"))
    assert_ok(result, "1049.00", "USD", "selector")
    assert result.in_stock is True
    assert result.candidates == (Candidate(Decimal("1049.00"), "USD", "selector", "selector '.product .price'"),)


def test_plain_prices_are_never_scanned_without_selector() -> None:
    result = extract(page("plain_selectors.html"))
    assert result.status == "not_found"
    assert result.price is None
    assert result.in_stock is None


@pytest.mark.parametrize(
    ("selector", "separator", "price", "currency"),
    [
        (".product-price", None, "1299.99", "EUR"),
        (".sup-price", None, "19.99", "USD"),
        (".cents-price", None, "19.99", "USD"),
        (".eu-cents", None, "1299.99", "EUR"),
        (".product-price", ",", "1299.99", "EUR"),
    ],
)
def test_prices_split_across_elements(selector: str, separator: str | None, price: str, currency: str) -> None:
    result = extract(
        page("european_split.html"), ExtractionRules(price=selector, currency="USD", decimal_separator=separator)
    )
    assert_ok(result, price, currency, "selector")


@pytest.mark.parametrize(
    ("selector", "price", "currency"),
    [
        ("p.price", "39.00", "USD"),  # WooCommerce del/ins + screen-reader text
        ("p.price .amount", "39.00", "USD"),  # the struck-through match itself is skipped
        (".price-box", "64.00", "EUR"),
        (".pb2", "9.50", "EUR"),
        (".pb3", "15", "GBP"),
        (".pb4", "8", "USD"),
        (".pb5", "7.25", "USD"),  # a font-weight class is not an old price
        (".same", "10.00", "EUR"),
    ],
)
def test_old_new_price_pairs_take_the_new_price(selector: str, price: str, currency: str) -> None:
    assert_ok(
        extract(page("old_new_pair.html"), ExtractionRules(price=selector, currency="EUR")), price, currency, "selector"
    )


def test_selector_matching_several_different_prices_is_ambiguous() -> None:
    result = extract(page("old_new_pair.html"), ExtractionRules(price=".price-tag"))
    assert result.status == "ambiguous"
    assert [c.price for c in result.candidates] == [Decimal("10.00"), Decimal("12.00")]
    assert [c.source for c in result.candidates] == ["selector '.price-tag' #1", "selector '.price-tag' #2"]


def test_selector_matching_same_price_repeatedly_is_fine() -> None:
    result = extract(page("old_new_pair.html"), ExtractionRules(price=".price-tag2"))
    assert_ok(result, "10.00", "EUR", "selector")
    assert len(result.candidates) == 2


def test_selector_matching_nothing_falls_back_to_structured_data_and_says_so() -> None:
    result = extract(page("jsonld_plain.html"), ExtractionRules(price=".no-such-price"))
    assert_ok(result, "39.90", "EUR", "jsonld")
    assert "'.no-such-price' matched nothing" in result.message


def test_selector_matching_nothing_and_no_structured_data_is_not_found() -> None:
    result = extract(page("nothing.html"), ExtractionRules(price=".price"))
    assert result.status == "not_found"
    assert "matched nothing" in result.message


def test_invalid_selector_does_not_raise() -> None:
    result = extract(page("jsonld_plain.html"), ExtractionRules(price="div[", in_stock="p[["))
    assert_ok(result, "39.90", "EUR", "jsonld")
    assert "not a valid CSS selector" in result.message


def test_selector_on_meta_content() -> None:
    result = extract(
        page("opengraph_only.html"), ExtractionRules(price='meta[property="product:price:amount"]', currency="CHF")
    )
    assert_ok(result, "129.95", "CHF", "selector")


# ---------------------------------------------------------------------------- stock


def test_text_rule_ignores_case_whitespace_and_beats_structured_in_stock() -> None:
    result = extract(page("stock_text.html"), ExtractionRules(out_of_stock="text:Sold out"))
    assert_ok(result, "5.00", "USD", "jsonld")
    assert result.in_stock is False


def test_text_rule_does_not_match_script_text() -> None:
    result = extract(page("stock_text.html"), ExtractionRules(out_of_stock="text:currently unavailable"))
    assert result.in_stock is True  # falls through to schema.org InStock


def test_out_of_stock_wins_over_in_stock() -> None:
    rules = ExtractionRules(in_stock="button.buy", out_of_stock="text:sold out")
    assert extract(page("stock_text.html"), rules).in_stock is False
    rules = ExtractionRules(in_stock="button.buy", out_of_stock=".nope")
    assert extract(page("stock_text.html"), rules).in_stock is True


def test_stock_unknown_stays_none() -> None:
    result = extract(page("european_split.html"), ExtractionRules(price=".sup-price", out_of_stock="text:ausverkauft"))
    assert result.in_stock is None


def test_conflicting_structured_availability_stays_none() -> None:
    html = """<script type="application/ld+json">{"@type": "Product", "offers": {"price": "1.00",
    "availability": "InStock"}}</script><meta property="product:availability" content="oos">"""
    assert extract(html).in_stock is None


# ---------------------------------------------------------------------------- robustness


def test_nothing_is_not_found() -> None:
    result = extract(page("nothing.html"))
    assert result.status == "not_found"
    assert result.price is None and result.candidates == ()
    assert result.message


def test_binary_body_is_invalid_content() -> None:
    garbage = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + os.urandom(4096)
    result = extract(garbage)
    assert result.status == "invalid_content"
    assert result.price is None


def test_latin1_bytes_decoded_from_meta_charset() -> None:
    result = extract(page("latin1.html"), ExtractionRules(price=".p"))
    assert_ok(result, "4.20", "EUR", "selector")  # \x80 is the euro sign in windows-1252
    assert result.sku == "CAFÉ-1"


def test_declared_encoding_wins_over_meta_and_unknown_labels_fall_back() -> None:
    body = '<meta charset="utf-8"><p class="p">Prix 4,20 €</p><p class="s">Café</p>'.encode("cp1252")
    assert_ok(extract(body, ExtractionRules(price=".p"), encoding="windows-1252"), "4.20", "EUR", "selector")
    result = extract(body, ExtractionRules(price=".p", currency="EUR"), encoding="no-such-charset")
    assert_ok(result, "4.20", "EUR", "selector")  # undecodable € replaced, default currency used


def test_utf8_bytes_with_a_stray_invalid_byte_still_read() -> None:
    # UTF-8 pages go to the parser as bytes; a broken sequence must cost that character only.
    body = '<p class="p">Preis 1.299,00 €</p><p class="n">Caf\xe9 — SOLD\n   out</p>'.encode()
    body = body.replace(b"Caf\xc3\xa9", b"Caf\xe9")
    result = extract(body, ExtractionRules(price=".p", decimal_separator=",", out_of_stock="text:Sold Out"))
    assert_ok(result, "1299.00", "EUR", "selector")
    assert result.in_stock is False  # the text rule ignores case and line breaks


def test_malformed_html_and_odd_inputs_never_raise() -> None:
    for body in [
        b"",
        "",
        "   ",
        "<",
        "<<<>>>",
        "<div><span class=price>$5",
        b"\xff\xfe\xfa" * 100,
        "<script type='application/ld+json'>[1, 2, null, \"x\"]</script>",
        '<script type=\'application/ld+json\'>{"@type": "Product", "offers": "cheap"}</script>',
        '<script type=\'application/ld+json\'>{"@type": "Product", "offers": {"price": true}}</script>',
        "<div itemscope><span itemprop='price'>x</span></div>",
        "\ud800<p>surrogate</p>",
    ]:
        result = extract(body, ExtractionRules(price=".price", out_of_stock="text:x"))
        assert result.status in {"ok", "not_found"}
    assert_ok(extract("<div><span class=price>$5", ExtractionRules(price=".price")), "5", "USD", "selector")


def test_huge_page_still_gives_the_answer() -> None:
    filler = "<div class='review'><p>Great value, paid $12 less than elsewhere.</p></div>\n" * 70_000
    body = (page("jsonld_plain.html").decode().replace("<body>", "<body>" + filler)).encode()
    assert len(body) > 5_000_000
    result = extract(body, ExtractionRules(out_of_stock="text:sold out"))
    assert_ok(result, "39.90", "EUR", "jsonld")
    assert result.in_stock is True


# ---------------------------------------------------------------------------- validate_selector


def test_validate_selector() -> None:
    assert validate_selector(".price > span.amount:not(.old)") is None
    assert validate_selector("[itemprop=price]") is None
    assert validate_selector("div[") is not None
    assert "invalid CSS selector" in (validate_selector(".a >") or "")
    assert validate_selector("") == "empty CSS selector"
