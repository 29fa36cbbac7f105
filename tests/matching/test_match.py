"""Scoring, identifiers and review decisions."""

from __future__ import annotations

import sqlite3
from decimal import Decimal

import pytest

from monitor.matching.attributes import conflicts, title_attributes
from monitor.matching.identifiers import normalize_gtin, normalize_mpn
from monitor.matching.match import Matcher, PageRecord, ProductRecord
from monitor.settings import MatchingSettings
from tests.conftest import Pricemon


@pytest.mark.parametrize(
    ("raw", "gtin"),
    [
        ("4006381333931", "04006381333931"),  # EAN-13
        ("04006381333931", "04006381333931"),  # GTIN-14
        ("036000291452", "00036000291452"),  # UPC-A
        ("96385074", "00000096385074"),  # EAN-8
        ("0-306-40615-2", "09780306406157"),  # ISBN-10 -> its ISBN-13
        ("978-0-306-40615-7", "09780306406157"),
        ("gtin: 4006381333931", "04006381333931"),
        ("4006381333932", None),  # wrong check digit
        ("0-306-40615-3", None),
        ("00000000000000", None),
        ("12345", None),
        ("ABC4006381333931", None),
    ],
)
def test_gtin_check_digits_and_normalisation(raw: str, gtin: str | None) -> None:
    assert normalize_gtin(raw) == gtin


def test_mpn_normalisation() -> None:
    assert normalize_mpn("WH-1000XM4/B") == normalize_mpn("wh1000xm4 b") == "WH1000XM4B"
    assert normalize_mpn("x-") is None


@pytest.mark.parametrize(
    ("ours", "theirs", "conflict"),
    [
        ("Samsung 980 PRO 1TB NVMe SSD", "Samsung SSD 980 PRO 1 TB", None),
        ("Samsung 980 PRO 1TB NVMe SSD", "Samsung 980 PRO 2TB NVMe", "storage"),
        ("Coca-Cola Zero 6 x 330ml", "Coca Cola Zero 330 ml, pack of 12", "pack"),
        ("Coca-Cola Zero 330ml", "Coca-Cola Zero 500 ml", "volume"),
        ("Sony WH-1000XM4 Black", "Sony WH1000XM4 wireless headphones, Silver", "colour"),
        ("Sony WH-1000XM4 Black", "Sony WH-1000XM5 black", "model code"),
        ("Apple iPhone 13 128GB 5G", "iPhone 13 128 GB", None),  # 5G is no weight
        ('LG OLED55C1 55" TV', "LG OLED55C1 TV", None),  # a title leaving out the size agrees
    ],
)
def test_attributes_must_agree(ours: str, theirs: str, conflict: str | None) -> None:
    found = conflicts(title_attributes(ours), title_attributes(theirs))
    if conflict is None:
        assert found == []
    else:
        assert [c.split(":")[0] for c in found] == [conflict]


def _product(pid: int, name: str, brand: str, price: str, gtin: str | None = None, mpn: str | None = None):
    return ProductRecord(pid, f"S{pid}", name, brand, normalize_mpn(mpn), normalize_gtin(gtin), Decimal(price), "EUR")


MATCHER_PRODUCTS = [
    _product(1, "Samsung 980 PRO 1TB NVMe SSD", "Samsung", "99.00"),
    _product(2, "Samsung 980 PRO 2TB NVMe SSD", "Samsung", "169.00"),
    _product(3, "Sony WH-1000XM4 Headphones Black", "Sony", "279.00", gtin="4548736112100", mpn="WH1000XM4/B"),
    _product(4, "Sony WH-1000XM4 Headphones Silver", "Sony", "279.00", gtin="4548736112117", mpn="WH1000XM4/S"),
]


def _page(name: str, brand: str | None, price: str | None, gtin: str | None = None, mpn: str | None = None):
    return PageRecord(
        1, name, brand, normalize_mpn(mpn), normalize_gtin(gtin), Decimal(price) if price else None, "EUR"
    )


def test_exact_gtin_scores_one_and_a_different_gtin_excludes() -> None:
    matcher = Matcher(MATCHER_PRODUCTS, MatchingSettings())
    best = matcher.score(_page("Sony headphones", None, "270", gtin="4548736112100"))
    assert [(s.product_id, s.score, s.method) for s in best] == [(3, 1.0, "gtin")]
    # a page with another valid GTIN is not our product, however alike its title
    other = matcher.score(_page("Sony WH-1000XM4 Headphones Black", "Sony", "270", gtin="4006381333931"))
    assert all(s.product_id != 3 for s in other)


def test_brand_and_mpn_score_high_and_title_alone_stays_below_auto_accept() -> None:
    matcher = Matcher(MATCHER_PRODUCTS, MatchingSettings())
    by_mpn = matcher.score(_page("Kopfhörer schwarz", "SONY", "279", mpn="wh-1000xm4-b"))
    assert (by_mpn[0].product_id, by_mpn[0].score, by_mpn[0].method) == (3, 0.99, "mpn")
    # the same MPN under another brand is not it
    assert all(s.method != "mpn" for s in matcher.score(_page("Headphones", "Acme", "279", mpn="WH1000XM4B")))
    by_title = matcher.score(_page("Samsung SSD 980 PRO 1 TB M.2", "Samsung", "97.00"))
    assert by_title[0].product_id == 1 and by_title[0].method == "title"
    assert by_title[0].score < MatchingSettings().auto_accept
    assert by_title[0].why["title_score"] > 0.7


def test_look_alikes_differing_in_one_attribute_are_not_proposed() -> None:
    matcher = Matcher(MATCHER_PRODUCTS, MatchingSettings())
    scored = matcher.score(_page("Samsung 980 PRO 2TB NVMe SSD", "Samsung", "165.00"))
    assert [s.product_id for s in scored] == [2]  # not the 1TB one
    silver = matcher.score(_page("Sony WH-1000XM4 Headphones Silver", "Sony", "279"))
    assert [s.product_id for s in silver] == [4]


def test_an_implausible_price_lowers_the_score_and_says_why() -> None:
    matcher = Matcher(MATCHER_PRODUCTS, MatchingSettings(min_score=0.1))
    fair = matcher.score(_page("Samsung SSD 980 PRO 1 TB M.2", "Samsung", "97.00"))[0]
    cheap = matcher.score(_page("Samsung SSD 980 PRO 1 TB M.2", "Samsung", "9.70"))[0]
    assert cheap.score < fair.score and "implausible" in cheap.why["price"]


# --- review through the CLI ---------------------------------------------------------------------


def _listing_rows(db_path) -> list[tuple]:
    with sqlite3.connect(db_path) as db:
        return list(
            db.execute(
                "SELECT p.sku, c.name, l.url, l.active, l.consecutive_failures, l.etag, l.last_modified, "
                "l.body_hash, l.next_check_at, l.last_outcome, l.latest_history_id "
                "FROM listings l JOIN products p ON p.id = l.product_id JOIN competitors c ON c.id = l.competitor_id "
                "ORDER BY p.sku"
            )
        )


def test_accepting_makes_the_listing_import_listings_makes(setup, tmp_path_factory) -> None:
    pricemon, shop, tmp_path = setup
    pricemon("discover", "acme")
    proposed = pricemon("matches", "--status", "proposed", "--json").json()
    ssd = next(m for m in proposed if m["sku"] == "SSD-1")
    assert ssd["method"] == "title" and ssd["page"]["url"] == shop.url("/p/ssd-1tb")
    assert ssd["product"]["name"] == "Samsung SSD 980 PRO 1 TB NVMe M.2" and ssd["page"]["image_url"]
    out = pricemon("matches", "accept", str(ssd["id"]), "--json").json()
    assert out["decided"] == [ssd["id"]] and out["listings"]["inserted"] == 1
    accepted = pricemon("matches", "--status", "accepted", "--json").json()
    rows = _listing_rows(tmp_path / "pricemon.db")
    assert len(rows) == len(accepted) == 4

    # the same listings imported from a CSV into a fresh database
    other = tmp_path_factory.mktemp("import")
    config = (tmp_path / "pricemon.toml").read_text().replace(str(tmp_path / "pricemon.db"), str(other / "p.db"))
    (other / "pricemon.toml").write_text(config)
    importer = Pricemon(config=other / "pricemon.toml")
    importer("import", "products", str(tmp_path / "products.csv"))
    (other / "listings.csv").write_text(
        "sku,competitor,url\n" + "".join(f"{m['sku']},acme,{m['page']['url']}\n" for m in accepted)
    )
    importer("import", "listings", str(other / "listings.csv"))
    assert _listing_rows(other / "p.db") == rows


def test_reject_and_bulk_accept_and_errors(setup) -> None:
    pricemon, _, _ = setup
    pricemon("discover", "acme")
    ssd = next(m for m in pricemon("matches", "--status", "proposed", "--json").json() if m["sku"] == "SSD-1")
    assert pricemon("matches", "reject", str(ssd["id"]), "--json").json()["decided"] == [ssd["id"]]
    # rejected pairings are not proposed again by the next discovery
    pricemon("discover", "acme")
    assert not [m for m in pricemon("matches", "--status", "proposed", "--json").json() if m["sku"] == "SSD-1"]
    assert pricemon("matches", "accept", "--min-score", "0.5", "--json").json()["decided"] == []
    assert "unknown match id(s): 999" in pricemon("matches", "accept", "999", expect=1).stderr
    assert "not both" in pricemon("matches", "accept", "1", "--min-score", "0.5", expect=2).stderr
    # an accepted match cannot be rejected while its listing watches the page
    accepted = pricemon("matches", "--status", "accepted", "--json").json()[0]
    assert "accepted" in pricemon("matches", "reject", str(accepted["id"]), expect=1).stderr


def test_two_pages_with_one_gtin_are_a_conflict_for_review(setup) -> None:
    pricemon, shop, _ = setup
    # the shop lists the black headphones twice (a duplicate page)
    shop.pages["/p/sony-xm4-black-dup"] = shop.pages["/p/sony-xm4-black"]
    sitemap = shop.pages["/sitemap-1.xml"]
    sitemap.body = sitemap.body.replace(
        "</urlset>", f"<url><loc>{shop.url('/p/sony-xm4-black-dup')}</loc></url></urlset>"
    )
    pricemon("discover", "acme")
    rows = [m for m in pricemon("matches", "--json").json() if m["sku"] == "XM4-B"]
    assert sorted(m["status"] for m in rows) == ["proposed", "proposed"], "never resolved silently"
    assert all(m["score"] == 1.0 and "product also fits" in m["why"]["review"][0] for m in rows)
    # accepting both at once is refused; one is fine, and the other one then conflicts with it
    ids = [str(m["id"]) for m in rows]
    assert "another page" in pricemon("matches", "accept", *ids, expect=1).stderr
    pricemon("matches", "accept", ids[0])
    assert "already has another page" in pricemon("matches", "accept", ids[1], expect=1).stderr


def test_auto_accept_above_one_means_review_everything(setup) -> None:
    pricemon, _shop, tmp_path = setup
    config = tmp_path / "pricemon.toml"
    config.write_text(config.read_text() + "\n[matching]\nauto_accept = 1.01\n")
    pricemon("discover", "acme")
    assert pricemon("matches", "--status", "accepted", "--json").json() == []
    assert pricemon("listings", "--json").json() == []
