"""Discovery against a real shop on 127.0.0.1: sitemaps (index, plain, gzip), robots.txt, crawling."""

from __future__ import annotations

import sqlite3

from tests.matching.conftest import ITEMS


def _pages(tmp_path) -> dict[str, dict]:
    with sqlite3.connect(tmp_path / "pricemon.db") as db:
        db.row_factory = sqlite3.Row
        return {r["url"].split("/p/")[-1]: dict(r) for r in db.execute("SELECT * FROM discovered_pages")}


def test_sitemap_index_plain_and_gzip_robots_obeyed(setup) -> None:
    pricemon, shop, tmp_path = setup
    summary = pricemon("discover", "acme", "--json").json()
    assert summary["sitemaps"] == 3  # the index from robots.txt, a plain sitemap and a gzipped one
    assert summary["products"] == len(ITEMS)
    assert shop.hits["/sitemap-2.xml.gz"] == 1
    assert shop.hits["/private/p/secret"] == 0, "robots.txt disallows /private/"
    assert summary["outcomes"]["blocked_by_robots"] == 1
    assert summary["outcomes"]["off_site"] == 1  # a sitemap URL on another host is not fetched
    pages = _pages(tmp_path)
    assert set(pages) == {i.slug for i in ITEMS}
    xm4 = pages["sony-xm4-black"]
    # the page's own product, not the related one beside it; GTIN-13 kept as GTIN-14
    assert xm4["gtin"] == "04548736112100" and xm4["mpn"] == "WH1000XM4/B" and xm4["brand"] == "Sony"
    assert xm4["shop_sku"] == "shop-sony-xm4-black" and xm4["price"] == 279.0 and xm4["currency"] == "EUR"
    assert xm4["image_url"] == shop.url("/img/sony-xm4-black.jpg")
    drill = pages["bosch-drill"]  # microdata
    assert drill["mpn"] == "06019H5200" and drill["brand"] == "Bosch" and drill["price"] == 149.0


def test_crawl_follows_category_pagination_within_the_shop(setup) -> None:
    pricemon, shop, _tmp_path = setup
    summary = pricemon("discover", "acme", "--start", shop.url("/c/audio/1"), "--json").json()
    assert summary["products"] == len(ITEMS)
    assert shop.hits["/c/audio/3"] == 1  # the third category page, reached by rel=next links
    assert shop.hits["/private/p/secret"] == 0 and shop.hits["/cart"] == 0  # robots.txt; nofollow
    assert shop.hits["/sitemap_index.xml"] == 0  # --start: no sitemaps


def test_limit_stops_discovery(setup) -> None:
    pricemon, shop, _ = setup
    summary = pricemon("discover", "acme", "--limit", "2", "--json").json()
    assert summary["products"] == 2
    assert sum(shop.hits[f"/p/{i.slug}"] for i in ITEMS) == 2


def test_a_gone_page_proposes_its_accepted_match_for_rematching(setup) -> None:
    pricemon, shop, _tmp_path = setup
    pricemon("discover", "acme")
    accepted = pricemon("matches", "--status", "accepted", "--json").json()
    xm4 = next(m for m in accepted if m["sku"] == "XM4-B")
    # the shop drops the page, and moves the product to a new URL
    item = ITEMS[0]
    page = shop.pages.pop(f"/p/{item.slug}")
    shop.pages["/p/sony-xm4-black-new"] = page
    sitemap = shop.pages["/sitemap-1.xml"]
    sitemap.body = sitemap.body.replace(f"/p/{item.slug}<", "/p/sony-xm4-black-new<")  # type: ignore[union-attr]
    summary = pricemon("discover", "acme", "--json").json()
    assert summary["gone"] == 1 and summary["rematch"] == 1
    rows = {m["id"]: m for m in pricemon("matches", "--json").json()}
    # the new page has the product's GTIN: accepted at once, and it supersedes the gone one
    new = [m for m in rows.values() if m["sku"] == "XM4-B" and m["page"]["url"].endswith("-new")]
    assert [m["status"] for m in new] == ["accepted"]
    old = rows[xm4["id"]]
    assert old["status"] == "rejected" and old["decided_by"] == f"superseded by match {new[0]['id']}"
    assert old["page"]["status"] == "gone"
    listings = {row["sku"]: row["url"] for row in pricemon("listings", "--json").json()}
    assert listings["XM4-B"] == shop.url("/p/sony-xm4-black-new")


def test_a_gone_page_without_a_successor_waits_for_review(setup) -> None:
    pricemon, shop, _ = setup
    pricemon("discover", "acme")
    shop.pages.pop("/p/bosch-drill")
    pricemon("discover", "acme")
    rematch = [m for m in pricemon("matches", "--status", "proposed", "--json").json() if m["rematch"]]
    assert [(m["sku"], m["rematch"]) for m in rematch] == [("DRILL", "page gone (HTTP 404)")]
    # accepting it again is refused: its page is gone
    out = pricemon("matches", "accept", str(rematch[0]["id"]), expect=1)
    assert "is gone" in out.stderr


def test_a_page_that_now_shows_another_product_is_rematched(setup) -> None:
    pricemon, shop, _ = setup
    pricemon("discover", "acme")
    # the silver headphones' URL now shows the black ones' twin with another GTIN and name
    from tests.matching.conftest import Item, product_page

    shop.pages["/p/sony-xm4-silver"] = product_page(
        Item("sony-xm4-silver", "Sony WH-1000XM5 Headphones Silver", "Sony", "349.00", gtin="4548736132610")
    )
    summary = pricemon("discover", "acme", "--json").json()
    assert summary["changed"] == 1 and summary["rematch"] == 1
    flagged = [m for m in pricemon("matches", "--json").json() if m["rematch"]]
    assert [m["sku"] for m in flagged] == ["XM4-S"] and "another product" in flagged[0]["rematch"]


def test_bad_url_and_unknown_competitor_are_clear_errors(setup) -> None:
    pricemon, _, _ = setup
    assert "unknown competitor 'nope'" in pricemon("discover", "nope", expect=1).stderr
    assert "--sitemap" in pricemon("discover", "acme", "--sitemap", "ftp://x/s.xml", expect=1).stderr
