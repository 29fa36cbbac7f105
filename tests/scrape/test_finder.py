"""`pricemon extract --find PRICE`: which elements show a price, a short stable selector for each
and what extract reads with it; over several pages of one shop, the selector that reads them all.
Also `--in-stock` / `--out-of-stock` and the text each candidate was read from."""

from __future__ import annotations

PRODUCT = """<!doctype html><html><head><title>Kettle | Shop</title></head><body>
<header class="site-header"><span class="cart-total">$0.00</span></header>
<main id="product-main" class="product">
  <h1 class="product-title">Kettle</h1>
  <div class="price-box">
    <span class="price price--sale">$229<sup>99</sup></span>
    <del class="price price--old">$299.99</del>
  </div>
  <p class="stock-note">{stock}</p>
</main>
<section class="related">
  <div class="card" style="x"><span class="price">$18.50</span></div>
  <div class="card"><span class="price">$229.99</span><span class="card-name">Same price, other kettle</span></div>
</section>
</body></html>"""


def shop_page(price: str, *, decoy: str = "5,00 €", tag_id: str = "p-4711") -> str:
    return f"""<html><body><div class="product-info">
<span id="{tag_id}" class="amount js-price-{tag_id[2:]}99">{price}</span></div>
<div class="upsell"><span class="amount">{decoy}</span></div></body></html>"""


def test_find_lists_the_elements_showing_the_price_with_a_selector_that_reads_it(pricemon_cli, tmp_path) -> None:
    page = tmp_path / "kettle.html"
    page.write_text(PRODUCT.format(stock="In stock"), encoding="utf-8")
    pricemon = pricemon_cli()
    out = pricemon("extract", str(page), "--find", "229.99", "--json").json()
    matches = out["pages"][0]["matches"]
    texts = sorted(m["text"] for m in matches)
    assert texts == ["$229.99", "$229.99"]  # the main price (cents raised) and the related card's
    main = next(m for m in matches if "price--sale" in m["element"])
    assert main["extract"]["status"] == "ok" and main["extract"]["price"] == "229.99"
    selector = out["proposal"]
    assert selector == main["selector"]
    assert "nth" not in selector and len(selector) <= 40
    # The proposal reads the price with extract itself, and `.price` alone would not (ambiguous).
    assert pricemon("extract", str(page), "--selector", selector, "--json").json()["price"] == "229.99"
    assert pricemon("extract", str(page), "--selector", ".price", expect=3).exit_code == 3

    human = pricemon("extract", str(page), "--find", "229.99")
    assert selector in human.stdout and "[competitors.selectors] price =" in human.stdout


def test_find_over_several_pages_proposes_the_selector_that_reads_every_one(pricemon_cli, tmp_path) -> None:
    first = tmp_path / "a.html"
    second = tmp_path / "b.html"
    first.write_text(shop_page("229.99 €", decoy="229.99 €"), encoding="utf-8")
    second.write_text(shop_page("18,50 €", tag_id="p-815"), encoding="utf-8")
    pricemon = pricemon_cli()
    out = pricemon("extract", str(first), str(second), "--find", "229.99", "--find", "18.50", "--json").json()
    assert out["proposal"] == ".product-info .amount"
    assert [p["with_proposal"]["price"] for p in out["pages"]] == ["229.99", "18.50"]
    assert all("js-price" not in m["selector"] and "4711" not in m["selector"]
               for p in out["pages"] for m in p["matches"] if m["selector"])

    # A price no element shows: nothing to propose, said plainly.
    missing = pricemon("extract", str(first), str(second), "--find", "229.99", "--find", "77.00", expect=3)
    assert "no selector reads 229.99, 77.00 on every page" in missing.stderr
    wrong = pricemon("extract", str(first), str(second), "--find", "229.99", expect=2)
    assert "one --find PRICE per SOURCE" in wrong.stderr
    bad = pricemon("extract", str(first), "--find", "cheap", expect=None)
    assert bad.exit_code != 0 and "--find: expected a price" in bad.stderr and "Traceback" not in bad.stderr


def test_stock_rules_and_the_text_each_candidate_was_read_from(pricemon_cli, tmp_path) -> None:
    page = tmp_path / "sold.html"
    page.write_text(PRODUCT.format(stock="Sold out"), encoding="utf-8")
    pricemon = pricemon_cli()
    sel = ".product .price"
    out = pricemon("extract", str(page), "--selector", sel, "--out-of-stock", "text:sold out", "--json").json()
    assert (out["price"], out["in_stock"]) == ("229.99", False)
    assert [c["text"] for c in out["candidates"]] == ["$229.99"]
    instock = pricemon("extract", str(page), "--selector", sel, "--in-stock", "p.stock-note", "--json").json()
    assert instock["in_stock"] is True
    ambiguous = pricemon("extract", str(page), "--selector", ".price", "--json", expect=3).json()
    assert sorted(c["text"] for c in ambiguous["candidates"]) == ["$18.50", "$229.99", "$229.99"]
    bad = pricemon("extract", str(page), "--in-stock", "text:", expect=None)
    assert bad.exit_code != 0 and "--in-stock" in bad.stderr and "Traceback" not in bad.stderr
    bad_css = pricemon("extract", str(page), "--out-of-stock", "p[", expect=None)
    assert bad_css.exit_code != 0 and "--out-of-stock" in bad_css.stderr
