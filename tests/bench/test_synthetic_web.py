"""The synthetic competitor web: deterministic, cached, realistic, and its truth is what the pages say."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

from selectolax.lexbor import LexborHTMLParser

from bench.synthetic_web import (
    ROBOTS_TXT,
    STYLES,
    SyntheticWeb,
    generate_web,
    plan_shops,
    write_run_inputs,
)
from monitor.scrape.extract import ExtractionRules, extract
from monitor.settings import load_settings


def test_every_page_extracts_to_its_truth(small_web: SyntheticWeb) -> None:
    truth = small_web.read_truth()
    assert len(truth) == small_web.page_count
    shops = {shop.name: shop for shop in small_web.shops}
    wrong = []
    for (competitor, sku), row in truth.items():
        body = (small_web.shop_root(competitor) / row.path.lstrip("/")).read_bytes()
        got = extract(body, ExtractionRules(**shops[competitor].selectors))
        if (got.status, got.price, got.currency, got.in_stock) != ("ok", row.price, row.currency, row.in_stock):
            wrong.append((competitor, sku, shops[competitor].style, got.status, got.price, got.message))
    assert wrong == []


def test_shops_mix_every_style_and_currency() -> None:
    shops = plan_shops(72, seed=1)
    styles = Counter(shop.style for shop in shops)
    assert set(styles) == set(STYLES)
    assert max(styles.values()) - min(styles.values()) <= 1
    assert {shop.currency for shop in shops} == {"USD", "EUR", "GBP"}
    assert all(shop.selectors.get("decimal_separator") == "," for shop in shops if shop.style == "plain_eu")
    assert any(shop.old_price_shown for shop in shops) and any(shop.numeric_jsonld_price for shop in shops)


def test_pages_are_realistic(small_web: SyntheticWeb) -> None:
    truth = small_web.read_truth()
    sizes = [(small_web.shop_root(c) / row.path.lstrip("/")).stat().st_size for (c, _), row in truth.items()]
    assert min(sizes) >= 20_000 and max(sizes) <= 40_000
    out_of_stock = sum(not row.in_stock for row in truth.values()) / len(truth)
    assert 0.03 <= out_of_stock <= 0.2
    for shop in small_web.shops:
        assert (small_web.shop_root(shop.name) / "robots.txt").read_text() == ROBOTS_TXT


def test_decoy_prices_are_not_marked_up_as_the_product(small_web: SyntheticWeb) -> None:
    shop = next(s for s in small_web.shops if s.style == "jsonld_graph")
    row = next(r for (c, _), r in small_web.read_truth().items() if c == shop.name)
    tree = LexborHTMLParser((small_web.shop_root(shop.name) / row.path.lstrip("/")).read_text())
    documents = [json.loads(node.text()) for node in tree.css('script[type="application/ld+json"]')]
    products = [n for d in documents for n in d["@graph"] if n["@type"] == "Product"]
    assert len(products) == 1
    cards = tree.css(".related .card")
    assert len(cards) == 8
    assert all(not card.css("[itemprop]") for card in cards)


def test_generation_is_deterministic_and_cached(tmp_path: Path) -> None:
    first = generate_web(2, 5, seed=3, cache_root=tmp_path / "a", workers=1)
    marker = first.root / "manifest.json"
    stamp = marker.stat().st_mtime_ns
    again = generate_web(2, 5, seed=3, cache_root=tmp_path / "a", workers=1)
    assert again.root == first.root and marker.stat().st_mtime_ns == stamp
    elsewhere = generate_web(2, 5, seed=3, cache_root=tmp_path / "b", workers=1)
    assert elsewhere.truth_path.read_text() == first.truth_path.read_text()
    page = "shops/shop-01/products/sku-000003.html"
    assert (elsewhere.root / page).read_bytes() == (first.root / page).read_bytes()
    other_seed = generate_web(2, 5, seed=4, cache_root=tmp_path / "a", workers=1)
    assert other_seed.root != first.root
    assert not list((tmp_path / "a").glob("*.building-*"))


def test_run_inputs_load_in_pricemon(small_web: SyntheticWeb, tmp_path: Path) -> None:
    base_urls = {shop.name: f"http://127.0.0.1:{18001 + i}" for i, shop in enumerate(small_web.shops)}
    inputs = write_run_inputs(small_web, base_urls, tmp_path, max_concurrency=5, min_delay="0s")

    with inputs.products_csv.open(newline="") as fh:
        products = list(csv.DictReader(fh))
    assert list(products[0]) == ["sku", "name", "price", "currency", "cost"]
    assert len(products) == len(small_web.products)
    with inputs.listings_csv.open(newline="") as fh:
        listings = list(csv.DictReader(fh))
    assert len(listings) == small_web.page_count
    assert listings[0]["url"] == "http://127.0.0.1:18001/products/sku-000001.html"

    settings = load_settings(inputs.config_path)
    assert [c.name for c in settings.competitors] == [s.name for s in small_web.shops]
    assert all(c.max_concurrency == 5 for c in settings.competitors)
    plain = next(s for s in small_web.shops if s.style == "plain_eu")
    configured = settings.competitor(plain.name)
    assert configured is not None
    assert configured.selectors.price == ".product-price .now"
    assert configured.selectors.decimal_separator == ","
    assert configured.selectors.out_of_stock == "text:Sold out"
