"""The report's figures, in every format, from a market priced by `pricemon suggest`: per suggestion
the cost, the margin and our price index before and after; in the summary the raises and cuts, the
median change and how many products are above or below the market. Nothing sums money across
unrelated products."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from tests.pricing.conftest import Market


@pytest.fixture
def priced(tmp_path, pricemon_cli, write_config, database_url) -> Market:
    market = Market(tmp_path, pricemon_cli, write_config, database_url)
    market.products(
        "sku,name,price,currency,cost\n"
        "A-1,Kettle,25.00,EUR,20.00\n"  # cut to the cost floor, rounded: 20.99; median 21.24
        "B-2,Drill,10.00,EUR,\n"  # raise to 12.50, rounded down: 11.99
        "C-3,Lamp,19.99,EUR,\n"  # at the market already: no suggestion
        "D-4,Unwatched,30.00,EUR,\n"  # no offer: neither above nor below
        "E-5,Mug,8.00,EUR,5.00\n"  # cut to 7.00, rounded: 6.99
    )
    market.listings([("A-1", "acme"), ("A-1", "globex"), ("B-2", "acme"), ("C-3", "initech"), ("E-5", "acme"),
                     ("E-5", "globex")])
    market.observe({("A-1", "acme"): "19.99", ("A-1", "globex"): "22.50", ("B-2", "acme"): "12.50",
                    ("C-3", "initech"): "19.99", ("E-5", "acme"): "7.00",
                    ("E-5", "globex"): ("5.00", "EUR", False)})  # out of stock: not the market
    market.pricemon("suggest")
    yield market
    market.store.dispose()


def test_json_report_figures(priced: Market) -> None:
    data = priced.pricemon("report", "--json").json()
    summary = data["summary"]
    assert "impact" not in summary
    assert (summary["pending_suggestions"], summary["raises"], summary["cuts"]) == (3, 1, 2)
    # changes -16.0% (A-1), +19.9% (B-2), -12.6% (E-5): the median is E-5's
    assert summary["median_change_pct"] == "-12.6"
    # A-1 25.00 > 21.24 and E-5 8.00 > 7.00 above, B-2 10.00 < 12.50 below, C-3 at 19.99
    assert (summary["above_market"], summary["at_market"], summary["below_market"]) == (2, 1, 1)

    rows = {r["sku"]: r for r in data["suggestions"]}
    figures = ("cost", "margin_before_pct", "margin_after_pct", "competitor_median", "price_index_before",
               "price_index_after")
    # margin = (price - cost) / price; index = price / median x 100
    assert tuple(rows["A-1"][k] for k in figures) == ("20.00", "20.0", "4.7", "21.24", "117.7", "98.8")
    assert tuple(rows["B-2"][k] for k in figures) == (None, None, None, "12.50", "80.0", "95.9")
    assert tuple(rows["E-5"][k] for k in figures) == ("5.00", "37.5", "28.5", "7.00", "114.3", "99.9")


def test_csv_html_and_terminal_show_the_same_figures(priced: Market, tmp_path, monkeypatch) -> None:
    out = tmp_path / "all.csv"
    priced.pricemon("report", "--out", str(out))
    rows = {r["sku"]: r for r in csv.DictReader(io.StringIO(out.read_text(encoding="utf-8")))}
    assert (rows["A-1"]["cost"], rows["A-1"]["margin_before_pct"], rows["A-1"]["margin_after_pct"]) == (
        "20.00", "20.0", "4.7")
    assert (rows["A-1"]["price_index_before"], rows["A-1"]["price_index_after"]) == ("117.7", "98.8")
    assert (rows["B-2"]["cost"], rows["B-2"]["margin_before_pct"]) == ("", "")

    page = tmp_path / "r.html"
    priced.pricemon("report", "--out", str(page))
    html = page.read_text(encoding="utf-8")
    assert "impact per unit sold" not in html
    card = lambda name: re.search(rf'id="{name}"><div class="value">(.*?)</div>', html).group(1)  # noqa: E731
    assert (card("moves"), card("median-change"), card("above-market"), card("below-market")) == (
        "1 / 2", "-12.6%", "2", "1")
    table = html.split('id="suggestions-table"')[1].split("</table>")[0]
    assert "<th class=\"num\">Cost</th>" in table and ">Margin</th>" in table and ">Price index</th>" in table
    a1 = next(r for r in table.split("<tr>") if "<td>A-1</td>" in r)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", a1, re.S)
    assert cells[5] == ""  # no demand model: no expected profit
    assert cells[6:12] == ["20.00", "20.0% → 4.7%", "19.99", "21.24", "22.50", "117.7 → 98.8"]

    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: every cell on one line
    shown = priced.pricemon("report").stdout
    assert "3 pending suggestions (1 raises, 2 cuts, median change -12.6%)" in shown
    assert "2 products above the market median, 1 below, 1 at it" in shown
    a1 = next(line for line in shown.splitlines() if "A-1" in line)
    cells = [c.strip() for c in a1.split("│")]
    assert cells[6] == ""  # no demand model: no expected profit
    assert cells[7:11] == ["20.00", "20.0->4.7%", "19.99/21.24/22.50", "117.7->98.8"]


def test_an_empty_store_has_no_median_change(sqlite_url, pricemon_cli) -> None:
    summary = json.loads(pricemon_cli(None, sqlite_url)("report", "--json").stdout)["summary"]
    assert (summary["raises"], summary["cuts"], summary["median_change_pct"]) == (0, 0, None)
    assert (summary["above_market"], summary["at_market"], summary["below_market"]) == (0, 0, 0)
