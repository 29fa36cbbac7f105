"""What counts as an offer: a suspicious price is trusted once a second check sees it again (a 304
or an unchanged body included), and a page that is gone, shows another product or has no price
stops feeding its old price to strategies and the report at once. Real HTTP server on 127.0.0.1."""

from __future__ import annotations

import pytest

from .conftest import Reply, jsonld_page
from .test_sweep import SCRAPE, by_sku, competitor_block, setup_catalog

GTIN = "4006381333931"  # the product GT's GTIN in setup_catalog
OTHER_GTIN = "5901234123457"


def _suggested(pricemon) -> dict[str, str]:
    pricemon("suggest", "--json")
    return {row["sku"]: row["suggested_price"] for row in pricemon("suggestions", "--json").json()}


@pytest.mark.parametrize("second_check", ["not_modified", "unchanged"])
def test_a_suspicious_price_is_confirmed_by_a_304_or_an_unchanged_body(
    tmp_path, shop, pricemon_cli, write_config, database_url, second_check
) -> None:
    def page(price: str) -> str | Reply:
        # A plain str gets an ETag and answers If-None-Match with 304; a Reply has no validators,
        # so the second check reads the same body and matches it by hash.
        body = jsonld_page(price)
        return body if second_check == "not_modified" else Reply(200, body)

    shop.pages["/p/kettle"] = page("20.00")
    config = write_config(SCRAPE + competitor_block("acme", shop))
    pricemon = pricemon_cli(config, database_url)
    pricemon("db", "upgrade")
    setup_catalog(tmp_path, pricemon, [("K", "acme", shop.url("/p/kettle"))])
    pricemon("scrape")

    shop.pages["/p/kettle"] = page("8.00")  # -60%: more than scrape.suspicious_change (0.5)
    pricemon("scrape")
    row = by_sku(pricemon)["K"]
    assert (row["last_outcome"], row["price"], row["suspicious"]) == ("suspicious", "8.00", True)
    assert "K" not in _suggested(pricemon)  # not trusted yet: no suggestion from it

    summary = pricemon("scrape", "--json").json()  # the same page again
    row = by_sku(pricemon)["K"]
    assert row["suspicious"] is False and row["price"] == "8.00"
    assert row["last_outcome"] == "changed" and summary["changed"] == 1
    assert shop.hits["/p/kettle"] == 3
    assert _suggested(pricemon)["K"] == "7.99"  # the confirmed price is an offer now

    # Confirmed once: the next check of the same page is an ordinary one.
    pricemon("scrape")
    assert by_sku(pricemon)["K"]["last_outcome"] == second_check


@pytest.mark.parametrize(
    ("now_serves", "outcome"),
    [
        (jsonld_page("19.00", gtin=OTHER_GTIN), "mismatch"),
        (Reply(410, "gone"), "gone"),
        ("<html><body><p>No price any more</p></body></html>", "not_found"),
        (
            jsonld_page("19.00", gtin=GTIN).replace(
                "</head>", '<meta property="product:price:amount" content="25.00"></head>'
            ),
            "ambiguous",
        ),
    ],
)
def test_a_listing_whose_latest_check_failed_that_way_is_no_offer(
    tmp_path, shop, pricemon_cli, write_config, database_url, now_serves, outcome
) -> None:
    shop.pages["/p/gt"] = jsonld_page("15.00", gtin=GTIN)
    config = write_config(SCRAPE + competitor_block("acme", shop))
    pricemon = pricemon_cli(config, database_url)
    pricemon("db", "upgrade")
    setup_catalog(tmp_path, pricemon, [("GT", "acme", shop.url("/p/gt"))])
    pricemon("scrape")
    assert _suggested(pricemon) == {"GT": "14.99"}

    shop.pages["/p/gt"] = now_serves
    pricemon("scrape")
    assert by_sku(pricemon)["GT"]["last_outcome"] == outcome
    # No offer left: the pending suggestion made from the old price is withdrawn, none replaces it.
    assert _suggested(pricemon) == {}
    statuses = [s["status"] for s in pricemon("suggestions", "--status", "all", "--json").json()]
    assert statuses == ["superseded"]
    # Its history stays.
    assert [h["price"] for h in pricemon("history", "GT", "--json").json()] == ["15.00"]

    # The page is right again: it is an offer again.
    shop.pages["/p/gt"] = jsonld_page("15.00", gtin=GTIN)
    pricemon("scrape")
    assert _suggested(pricemon) == {"GT": "14.99"}


def test_a_timeout_keeps_the_last_price_as_an_offer(tmp_path, shop, pricemon_cli, write_config, sqlite_url) -> None:
    """Only the outcomes that say the page is no longer our product's offer withdraw it; a
    passing server error does not (staleness limits how long an old price is used)."""
    shop.pages["/p/gt"] = jsonld_page("15.00", gtin=GTIN)
    pricemon = pricemon_cli(write_config(SCRAPE + competitor_block("acme", shop)), sqlite_url)
    setup_catalog(tmp_path, pricemon, [("GT", "acme", shop.url("/p/gt"))])
    pricemon("scrape")
    shop.pages["/p/gt"] = Reply(503, "busy")
    pricemon("scrape")
    assert by_sku(pricemon)["GT"]["last_outcome"] == "http_error"
    assert _suggested(pricemon) == {"GT": "14.99"}
