"""The review workspace in a real headless Chromium against a real `pricemon serve` process:
log in with a token, filter, select, bulk approve (rows and the whole filtered set), preview and
apply, the product chart draws, no console errors, and hostile product names and scraped text
show as text. A screenshot of every page goes to test-artifacts/.

One server and one browser for the module (the store is filled once through the real CLI and
the sweep's `record_checks`); the tests run in file order and build on each other's decisions.
"""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from monitor.report.charts import competitor_colour
from monitor.store.alerts import NewEvent, add_event, due_deliveries, mark_failed, mark_sent
from monitor.store.database import Store, open_store
from monitor.store.history import CheckResult, record_checks
from monitor.store.models import Competitor, Listing, PriceChange, Product, Suggestion
from tests.conftest import CHROMIUM, Pricemon, require_chromium

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

# Where scraped or imported text lands in the pages: each would run script if it were not escaped.
HOSTILE_NAME = "<img src=x onerror=alert('name')>Kettle"
HOSTILE_NAME_2 = "<script>alert('toaster')</script>Toaster"
HOSTILE_ERROR = "</td></tr><script>alert('error')</script><b onmouseover=alert(2)>boom</b>"
COMPETITORS = ("acme", "globex", "initech")
CONFIG = "".join(f'[[competitors]]\nname = "{n}"\nbase_url = "http://127.0.0.1:9/"\n\n' for n in COMPETITORS)

# A product whose name a spreadsheet would run as a formula, with a MAP a competitor undercuts.
FORMULA_NAME = '=HYPERLINK("http://127.0.0.1:9/x","Mug")'
HOSTILE_ALERT = "<svg onload=alert('alert')>price war at initech"
PRODUCTS = (
    "sku,name,price,currency,cost,tags,map_price\n"
    f'KET-1,"{HOSTILE_NAME}",50.00,EUR,30.00,kitchen,\n'
    f'TOA-2,"{HOSTILE_NAME_2}",40.00,EUR,20.00,kitchen,\n'
    "LAM-3,Floor lamp,80.00,EUR,40.00,living,\n"
    "CHA-4,Oak chair,120.00,EUR,50.00,living,\n"
    "DES-5,Standing desk,300.00,EUR,150.00,office,\n"
    '"MUG-6","=HYPERLINK(""http://127.0.0.1:9/x"",""Mug"")",20.00,EUR,8.00,office,20.00\n'
)
LISTINGS = [
    ("KET-1", "acme"),
    ("KET-1", "globex"),
    ("KET-1", "initech"),
    ("TOA-2", "acme"),
    ("LAM-3", "globex"),
    ("CHA-4", "globex"),
    ("DES-5", "acme"),
    ("MUG-6", "initech"),
]


@dataclass
class Workspace:
    url: str
    store: Store
    tokens: dict[str, str]
    feed: Path
    tmp: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _observe(store: Store, prices: dict[tuple[str, str], Any], at: datetime) -> None:
    """One check per listing, stored the way a sweep stores it."""
    with store.session() as session:
        ids = {
            (sku, comp): lid
            for lid, sku, comp in session.execute(
                select(Listing.id, Product.sku, Competitor.name)
                .join(Product, Product.id == Listing.product_id)
                .join(Competitor, Competitor.id == Listing.competitor_id)
            )
        }
        results = []
        for key, value in prices.items():
            if isinstance(value, CheckResult):
                results.append(replace(value, listing_id=ids[key], checked_at=at))
                continue
            price, in_stock = (value, True) if isinstance(value, str) else value
            results.append(CheckResult(ids[key], "observed", at, Decimal(price), currency="EUR", in_stock=in_stock))
        record_checks(session, results, run_id=None, interval=timedelta(minutes=15), suspicious_change=10.0)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    require_chromium()
    tmp = tmp_path_factory.mktemp("workspace")
    feed = tmp / "feed.csv"
    config = tmp / "pricemon.toml"
    config.write_text(f'[feed]\ncsv_path = "{feed}"\n\n' + CONFIG, encoding="utf-8")
    url = f"sqlite:///{tmp / 'pricemon.db'}"
    pricemon = Pricemon(config, url)
    (tmp / "products.csv").write_text(PRODUCTS, encoding="utf-8")
    pricemon("import", "products", str(tmp / "products.csv"))
    lines = ["sku,competitor,url"] + [f"{s},{c},http://127.0.0.1:9/{c}/{s}" for s, c in LISTINGS]
    (tmp / "listings.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    pricemon("import", "listings", str(tmp / "listings.csv"))

    store = open_store(url, migrate=True)
    now = datetime.now(UTC).replace(microsecond=0)
    # Two weeks of history so the chart has a period to show: a price move, a stock-out, a failure.
    _observe(
        store,
        {
            ("KET-1", "acme"): "46.00",
            ("KET-1", "globex"): "47.00",
            ("KET-1", "initech"): "48.00",
            ("TOA-2", "acme"): "36.00",
            ("LAM-3", "globex"): "90.00",
            ("CHA-4", "globex"): "110.00",
            ("DES-5", "acme"): "280.00",
        },
        now - timedelta(days=12),
    )
    _observe(store, {("KET-1", "acme"): "45.00", ("KET-1", "globex"): ("46.50", False)}, now - timedelta(days=6))
    _observe(
        store,
        {
            ("KET-1", "acme"): "44.00",
            ("KET-1", "globex"): "46.00",
            ("KET-1", "initech"): CheckResult(0, "invalid_price", now, error=HOSTILE_ERROR),
            ("TOA-2", "acme"): "35.00",
            ("LAM-3", "globex"): "92.00",
            ("CHA-4", "globex"): "100.00",
            ("DES-5", "acme"): "270.00",
            ("MUG-6", "initech"): "15.00",  # below our MAP of 20.00
        },
        now - timedelta(hours=1),
    )
    pricemon("suggest")
    # An alert whose text came from a scraped page, its webhook delivery failed twice.
    with store.session() as session:
        event = NewEvent("price-war", "initech:MUG-6", "MUG-6", "competitor below MAP", HOSTILE_ALERT, {})
        event_id = add_event(session, event, ["webhook", "log"], now)
        deliveries = {d.channel: d.delivery_id for d in due_deliveries(session, now)}
        mark_sent(session, [deliveries["log"]], now)
        for _ in range(2):
            mark_failed(session, [deliveries["webhook"]], "HTTP 502 from the hook", now, {deliveries["webhook"]: now})
    assert event_id is not None

    tokens = {}
    for name, role in (("alice", "approver"), ("vic", "viewer"), ("ada", "admin")):
        tokens[name] = pricemon("tokens", "create", name, "--role", role).stdout.strip()

    port = _free_port()
    exe = Path(sys.executable).with_name("pricemon")
    log = (tmp / "serve.log").open("w")
    server = subprocess.Popen(
        [str(exe), "--config", str(config), "--database-url", url, "serve", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PRICEMON_SESSION_SECRET": "test-only-session-key"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/login", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"pricemon serve did not come up:\n{(tmp / 'serve.log').read_text()}")
            time.sleep(0.1)
        yield Workspace(base, store, tokens, feed, tmp)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        store.dispose()


@dataclass
class Tab:
    """A logged-in page that records every console error, page error, dialog and outside request."""

    page: Any
    problems: list[str]
    dialogs: list[str]
    outside: list[str]
    accept_confirm: bool = False

    def clean(self) -> None:
        assert self.problems == [], self.problems
        assert self.outside == [], self.outside

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"workspace-{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def browser(workspace: Workspace) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM if os.path.exists(CHROMIUM) else None, args=BROWSER_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _tab(browser: Any, workspace: Workspace, who: str, *, accept_confirm: bool = False) -> Tab:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    tab = Tab(page, [], [], [], accept_confirm)
    page.on(
        "console",
        lambda m: (
            tab.problems.append(f"{m.type}: {m.text} ({m.location.get('url')} on {page.url})")
            if m.type in ("error", "warning")
            else None
        ),
    )
    page.on(
        "response",
        lambda r: tab.problems.append(f"HTTP {r.status}: {r.url} (on {page.url})") if r.status >= 400 else None,
    )
    page.on("pageerror", lambda e: tab.problems.append(f"pageerror: {e}"))

    def on_dialog(dialog: Any) -> None:
        tab.dialogs.append(f"{dialog.type}: {dialog.message}")
        if dialog.type == "confirm" and tab.accept_confirm:
            dialog.accept()
        else:
            dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("request", lambda r: tab.outside.append(r.url) if not r.url.startswith(workspace.url) else None)
    page.goto(f"{workspace.url}/")
    assert page.url.startswith(f"{workspace.url}/login"), "an anonymous visit must end at the login page"
    page.fill("#token", workspace.tokens[who])
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(f"{workspace.url}/")
    return tab


def _assert_swatches_painted(tab: Tab) -> int:
    """Every competitor swatch on the page wears that competitor's colour (the report's too)."""
    painted = tab.page.evaluate(
        """() => Array.from(document.querySelectorAll('.swatch')).map(
            el => [el.parentElement.textContent.trim(), getComputedStyle(el).backgroundColor])"""
    )
    for text, rgb in painted:
        name = next(c for c in COMPETITORS if text.startswith(c))
        hex_colour = competitor_colour(name).lstrip("#")
        assert rgb == "rgb({}, {}, {})".format(*(int(hex_colour[i : i + 2], 16) for i in (0, 2, 4))), (text, rgb)
    return len(painted)


def _rows(tab: Tab) -> list[str]:
    return tab.page.locator("#review-table tbody tr[data-id] td:nth-child(2)").all_inner_texts()


def _decisions(store: Store) -> dict[str, tuple[str, str | None]]:
    with store.session() as session:
        rows = session.execute(
            select(Product.sku, Suggestion.status, Suggestion.decided_by).join(
                Product, Product.id == Suggestion.product_id
            )
        ).all()
    return {sku: (status, by) for sku, status, by in rows}


def test_login_filter_select_bulk_approve_preview_and_apply(browser: Any, workspace: Workspace) -> None:
    tab = _tab(browser, workspace, "alice", accept_confirm=True)
    page = tab.page
    pending = _decisions(workspace.store)
    assert len(pending) >= 4 and all(status == "pending" for status, _ in pending.values())
    assert sorted(_rows(tab)) == sorted(pending)
    tab.shot("review")

    # A filter swaps the queue in place (htmx) and puts itself in the address bar.
    page.select_option("select[name=tag]", "kitchen")
    from playwright.sync_api import expect  # polls in Playwright, not by eval in the page (the CSP forbids it)

    expect(page.locator("#review-table tbody tr[data-id]")).to_have_count(2)
    assert sorted(_rows(tab)) == ["KET-1", "TOA-2"]
    assert "tag=kitchen" in page.url
    assert page.locator("#count").inner_text().startswith("2 suggestion(s)")

    # Tick one row and approve it.
    page.check("input[name=ids][aria-label='select KET-1']")
    page.click("#approve")
    page.wait_for_selector(".notice")
    assert page.locator(".notice").inner_text() == "1 suggestion(s) approved."
    assert "tag=kitchen" in page.url  # the filter survives the decision
    assert _rows(tab) == ["TOA-2"]
    decided = _decisions(workspace.store)
    assert decided["KET-1"] == ("approved", "alice") and decided["TOA-2"] == ("pending", None)

    # The whole filtered set: every living-room suggestion, also ones not on this page.
    page.goto(f"{workspace.url}/?tag=living&limit=1")
    assert len(_rows(tab)) == 1 and page.locator("#next-page").count() == 1
    page.check("#scope-filtered")
    page.click("#approve")
    page.wait_for_selector(".notice")
    assert any(d.startswith("confirm: approve 2 suggestion(s)") for d in tab.dialogs), tab.dialogs
    assert page.locator(".notice").inner_text() == "2 suggestion(s) approved."
    decided = _decisions(workspace.store)
    assert decided["LAM-3"] == decided["CHA-4"] == ("approved", "alice")
    assert decided["TOA-2"] == ("pending", None) and decided["DES-5"][0] == "pending"

    # Preview: exactly the approved ones, and where they will be sent; nothing applied yet.
    page.goto(f"{workspace.url}/apply")
    tab.shot("apply-preview")
    preview = page.locator("#preview-table tbody tr td:first-child").all_inner_texts()
    assert sorted(preview) == ["CHA-4", "KET-1", "LAM-3"]
    assert f"the feed file {workspace.feed}" in page.locator("#preview-count").inner_text()
    assert not workspace.feed.exists()
    with workspace.store.session() as session:
        assert session.scalars(select(PriceChange)).all() == []

    page.click("#apply-now")
    page.wait_for_selector("#applied-count")
    assert page.locator("#applied-count").inner_text() == "3 price(s) applied."
    tab.shot("apply-done")
    with workspace.store.session() as session:
        changes = session.execute(select(Product.sku, PriceChange.applied_by).join(Product)).all()
    assert sorted(changes) == [("CHA-4", "alice"), ("KET-1", "alice"), ("LAM-3", "alice")]
    fed = {r["sku"]: r["price"] for r in csv.DictReader(workspace.feed.open(encoding="utf-8"))}
    assert set(fed) >= {"CHA-4", "KET-1", "LAM-3"}
    tab.clean()
    assert all(d.startswith("confirm:") for d in tab.dialogs)  # no script ever raised an alert
    page.context.close()


def test_viewer_reads_but_cannot_decide(browser: Any, workspace: Workspace) -> None:
    tab = _tab(browser, workspace, "vic")
    page = tab.page
    assert page.locator("#approve").count() == 0 and "viewers cannot decide" in page.inner_text("#queue")
    # Even a hand-made form post (the page's own CSRF token, the right fields) is refused.
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    status = page.evaluate(
        """async (token) => {
            const body = new URLSearchParams({csrf_token: token, action: "approve", scope: "filtered"});
            const r = await fetch("/review/decide", {method: "POST", body});
            return r.status;
        }""",
        token,
    )
    assert status == 403
    assert _decisions(workspace.store)["TOA-2"] == ("pending", None)
    tab.problems[:] = [p for p in tab.problems if "403" not in p]  # the refused fetch, logged by Chromium
    tab.clean()
    page.context.close()


def test_product_chart_draws_with_stable_colours(browser: Any, workspace: Workspace) -> None:
    tab = _tab(browser, workspace, "vic")
    page = tab.page
    page.goto(f"{workspace.url}/products/KET-1")
    page.wait_for_selector("#product-chart canvas")
    canvas = page.locator("#product-chart canvas").first
    box = canvas.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 150
    painted = page.evaluate(
        """() => {
            const c = document.querySelector('#product-chart canvas');
            const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 3; i < data.length; i += 4) { if (data[i] !== 0) { n++; } }
            return n;
        }"""
    )
    assert painted > 1000, "the chart canvas is blank"
    legend = page.locator("#product-chart .u-legend").inner_text()
    for name in ("Our price", "acme", "globex", "initech"):
        assert name in legend
    assert "globex (out of stock)" in legend  # the stock-out is its own, distinct series
    # Each competitor's swatch on the page wears the colour its chart line has, and the report has.
    swatches = page.evaluate(
        """() => Array.from(document.querySelectorAll('#listings-table td:first-child')).map(
            td => [td.textContent.trim(), getComputedStyle(td.querySelector('.swatch')).backgroundColor])"""
    )
    assert {name for name, _ in swatches} == {"acme", "globex", "initech"}
    for name, rgb in swatches:
        hex_colour = competitor_colour(name).lstrip("#")
        expected = "rgb({}, {}, {})".format(*(int(hex_colour[i : i + 2], 16) for i in (0, 2, 4)))
        assert rgb == expected, name
    # Tick labels never repeat: a week with twelve-hourly ticks names each day once, a day's
    # hourly ticks carry the date under the first tick of each day, a year's monthly ticks the year.
    labels = page.evaluate(
        """() => {
            const label = (min, max, incr) => {
                const splits = [];
                for (let t = Math.ceil(min / incr) * incr; t <= max; t += incr) { splits.push(t); }
                return window.pricemonCharts.timeLabels({scales: {x: {min, max}}}, splits, 0, 70, incr);
            };
            const t0 = Date.UTC(2026, 10, 27) / 1000;
            return {
                week: label(t0, t0 + 7 * 86400, 43200),
                day: label(t0, t0 + 86400, 6 * 3600),
                seconds: label(t0, t0 + 60, 10),
                // uPlot puts month ticks on the first of each month, with a 30-day increment
                year: window.pricemonCharts.timeLabels(
                    {scales: {x: {min: t0, max: t0 + 365 * 86400}}},
                    Array.from({length: 12}, (_, m) => Date.UTC(2026, 11 + m, 1) / 1000), 0, 70, 30 * 86400),
            };
        }"""
    )
    for period, shown in labels.items():
        days = [label.split("\n")[-1] for label in shown if "\n" in label or period == "year"]
        assert len(shown) > 3 and len(set(days)) == len(days), (period, shown)
    assert len([label for label in labels["week"] if "\n" in label]) == 8  # 27 Nov .. 4 Dec, each once
    assert labels["week"][:2] == ["00:00\n27 Nov", "12:00"], labels["week"]
    assert labels["day"][0] == "00:00\n27 Nov" and labels["day"][-1] == "00:00\n28 Nov"
    assert labels["seconds"][:2] == ["00:00:00\n27 Nov", "00:00:10"], labels["seconds"]
    assert all(" 202" in label for label in labels["year"]), labels["year"]
    # The period links redraw for another window.
    page.click("a[href='?days=7']")
    page.wait_for_selector("#product-chart canvas")
    assert "Prices, last 7 days" in page.inner_text("main")
    tab.shot("product")
    tab.clean()
    page.context.close()


def test_hostile_names_and_scraped_text_render_as_text(browser: Any, workspace: Workspace) -> None:
    tab = _tab(browser, workspace, "ada")
    page = tab.page
    seen = {}
    for path in ("/?tag=kitchen", "/products/KET-1", "/products/TOA-2", "/matrix", "/listings?sku=KET-1", "/alerts"):
        page.goto(f"{workspace.url}{path}")
        page.wait_for_load_state("load")
        seen[path] = page.inner_text("main")
        assert page.locator("main img").count() == 0, path
        assert page.locator("main b, main svg").count() == 0, path
        # only the page's own scripts: none came from the data
        sources = page.evaluate("() => Array.from(document.scripts).map(s => s.src || s.type)")
        assert all(s.startswith(workspace.url) or s == "application/json" for s in sources), (path, sources)
    assert HOSTILE_NAME_2 in seen["/?tag=kitchen"]  # KET-1 was approved above; TOA-2 is pending
    assert HOSTILE_NAME in seen["/products/KET-1"] and HOSTILE_NAME_2 in seen["/products/TOA-2"]
    assert HOSTILE_NAME in seen["/matrix"]
    assert HOSTILE_ERROR in seen["/products/KET-1"]  # the listing's last error, scraped from the page
    assert HOSTILE_ALERT in seen["/alerts"]
    delivery = page.locator("#alerts-table tbody tr", has_text="price-war").locator("td").last.inner_text()
    assert "webhook: failed (2 attempts) HTTP 502 from the hook" in delivery and "log: sent" in delivery
    assert tab.dialogs == []
    tab.clean()
    page.context.close()


def test_matrix_filters_and_exports_a_csv_no_spreadsheet_runs(workspace: Workspace) -> None:
    viewer = {"Authorization": f"Bearer {workspace.tokens['vic']}"}
    below_map = httpx.get(f"{workspace.url}/matrix", params={"band": "map"}, headers=viewer)
    assert below_map.status_code == 200
    assert "MUG-6" in below_map.text and "KET-1" not in below_map.text
    assert 'band band-map" title="initech: 15.00' in below_map.text
    bad = httpx.get(f"{workspace.url}/matrix", params={"band": "purple"}, headers=viewer)
    assert bad.status_code == 400 and "band: expected one of" in bad.text

    exported = httpx.get(f"{workspace.url}/matrix.csv", params={"tag": "office"}, headers=viewer)
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    rows = list(csv.reader(exported.text.splitlines()))
    assert rows[0][:5] == ["sku", "name", "our_price", "currency", "map_price"]
    by_sku = {r[0]: dict(zip(rows[0], r, strict=True)) for r in rows[1:]}
    assert set(by_sku) == {"DES-5", "MUG-6"}  # the filter holds for the export too
    mug = by_sku["MUG-6"]
    assert mug["name"] == "'" + FORMULA_NAME  # neutralised: a spreadsheet shows it, never runs it
    assert mug["map_price"] == "20.00" and mug["initech_price"] == "15.00" and mug["initech_band"] == "map"
    assert by_sku["DES-5"]["acme_band"] == "dearer" and by_sku["DES-5"]["acme_index"] == "1.111"

    anonymous = httpx.get(f"{workspace.url}/matrix.csv")
    assert anonymous.status_code == 401


def test_every_page_loads_clean_and_is_captured(browser: Any, workspace: Workspace) -> None:
    tab = _tab(browser, workspace, "ada")
    page = tab.page
    for name, path, marker in (
        ("matrix", "/matrix", "#matrix-table"),
        ("competitors", "/competitors", "#competitors-table"),
        ("alerts", "/alerts", "#alerts-table"),
        ("listings", "/listings", "#listings-table"),
        ("api-docs", "/api/docs", "body"),
    ):
        response = page.goto(f"{workspace.url}{path}")
        assert response is not None and response.status == 200, path
        page.wait_for_selector(marker)
        if name not in ("api-docs", "alerts"):
            assert _assert_swatches_painted(tab) >= 3, name
        tab.shot(name)
    # The matrix cells carry their band, and the competitors page tells the failing listing.
    page.goto(f"{workspace.url}/matrix?q=KET")
    assert page.locator("#matrix-table tbody tr").count() == 1
    assert page.locator("#matrix-table td.band").count() >= 2
    page.goto(f"{workspace.url}/competitors")
    assert [
        t.strip() for t in page.locator("#competitors-table tbody tr:not(.detail) td:first-child").all_inner_texts()
    ] == list(COMPETITORS)
    tab.clean()
    page.context.close()


def test_admin_adds_and_disables_a_listing(browser: Any, workspace: Workspace) -> None:
    tab = _tab(browser, workspace, "ada")
    page = tab.page
    page.goto(f"{workspace.url}/listings")
    page.fill("#add-listing input[name=sku]", "DES-5")
    page.select_option("#add-listing select[name=competitor]", "initech")
    page.fill("#add-listing input[name=url]", "http://127.0.0.1:9/initech/desk")
    page.click("#add-listing button[type=submit]")
    page.wait_for_selector(".notice")
    assert page.locator(".notice").inner_text() == "Listing of DES-5 at initech added."
    row = page.locator("#listings-table tbody tr", has_text="initech")
    assert row.count() == 1 and "http://127.0.0.1:9/initech/desk" in row.inner_text()

    row.locator("button", has_text="Disable").click()
    page.wait_for_selector(".notice")
    assert page.locator(".notice").inner_text() == "Listing of DES-5 at initech disabled."
    with workspace.store.session() as session:
        active = session.execute(
            select(Listing.active)
            .join(Product, Product.id == Listing.product_id)
            .join(Competitor, Competitor.id == Listing.competitor_id)
            .where(Product.sku == "DES-5", Competitor.name == "initech")
        ).scalar_one()
    assert active is False

    # A bad URL is named, and nothing is written.
    page.fill("#add-listing input[name=sku]", "DES-5")
    page.select_option("#add-listing select[name=competitor]", "globex")
    page.evaluate("() => document.querySelector('#add-listing input[name=url]').type = 'text'")
    page.fill("#add-listing input[name=url]", "javascript:alert(1)")
    page.click("#add-listing button[type=submit]")
    page.wait_for_selector("#problems")
    assert page.locator("#problems").inner_text().startswith("url:")
    with workspace.store.session() as session:
        count = session.execute(
            select(Listing.id)
            .join(Product, Product.id == Listing.product_id)
            .join(Competitor, Competitor.id == Listing.competitor_id)
            .where(Product.sku == "DES-5", Competitor.name == "globex")
        ).all()
    assert count == []

    # Deactivating a product asks first: dismissed, nothing happens; confirmed, it is done.
    def deactivate() -> None:
        page.goto(f"{workspace.url}/listings?sku=TOA-2")
        page.locator("#listings-table button", has_text="Deactivate product").first.click()

    def toaster_active() -> bool:
        with workspace.store.session() as session:
            return bool(session.execute(select(Product.active).where(Product.sku == "TOA-2")).scalar_one())

    deactivate()
    page.wait_for_load_state("load")
    assert tab.dialogs[-1].startswith("confirm: Deactivate TOA-2?") and toaster_active()
    tab.accept_confirm = True
    deactivate()
    page.wait_for_selector(".notice")
    assert page.locator(".notice").inner_text().startswith("Product TOA-2 deactivated")
    assert not toaster_active()
    page.goto(f"{workspace.url}/?q=TOA-2")
    assert _rows(tab) == [], "a deactivated product's pending suggestion stays out of the queue"
    assert _decisions(workspace.store)["TOA-2"] == ("superseded", "ada")
    tab.problems[:] = [p for p in tab.problems if "422" not in p]  # the refused form, logged by Chromium
    tab.clean()
    page.context.close()
