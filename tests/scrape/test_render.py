"""`render = "browser"`: pages whose price is written by JavaScript, rendered in a real headless
Chromium (Debian's /usr/bin/chromium through Playwright) and served by real local servers."""

from __future__ import annotations

from tests.conftest import require_chromium

from .conftest import Reply, Shop
from .test_sweep import SCRAPE, by_sku, competitor_block, setup_catalog


def _browser_or_skip() -> None:
    require_chromium()


def js_page(other: Shop, *, api: str = "/api/price/1", extra: str = "") -> str:
    """A product page with no price in its HTML: a script fetches it from the shop's API and
    writes it into the page, next to an image, a font, a stylesheet and calls to another host."""
    return f"""<!doctype html><html><head><title>Kettle</title>
<link rel="stylesheet" href="/static/shop.css">
<style>@font-face {{ font-family: Shop; src: url(/static/shop.woff2); }} body {{ font-family: Shop; }}</style>
<script src="{other.url('/tracker.js')}"></script>
</head><body><h1>Kettle</h1><img src="/img/kettle.png" alt="">
<div class="product"><span id="price" class="price"></span><span class="stock"></span></div>
{extra}
<script src="/static/product.js"></script>
<script>
fetch("{other.url('/collect')}", {{mode: "no-cors"}}).catch(() => {{}});
new Image().src = "{other.url('/pixel.gif')}";
fetch("{api}").then(r => r.json()).then(data => {{
  document.querySelector("#price").textContent = data.price + " \u20ac";
  document.querySelector(".stock").textContent = data.available ? "In stock" : "Sold out";
}});
</script></body></html>"""


PRODUCT_JS = "window.shopReady = true; document.title = 'Kettle | Shop';"


def serve_js_shop(shop: Shop, other: Shop, price: str = "229.99") -> None:
    shop.pages.update(
        {
            "/p/1": js_page(other),
            "/static/product.js": Reply(200, PRODUCT_JS, {"Content-Type": "application/javascript"}),
            "/api/price/1": Reply(
                200, f'{{"price": "{price}", "available": true}}', {"Content-Type": "application/json"}
            ),
            "/static/shop.css": Reply(200, "body { color: red }", {"Content-Type": "text/css"}),
            "/static/shop.woff2": Reply(200, b"wOF2", {"Content-Type": "font/woff2"}),
            "/img/kettle.png": Reply(200, b"\x89PNG", {"Content-Type": "image/png"}),
        }
    )
    other.pages.update({"/tracker.js": Reply(200, "window.tracked = 1;", {"Content-Type": "text/javascript"})})


def test_a_javascript_price_is_refused_without_render_and_read_with_it(pricemon_cli, shop, other_shop) -> None:
    _browser_or_skip()
    serve_js_shop(shop, other_shop)
    pricemon = pricemon_cli()
    plain = pricemon("extract", shop.url("/p/1"), "--selector", "#price", "--json", expect=3)
    assert plain.json()["status"] == "not_found"
    assert shop.hits["/api/price/1"] == 0  # without a browser nothing runs the page's script

    rendered = pricemon(
        "extract", shop.url("/p/1"), "--render", "--selector", "#price", "--currency", "EUR",
        "--in-stock", "text:In stock", "--json",
    ).json()
    assert (rendered["price"], rendered["currency"], rendered["in_stock"]) == ("229.99", "EUR", True)
    assert shop.hits["/api/price/1"] == 1 and shop.hits["/static/product.js"] == 1
    # Images, fonts and stylesheets are never requested; no other host is ever reached.
    assert shop.hits["/img/kettle.png"] == shop.hits["/static/shop.woff2"] == shop.hits["/static/shop.css"] == 0
    assert sum(other_shop.hits.values()) == 0, other_shop.hits
    # Every request of the page went through pricemon's fetcher, with its User-Agent.
    assert all(ua.startswith("pricemon/") for ua in shop.user_agents)

    # Finding the selector works on what the browser rendered.
    found = pricemon("extract", shop.url("/p/1"), "--render", "--find", "229.99", "--json").json()
    assert found["proposal"] == "#price"


def test_a_rendered_sweep_reads_prices_obeys_robots_and_times_out(
    tmp_path, pricemon_cli, write_config, sqlite_url, shop, other_shop
) -> None:
    _browser_or_skip()
    serve_js_shop(shop, other_shop)
    shop.pages["/p/robots"] = js_page(other_shop, api="/private/price")
    shop.pages["/private/price"] = Reply(200, '{"price": "1.00"}', {"Content-Type": "application/json"})
    shop.pages["/p/slow"] = js_page(other_shop, api="/api/slow")
    shop.pages["/api/slow"] = Reply(200, '{"price": "2.00"}', {"Content-Type": "application/json"}, delay=10)
    shop.pages["/p/gone"] = Reply(404, "no")
    shop.pages["/p/ws"] = js_page(other_shop, extra=f'<script>new WebSocket("ws://127.0.0.1:{other_shop.port}/ws")</script>')
    selectors = '[competitors.selectors]\nprice = "#price"\ncurrency = "EUR"\nin_stock = "text:In stock"\n'
    config = write_config(
        SCRAPE.replace('timeout = "1s"', 'timeout = "5s"')
        + "browser_pages = 2\n"
        + competitor_block("acme", shop, 'render = "browser"\n' + selectors)
    )
    pricemon = pricemon_cli(config, sqlite_url)
    setup_catalog(
        tmp_path,
        pricemon,
        [
            ("JS", "acme", shop.url("/p/1")),
            ("ROBOTS", "acme", shop.url("/p/robots")),
            ("SLOW", "acme", shop.url("/p/slow")),
            ("GONE", "acme", shop.url("/p/gone")),
            ("WS", "acme", shop.url("/p/ws")),
        ],
    )
    summary = pricemon("scrape", "--json").json()
    assert summary["status"] == "finished", summary
    rows = by_sku(pricemon)
    assert rows["JS"]["last_outcome"] == "changed" and rows["JS"]["price"] == "229.99"
    assert rows["JS"]["in_stock"] is True
    assert rows["ROBOTS"]["last_outcome"] == "not_found"
    assert shop.hits["/private/price"] == 0  # robots.txt holds for what a page's scripts ask for
    assert rows["SLOW"]["last_outcome"] == "timeout"
    assert rows["GONE"]["last_outcome"] == "gone"
    assert rows["WS"]["last_outcome"] == "changed"
    assert sum(other_shop.hits.values()) == 0, other_shop.hits

    # The price moves in the API only (the document is the same): a rendered page still sees it.
    moved = '{"price": "199.00", "available": false}'
    shop.pages["/api/price/1"] = Reply(200, moved, {"Content-Type": "application/json"})
    pricemon("scrape", "--sku", "JS", "--json")
    row = by_sku(pricemon)["JS"]
    assert (row["last_outcome"], row["price"], row["in_stock"]) == ("changed", "199.00", None)

STATEFUL = """<html><body><span id="price"></span><script>
const seen = localStorage.getItem("seen") || sessionStorage.getItem("seen") || document.cookie.includes("seen=");
document.querySelector("#price").textContent = (seen ? "2.00" : "1.00") + " EUR";
localStorage.setItem("seen", "1"); sessionStorage.setItem("seen", "1"); document.cookie = "seen=1; path=/";
</script></body></html>"""


def test_one_rendered_page_leaves_nothing_for_the_next(tmp_path, pricemon_cli, write_config, sqlite_url, shop) -> None:
    _browser_or_skip()
    for name in ("a", "b", "c"):
        shop.pages[f"/p/state/{name}"] = STATEFUL
    config = write_config(
        SCRAPE.replace('timeout = "1s"', 'timeout = "5s"')
        + "browser_pages = 1\n"  # one tab: every page renders in the tab the one before used
        + competitor_block("acme", shop, 'render = "browser"\n[competitors.selectors]\nprice = "#price"\n')
    )
    pricemon = pricemon_cli(config, sqlite_url)
    setup_catalog(tmp_path, pricemon, [(n.upper(), "acme", shop.url(f"/p/state/{n}")) for n in ("a", "b", "c")])
    pricemon("scrape")
    assert {sku: row["price"] for sku, row in by_sku(pricemon).items()} == {"A": "1.00", "B": "1.00", "C": "1.00"}


def test_a_rendered_pages_requests_keep_to_the_competitors_slot(
    tmp_path, pricemon_cli, write_config, sqlite_url, shop, other_shop
) -> None:
    _browser_or_skip()
    import threading
    import time

    serve_js_shop(shop, other_shop)
    lock = threading.Lock()
    load = {"now": 0, "most": 0}

    def slow_api(_handler):
        with lock:
            load["now"] += 1
            load["most"] = max(load["most"], load["now"])
        time.sleep(0.3)
        with lock:
            load["now"] -= 1
        return Reply(200, '{"price": "3.00"}', {"Content-Type": "application/json"})

    shop.pages["/api/price/1"] = slow_api
    config = write_config(
        SCRAPE.replace('timeout = "1s"', 'timeout = "10s"')
        + "browser_pages = 4\n"
        + competitor_block("acme", shop, 'render = "browser"\n[competitors.selectors]\nprice = "#price"\n')
        .replace("max_concurrency = 4", "max_concurrency = 1")
    )
    pricemon = pricemon_cli(config, sqlite_url)
    setup_catalog(tmp_path, pricemon, [(f"S{i}", "acme", shop.url(f"/p/1?copy={i}")) for i in range(4)])
    pricemon("scrape")
    assert {row["price"] for row in by_sku(pricemon).values()} == {"3.00"}
    assert shop.hits["/api/price/1"] == 4
    assert load["most"] == 1  # four pages rendering at once, yet one request at a time to the shop


def test_render_without_a_browser_is_a_clear_error(tmp_path, pricemon_cli, write_config, sqlite_url, shop) -> None:
    config = write_config(
        SCRAPE
        + 'browser_executable = "/nonexistent/chromium"\n'
        + competitor_block("acme", shop, 'render = "browser"\n')
    )
    pricemon = pricemon_cli(config, sqlite_url)
    check = pricemon("config", "check", expect=None)
    assert check.exit_code != 0 and "Chromium at /nonexistent/chromium" in check.stderr
    setup_catalog(tmp_path, pricemon, [("A", "acme", shop.url("/p/1"))])
    failed = pricemon("scrape", expect=None)
    assert failed.exit_code != 0
    assert "Chromium at /nonexistent/chromium" in failed.stderr and "Traceback" not in failed.stderr
    assert shop.hits["/p/1"] == 0
    local = pricemon("extract", str(tmp_path / "products.csv"), "--render", expect=None)
    assert local.exit_code != 0 and "--render needs an http(s) URL" in local.stderr


def test_the_render_benchmark_runs_and_reads_every_price(tmp_path) -> None:
    _browser_or_skip()
    import subprocess
    import sys
    from pathlib import Path

    results = tmp_path / "RESULTS.md"
    done = subprocess.run(
        [sys.executable, "-m", "bench.render", "--pages", "4", "--results", str(results)],
        cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    text = results.read_text()
    assert "Command: `python -m bench.render --pages 4" in text and "git " in text
    assert "| JavaScript pages, render = browser |" in text and "| 4 | 0 |" in text
