"""`pricemon extract` on local files and on URLs served by a real local server."""

from __future__ import annotations

from pathlib import Path

from .conftest import Reply, jsonld_page, plain_page

FIXTURES = Path(__file__).parent / "fixtures"


def test_extract_file_json(pricemon_cli, tmp_path) -> None:
    page = tmp_path / "page.html"
    page.write_text(jsonld_page("19.99", "EUR", stock="OutOfStock"), encoding="utf-8")
    out = pricemon_cli()("extract", str(page), "--json").json()
    assert out["price"] == "19.99"
    assert out["currency"] == "EUR"
    assert out["in_stock"] is False
    assert out["method"] == "jsonld"
    assert out["candidates"][0]["price"] == "19.99"


def test_extract_file_with_selector_options(pricemon_cli, tmp_path) -> None:
    page = tmp_path / "plain.html"
    page.write_text(plain_page("1.299,99"), encoding="utf-8")
    pricemon = pricemon_cli()
    missing = pricemon("extract", str(page), "--json", expect=3)
    assert "not_found" in missing.stderr
    out = pricemon(
        "extract",
        str(page),
        "--selector",
        ".product-price .now",
        "--currency",
        "chf",
        "--decimal-separator",
        ",",
        "--json",
    ).json()
    assert (out["price"], out["currency"], out["method"]) == ("1299.99", "CHF", "selector")
    human = pricemon("extract", str(page), "--selector", ".product-price .now", "--currency", "EUR")
    assert "1299.99 EUR" in human.stdout


def test_extract_ambiguous_and_missing_file(pricemon_cli, tmp_path) -> None:
    pricemon = pricemon_cli()
    ambiguous = pricemon("extract", str(FIXTURES / "jsonld_two_offers_different.html"), expect=3)
    assert "ambiguous" in ambiguous.stderr and "Traceback" not in ambiguous.stderr
    gone = pricemon("extract", str(tmp_path / "nope.html"), expect=None)
    assert gone.exit_code != 0 and "no such file" in gone.stderr
    bad = pricemon("extract", str(tmp_path / "nope.html"), "--selector", "div[", expect=2)
    assert "selector" in bad.stderr.lower()


def test_extract_url_through_the_fetcher(pricemon_cli, write_config, shop) -> None:
    shop.pages["/p/1"] = jsonld_page("7.50", "GBP")
    shop.pages["/private/2"] = jsonld_page("8.50", "GBP")
    shop.pages["/p/down"] = Reply(404, "no")
    config = write_config(
        f"""
[scrape]
retries = 0

[[competitors]]
name = "acme"
base_url = "{shop.base}/"
user_agent = "acme-bot/2"
"""
    )
    pricemon = pricemon_cli(config)
    out = pricemon("extract", shop.url("/p/1"), "--competitor", "acme", "--json").json()
    assert (out["price"], out["currency"], out["in_stock"], out["method"]) == ("7.50", "GBP", True, "jsonld")
    assert shop.user_agents[-1] == "acme-bot/2"
    blocked = pricemon("extract", shop.url("/private/2"), expect=None)
    assert blocked.exit_code != 0 and "blocked_by_robots" in blocked.stderr
    assert shop.hits["/private/2"] == 0
    down = pricemon("extract", shop.url("/p/down"), expect=None)
    assert down.exit_code != 0 and "gone" in down.stderr
    unknown = pricemon("extract", shop.url("/p/1"), "--competitor", "nobody", expect=None)
    assert unknown.exit_code != 0 and "unknown competitor" in unknown.stderr


def test_scrape_prints_a_summary_table(tmp_path, shop, pricemon_cli, write_config, sqlite_url) -> None:
    shop.pages["/p/1"] = jsonld_page("5.00")
    config = write_config(
        f"""
[[competitors]]
name = "acme"
base_url = "{shop.base}/"
min_delay = "0s"
"""
    )
    pricemon = pricemon_cli(config, sqlite_url)
    (tmp_path / "p.csv").write_text("sku,name,price,currency\nA,Kettle,5.00,EUR\n", encoding="utf-8")
    (tmp_path / "l.csv").write_text(f"sku,competitor,url\nA,acme,{shop.url('/p/1')}\n", encoding="utf-8")
    pricemon("import", "products", str(tmp_path / "p.csv"))
    pricemon("import", "listings", str(tmp_path / "l.csv"))
    out = pricemon("scrape")
    assert "acme" in out.stdout and "1 checked, 1 changed" in out.stdout
    unknown = pricemon("scrape", "--competitor", "nobody", expect=1)
    assert "unknown competitor" in unknown.stderr
