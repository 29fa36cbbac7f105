"""The HTML report in a real headless Chromium: it loads offline without console errors, the
suggestions table and the charts render, and hostile scraped text shows as text."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import CHROMIUM, require_chromium
from tests.report.conftest import HOSTILE_COMPETITOR, HOSTILE_ERROR, HOSTILE_NAME

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _browser_or_skip():
    require_chromium()
    from playwright.sync_api import sync_playwright

    return sync_playwright


def test_report_renders_in_chromium_with_hostile_text_shown_as_text(market_url, pricemon_cli, tmp_path):
    sync_playwright = _browser_or_skip()
    out = tmp_path / "report.html"
    pricemon_cli(None, market_url)("report", "--out", str(out))

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM if os.path.exists(CHROMIUM) else None, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            problems: list[str] = []
            dialogs: list[str] = []
            requests: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("request", lambda r: requests.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
            page.goto(out.as_uri())
            page.wait_for_selector("#chart-0 canvas")

            assert problems == [] and dialogs == [] and requests == []
            rows = page.locator("#suggestions-table tbody tr")
            assert rows.count() == 2
            assert rows.nth(0).locator("td").nth(0).inner_text() == "KET-1"
            # The hostile strings are visible as literal text, not interpreted
            assert HOSTILE_NAME in page.locator("#suggestions-table").inner_text()
            assert HOSTILE_COMPETITOR in page.locator("#health-table").inner_text()
            assert HOSTILE_ERROR in page.locator("#health-table").inner_text()
            assert page.locator("img").count() == 0
            assert page.locator("script").count() == 3  # chart data, uPlot, our chart code: nothing injected

            canvases = page.locator(".chart canvas")
            assert canvases.count() >= 2
            box = canvases.first.bounding_box()
            assert box is not None and box["width"] > 200 and box["height"] > 100
            legend = page.locator("#chart-0 .u-legend").inner_text()
            assert "Our price" in legend and "acme" in legend and "acme (out of stock)" in legend
            assert HOSTILE_COMPETITOR in legend
            page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        finally:
            browser.close()
