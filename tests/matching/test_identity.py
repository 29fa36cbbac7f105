"""What a page says it is."""

from __future__ import annotations

import json

from monitor.matching.identity import read_identity


def _page(*blocks: dict, extra: str = "") -> bytes:
    scripts = "".join(f'<script type="application/ld+json">{json.dumps(b)}</script>' for b in blocks)
    return f"<html><head>{scripts}</head><body><main><h1>Thing</h1></main>{extra}</body></html>".encode()


def test_graph_brand_object_and_offer_gtin() -> None:
    body = _page(
        {
            "@context": "https://schema.org",
            "@graph": [
                {"@type": "WebPage", "name": "shop"},
                {"@type": "Product", "name": "Thing", "brand": "Acme", "mpn": "AB-12", "sku": "s1",
                 "image": {"url": "/i.jpg"}, "offers": {"@type": "Offer", "price": "9.99", "priceCurrency": "EUR",
                                                        "gtin": "036000291452"}},
            ],
        }
    )  # fmt: skip
    identity = read_identity(body, "https://s.example/p/1")
    assert identity.is_product and identity.brand == "Acme" and identity.mpn == "AB-12"
    assert identity.gtin == "00036000291452" and identity.image_url == "https://s.example/i.jpg"
    assert str(identity.price) == "9.99" and identity.currency == "EUR"


def test_two_different_gtins_and_a_bad_check_digit_are_no_identity() -> None:
    both = _page({"@type": "Product", "name": "Thing", "gtin13": "4006381333931", "gtin12": "036000291452"})
    assert read_identity(both, "https://s.example/p/1").gtin is None
    bad = read_identity(_page({"@type": "Product", "name": "Thing", "gtin13": "4006381333932"}), "https://s.example/")
    assert bad.gtin is None and bad.gtin_raw == "4006381333932"


def test_a_category_page_is_no_product_and_gives_its_links() -> None:
    body = b"""<html><body><a href="/p/1">one</a><a href="/p/2#reviews">two</a><a href="https://other.example/x">x</a>
    <a href="/logo.png">logo</a><a href="/cart" rel="nofollow">cart</a><a href="mailto:a@b">mail</a></body></html>"""
    identity = read_identity(body, "https://s.example/c/1", links=True)
    assert not identity.is_product
    assert identity.links == ["https://s.example/p/1", "https://s.example/p/2"]


def test_the_price_is_extracts_own_reading_from_the_same_parse() -> None:
    """Discovery parses a page once: its price, currency and status are what `extract` reads
    from the bytes alone, with and without stock text rules (which alter the tree)."""
    from pathlib import Path

    from monitor.scrape.extract import ExtractionRules, extract

    fixtures = sorted((Path(__file__).parent.parent / "scrape" / "fixtures").glob("*.html"))
    assert len(fixtures) > 10
    text_rules = ExtractionRules(in_stock="text:in stock", out_of_stock="text:sold out")
    seen = set()
    for path in fixtures:
        body = path.read_bytes()
        for rules in (ExtractionRules(), text_rules):
            identity = read_identity(body, "https://s.example/p/1", rules=rules)
            if not identity.is_product:
                continue
            alone = extract(body, rules, url="https://s.example/p/1")
            assert (identity.price_status, identity.price, identity.currency) == (
                alone.status,
                alone.price if alone.status == "ok" else None,
                alone.currency if alone.status == "ok" else None,
            ), path.name
            seen.add(alone.status)
    assert {"ok", "ambiguous"} <= seen
