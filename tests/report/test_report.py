"""`pricemon report` in every format, on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import re

from tests.report.conftest import HOSTILE_COMPETITOR, HOSTILE_ERROR, HOSTILE_NAME, seed_market


def _chart_data(html: str) -> list[dict]:
    match = re.search(r'<script type="application/json" id="chart-data">(.*?)</script>', html, re.S)
    assert match, "chart data element missing"
    return json.loads(match.group(1))


def test_json_report_has_every_section_in_exact_money(database_url, pricemon_cli):
    seed_market(database_url)
    data = pricemon_cli(None, database_url)("report", "--json").json()

    summary = data["summary"]
    assert summary["products"] == 3 and summary["competitors"] == 3 and summary["listings"] == 4
    # two runs in the period, 9 checks each across the three competitors; http_error and timeouts failed
    assert (summary["runs"], summary["checks"], summary["failed_checks"]) == (2, 18, 10)
    assert summary["failing_listings"] == 1 and summary["stale_listings"] == 1
    # the superseded suggestion does not count: two cuts, of 12.0% and 6.7%
    assert summary["pending_suggestions"] == 2 and (summary["raises"], summary["cuts"]) == (0, 2)
    assert summary["median_change_pct"] == "-9.4" and "impact" not in summary
    # each product against the median of its trusted offers: 49.99 vs 46.00, 30.00 vs 28.00, 9.50 vs 9.00
    assert (summary["above_market"], summary["at_market"], summary["below_market"]) == (3, 0, 0)

    first, second = data["suggestions"]
    assert first["sku"] == "KET-1" and first["name"] == HOSTILE_NAME
    assert first["current_price"] == "49.99" and first["suggested_price"] == "43.99" and first["change_pct"] == "-12.0"
    # no snapshot stored with it: computed from the latest offers (acme's 44.00 is out of stock)
    assert (first["competitor_min"], first["competitor_max"], first["our_rank"]) == ("46.00", "46.00", 2)
    # the strategy's own snapshot is used when present
    assert second["sku"] == "TOA-2" and second["competitor_median"] == "28.00" and second["our_rank"] == 2

    health = {h["name"]: h for h in data["competitors"]}
    assert health["zeta"]["success_rate"] == 0 and health["zeta"]["last_error"] == HOSTILE_ERROR
    assert health["acme"]["outcomes"] == {"changed": 4, "unchanged": 2}
    assert health[HOSTILE_COMPETITOR]["success_rate"] == round(2 / 6, 4)
    [change] = data["recent_changes"]
    assert (change["old_price"], change["new_price"], change["applied_by"]) == ("52.00", "49.99", "lead")

    chart = next(c for c in data["charts"] if c["sku"] == "KET-1")
    series = {s["label"]: s for s in chart["series"]}
    assert set(series) == {"Our price", "acme", "acme (out of stock)", HOSTILE_COMPETITOR}
    assert series["Our price"]["values"][0] == 52.0 and series["Our price"]["values"][-1] == 49.99
    assert 44.0 in [v for v in series["acme (out of stock)"]["values"] if v is not None]
    assert all(len(s["values"]) == len(chart["x"]) for s in chart["series"])
    assert chart["x"] == sorted(chart["x"])


def test_html_escapes_scraped_text_everywhere(market_url, pricemon_cli, tmp_path):
    out = tmp_path / "r.html"
    result = pricemon_cli(None, market_url)("report", "--out", str(out))
    assert "report written to" in result.stdout
    html = out.read_text(encoding="utf-8")

    for hostile in (HOSTILE_NAME, HOSTILE_COMPETITOR, HOSTILE_ERROR, "<b>acme</b>", "evil?a=<b>"):
        assert hostile not in html
    assert "&lt;script&gt;alert(&#39;name&#39;)&lt;/script&gt;Kettle" in html
    assert "&#34;&#39;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    # inside the chart JSON no value can close the script element, and it still decodes
    data_block = re.search(r'id="chart-data">(.*?)</script>', html, re.S).group(1)
    assert "<" not in data_block and ">" not in data_block and "\\u003cimg src=x" in data_block
    assert _chart_data(html)[0]["series"][0]["label"] == "Our price"
    # self-contained: uPlot inlined, nothing fetched from anywhere
    assert "uPlot" in html and not re.search(r'(src|href)="https?:', html)
    assert "default-src 'none'" in html


def test_csv_lists_all_pending_suggestions_by_impact(tmp_path, sqlite_url, pricemon_cli):
    seed_market(sqlite_url, extra_products=120)
    out = tmp_path / "s.csv"
    pricemon_cli(None, sqlite_url)("report", "--out", str(out))
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert len(rows) == 122
    assert rows[0]["sku"] == "KET-1" and rows[0]["reason"].startswith("lowest in-stock: <b>acme</b>")
    impacts = [abs(float(r["impact"])) for r in rows]
    assert impacts == sorted(impacts, reverse=True)


def test_large_catalogue_is_capped_and_the_page_says_so(tmp_path, sqlite_url, pricemon_cli):
    seed_market(sqlite_url, extra_products=120)
    out = tmp_path / "r.html"
    pricemon = pricemon_cli(None, sqlite_url)
    pricemon("report", "--out", str(out), "--limit", "40", "--charts", "5", "--sku", "MUG-3")
    html = out.read_text(encoding="utf-8")
    table = html.split('id="suggestions-table"')[1].split("</table>")[0]
    assert table.count("<tr>") == 41  # header + 40 rows
    charts = _chart_data(html)
    assert len(charts) == 6 and charts[0]["sku"] == "MUG-3"  # the --sku product, then the top 5
    assert "top 40 of 122 pending suggestions" in html
    assert "117 more products have pending suggestions" in html


def test_terminal_view_and_errors(market_url, pricemon_cli, tmp_path):
    pricemon = pricemon_cli(None, market_url)
    shown = pricemon("report").stdout
    assert "2 pending suggestions" in shown and "KET-1" in shown and "zeta" in shown
    assert "<script>" in shown  # the terminal shows the name literally (rich markup is off)

    missing = pricemon("report", "--sku", "NOPE", expect=1)
    assert "unknown SKU(s) for --sku: NOPE" in missing.stderr and "Traceback" not in missing.stderr
    nowhere = pricemon("report", "--out", str(tmp_path / "no" / "r.html"), expect=1)
    assert "does not exist" in nowhere.stderr
    assert not list(tmp_path.glob(".r.html*"))


def test_empty_store_gives_an_empty_report(sqlite_url, pricemon_cli, tmp_path):
    out = tmp_path / "r.html"
    pricemon_cli(None, sqlite_url)("report", "--out", str(out))
    html = out.read_text(encoding="utf-8")
    assert "No pending suggestions." in html and "No competitors yet." in html
    assert _chart_data(html) == []
