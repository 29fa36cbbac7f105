"""`platform = "shopify"`: listings read from the product's own `/products/<handle>.js` (Shopify's
Ajax Product API: prices in hundredths, one entry per variant, `available`), served by a real
local server in the shape Shopify's documentation gives."""

from __future__ import annotations

import json

from .conftest import Reply
from .test_sweep import SCRAPE, by_sku, competitor_block, setup_catalog


def variant(vid: int, title: str, price: int, *, available: bool = True, sku: str = "", barcode: str = "") -> dict:
    return {
        "id": vid,
        "title": title,
        "option1": title,
        "option2": None,
        "option3": None,
        "sku": sku,
        "requires_shipping": True,
        "taxable": True,
        "featured_image": None,
        "available": available,
        "name": f"Red Rain Coat - {title}",
        "public_title": title,
        "options": [title],
        "price": price,
        "weight": 1000,
        "compare_at_price": 15900 if price < 15900 else None,
        "inventory_management": "shopify",
        "barcode": barcode,
        "requires_selling_plan": False,
        "selling_plan_allocations": [],
    }


def product_js(handle: str, variants: list[dict]) -> str:
    prices = [v["price"] for v in variants]
    return json.dumps(
        {
            "id": 329678821,
            "title": handle.replace("-", " ").title(),
            "handle": handle,
            "description": "<p>Lorem Ipsum.</p>",
            "published_at": "2014-06-12T16:28:11-04:00",
            "created_at": "2014-06-12T16:28:13-04:00",
            "vendor": "Shopify",
            "type": "Coat",
            "tags": ["Spring"],
            "price": min(prices),
            "price_min": min(prices),
            "price_max": max(prices),
            "available": any(v["available"] for v in variants),
            "price_varies": len(set(prices)) > 1,
            "compare_at_price": 15900,
            "compare_at_price_min": 15900,
            "compare_at_price_max": 15900,
            "compare_at_price_varies": False,
            "variants": variants,
            "images": ["//cdn.shopify.com/s/files/1/0040/7092/products/red-rain-coat.jpeg?v=1402604893"],
            "featured_image": "//cdn.shopify.com/s/files/1/0040/7092/products/red-rain-coat.jpeg?v=1402604893",
            "options": [{"name": "Size", "position": 1, "values": [v["title"] for v in variants]}],
            "url": f"/products/{handle}",
        }
    )


JS = {"Content-Type": "text/javascript; charset=utf-8"}
JSON = {"Content-Type": "application/json; charset=utf-8"}
SHOPIFY = 'platform = "shopify"\n[competitors.selectors]\ncurrency = "EUR"\n'


def test_a_shopify_sweep_reads_the_listings_variant_from_the_js_endpoint(
    tmp_path, shop, pricemon_cli, write_config, sqlite_url
) -> None:
    coat = product_js(
        "red-rain-coat",
        [
            variant(794864229, "Small", 12900, sku="RRC-S", barcode="4006381333931"),
            variant(794864233, "Medium", 12900, available=False, sku="RRC-M"),
            variant(794864237, "Large", 13900, sku="RRC-L"),
        ],
    )
    shop.pages.update(
        {
            "/products/red-rain-coat.js": Reply(200, coat, JS),
            "/products/red-rain-coat": "<html><body>the HTML page is never read</body></html>",
            "/products/one-size.js": product_js("one-size", [variant(1, "Default Title", 4550)]),  # ETag, 304
            "/products/agree.js": Reply(200, product_js("agree", [variant(2, "S", 990), variant(3, "M", 990)]), JSON),
            "/fr/products/beret.js": Reply(200, product_js("beret", [variant(4, "Default Title", 2500)]), JS),
            "/products/gone-free.js": Reply(
                200, product_js("gone-free", [variant(5, "Default Title", 0, available=False)]), JS
            ),
            "/products/garbled.js": Reply(200, "{not json", JS),
        }
    )
    config = write_config(SCRAPE + competitor_block("acme", shop, SHOPIFY))
    pricemon = pricemon_cli(config, sqlite_url)
    listings = [
        ("SMALL", "acme", shop.url("/products/red-rain-coat?variant=794864229")),
        ("MEDIUM", "acme", shop.url("/collections/coats/products/red-rain-coat?variant=794864233")),
        ("LARGE", "acme", shop.url("/products/red-rain-coat?variant=794864237&utm_source=x")),
        ("ANY", "acme", shop.url("/products/red-rain-coat")),
        ("NOVAR", "acme", shop.url("/products/red-rain-coat?variant=1")),
        ("ONE", "acme", shop.url("/products/one-size")),
        ("AGREE", "acme", shop.url("/collections/all/products/agree")),
        ("BERET", "acme", shop.url("/fr/products/beret")),
        ("FREE", "acme", shop.url("/products/gone-free")),
        ("GARBLED", "acme", shop.url("/products/garbled")),
        ("PAGE", "acme", shop.url("/pages/about-us")),
    ]
    setup_catalog(tmp_path, pricemon, listings)
    summary = pricemon("scrape", "--json").json()
    assert summary["status"] == "finished"
    rows = by_sku(pricemon)
    got = {sku: (row["last_outcome"], row["price"], row["currency"], row["in_stock"]) for sku, row in rows.items()}
    assert got["SMALL"] == ("changed", "129.00", "EUR", True)
    assert got["MEDIUM"] == ("changed", "129.00", "EUR", False)
    assert got["LARGE"] == ("changed", "139.00", "EUR", True)
    assert got["ONE"] == ("changed", "45.50", "EUR", True)
    assert got["AGREE"] == ("changed", "9.90", "EUR", True)
    assert got["BERET"] == ("changed", "25.00", "EUR", True)
    assert got["ANY"][0] == "ambiguous" and "129.00-139.00" in rows["ANY"]["last_error"]
    assert "?variant=" in rows["ANY"]["last_error"]
    assert got["NOVAR"][0] == "not_found" and "no variant 1" in rows["NOVAR"]["last_error"]
    assert got["FREE"][:2] == ("not_found", None)  # price 0 beside sold out is not a price
    assert got["GARBLED"][0] == "invalid_content"
    assert got["PAGE"][0] == "not_found" and "/products/" in rows["PAGE"]["last_error"]
    assert shop.hits["/products/red-rain-coat"] == 0  # the HTML page is never fetched
    assert shop.hits["/products/red-rain-coat.js"] == 5
    assert shop.hits["/fr/products/beret.js"] == 1  # the locale prefix is kept

    # Unchanged endpoints cost no parsing: 304 for the one with an ETag, the body hash for the rest.
    second = pricemon("scrape", "--json").json()
    rows = by_sku(pricemon)
    assert rows["ONE"]["last_outcome"] == "not_modified"
    assert rows["SMALL"]["last_outcome"] == "unchanged"
    assert second["changed"] == 0

    # The variant's price moves: recorded.
    shop.pages["/products/red-rain-coat.js"] = Reply(
        200, coat.replace('"price": 13900', '"price": 12500'), JS
    )
    pricemon("scrape", "--sku", "LARGE")
    assert by_sku(pricemon)["LARGE"]["price"] == "125.00"


def test_extract_reads_a_shopify_listing_and_gtin_mismatch_is_caught(
    tmp_path, shop, pricemon_cli, write_config, sqlite_url
) -> None:
    shop.pages["/products/kettle.js"] = Reply(
        200, product_js("kettle", [variant(7, "Default Title", 1999, sku="K-1", barcode="5901234123457")]), JS
    )
    config = write_config(SCRAPE + competitor_block("acme", shop, SHOPIFY))
    pricemon = pricemon_cli(config, sqlite_url)
    out = pricemon("extract", shop.url("/products/kettle"), "--competitor", "acme", "--json").json()
    assert (out["price"], out["currency"], out["method"], out["sku"], out["gtin"]) == (
        "19.99", "EUR", "shopify", "K-1", "5901234123457"
    )
    setup_catalog(tmp_path, pricemon, [("GT", "acme", shop.url("/products/kettle"))])  # GT has GTIN 4006381333931
    pricemon("scrape")
    assert by_sku(pricemon)["GT"]["last_outcome"] == "mismatch"


def test_shopify_without_a_currency_is_a_config_error(pricemon_cli, write_config, shop) -> None:
    config = write_config(competitor_block("acme", shop, 'platform = "shopify"\n'))
    failed = pricemon_cli(config)("config", "check", expect=None)
    assert failed.exit_code != 0
    assert "currency" in failed.stderr and "competitors[0]" in failed.stderr and "Traceback" not in failed.stderr
