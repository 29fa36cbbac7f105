"""`pricemon scrape` and `run_sweep` against real HTTP servers on 127.0.0.1, checked through
what the store recorded."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from monitor.settings import load_settings
from monitor.store.database import open_store
from monitor.store.models import PriceHistory, ScrapeRun

from .conftest import Reply, Shop, fail_first, jsonld_page, microdata_page, plain_page

SCRAPE = """
[scrape]
timeout = "1s"
retries = 1
backoff_base = "10ms"
max_body_bytes = 100000
slow_response = "5s"
batch_size = 4
"""


def competitor_block(name: str, shop: Shop, extra: str = "") -> str:
    return f"""
[[competitors]]
name = "{name}"
base_url = "{shop.base}/"
min_delay = "0s"
max_concurrency = 4
max_delay = "2s"
{extra}
"""


def setup_catalog(tmp_path: Path, pricemon, listings: list[tuple[str, str, str]], currency: str = "EUR") -> None:
    skus = sorted({sku for sku, _, _ in listings})
    products = tmp_path / "products.csv"
    products.write_text(
        "sku,name,price,currency,gtin\n"
        + "".join(f"{sku},Thing {sku},20.00,{currency},{'4006381333931' if sku == 'GT' else ''}\n" for sku in skus),
        encoding="utf-8",
    )
    listing_file = tmp_path / "listings.csv"
    listing_file.write_text(
        "sku,competitor,url\n" + "".join(f"{sku},{c},{url}\n" for sku, c, url in listings), encoding="utf-8"
    )
    pricemon("import", "products", str(products))
    pricemon("import", "listings", str(listing_file))


def by_sku(pricemon) -> dict[str, dict]:
    return {row["sku"]: row for row in pricemon("listings", "--json").json()}


def history_count(database_url: str) -> int:
    store = open_store(database_url)
    try:
        with store.session() as session:
            return session.scalar(select(func.count()).select_from(PriceHistory)) or 0
    finally:
        store.dispose()


def test_sweep_records_every_outcome_and_a_second_sweep_adds_nothing(
    tmp_path, shop, other_shop, pricemon_cli, write_config, database_url
) -> None:
    shop.pages.update(
        {
            "/p/jsonld": jsonld_page("19.99"),
            "/p/micro": microdata_page("1299.50"),
            "/p/usd": jsonld_page("25.00", "USD"),
            "/p/mismatch": jsonld_page("20.00", gtin="5901234123457"),
            "/p/gtin-ok": jsonld_page("21.00", gtin="04006381333931"),
            "/p/ambiguous": jsonld_page("10.00").replace(
                "</head>", '<meta property="product:price:amount" content="12.00"></head>'
            ),
            "/p/nothing": "<html><body><p>Nothing to see</p></body></html>",
            "/p/binary": Reply(200, b"\x00\x01\x02PNG" * 100, {"Content-Type": "image/png"}),
            "/p/nul": Reply(200, b"\x00\x00\x00\x00garbage" * 50),
            "/p/huge": Reply(200, "<html>" + "x" * 200_000 + "</html>"),
            "/p/gone": Reply(410, "gone"),
            "/p/to-file": Reply(302, "", {"Location": "file:///etc/passwd"}),
            "/p/to-other": Reply(302, "", {"Location": other_shop.url("/p/elsewhere")}),
            "/p/loop": Reply(302, "", {"Location": "/p/loop"}),
            "/p/flaky": fail_first(1, Reply(500, "oops"), jsonld_page("30.00")),
            "/p/always-500": Reply(503, "down"),
            "/p/teapot": Reply(418, "no"),
            "/private/secret": jsonld_page("1.00"),
            "/p/latin1": Reply(
                200,
                jsonld_page("5.50").replace("Kettle", "Bouilloire \xe9l\xe9gante").encode("latin-1"),
                {"Content-Type": "text/html; charset=iso-8859-1"},
            ),
        }
    )
    other_shop.pages["/p/elsewhere"] = jsonld_page("44.00")
    listings = [
        ("JSON", "acme", shop.url("/p/jsonld")),
        ("MICRO", "acme", shop.url("/p/micro")),
        ("USD", "acme", shop.url("/p/usd")),
        ("GT", "acme", shop.url("/p/mismatch")),
        ("AMB", "acme", shop.url("/p/ambiguous")),
        ("NONE", "acme", shop.url("/p/nothing")),
        ("BIN", "acme", shop.url("/p/binary")),
        ("NUL", "acme", shop.url("/p/nul")),
        ("HUGE", "acme", shop.url("/p/huge")),
        ("GONE", "acme", shop.url("/p/gone")),
        ("MISSING", "acme", shop.url("/p/missing")),
        ("FILE", "acme", shop.url("/p/to-file")),
        ("OTHER", "acme", shop.url("/p/to-other")),
        ("LOOP", "acme", shop.url("/p/loop")),
        ("FLAKY", "acme", shop.url("/p/flaky")),
        ("DOWN", "acme", shop.url("/p/always-500")),
        ("TEAPOT", "acme", shop.url("/p/teapot")),
        ("ROBOTS", "acme", shop.url("/private/secret")),
        ("LATIN", "acme", shop.url("/p/latin1")),
        ("GTOK", "globex", shop.url("/p/gtin-ok")),
    ]
    config = write_config(SCRAPE + competitor_block("acme", shop) + competitor_block("globex", shop))
    pricemon = pricemon_cli(config, database_url)
    pricemon("db", "upgrade")
    setup_catalog(tmp_path, pricemon, listings)

    summary = pricemon("scrape", "--json").json()
    assert summary["status"] == "finished"
    assert summary["checked"] == len(listings)
    rows = by_sku(pricemon)
    outcome = {sku: row["last_outcome"] for sku, row in rows.items()}
    assert outcome == {
        "JSON": "changed",
        "MICRO": "changed",
        "USD": "changed",
        "GT": "mismatch",
        "AMB": "ambiguous",
        "NONE": "not_found",
        "BIN": "invalid_content",
        "NUL": "invalid_content",
        "HUGE": "invalid_content",
        "GONE": "gone",
        "MISSING": "gone",
        "FILE": "http_error",
        "OTHER": "changed",
        "LOOP": "http_error",
        "FLAKY": "changed",
        "DOWN": "http_error",
        "TEAPOT": "http_error",
        "ROBOTS": "blocked_by_robots",
        "LATIN": "changed",
        "GTOK": "changed",
    }
    assert rows["JSON"]["price"] == "19.99" and rows["JSON"]["currency"] == "EUR" and rows["JSON"]["in_stock"] is True
    assert rows["MICRO"]["price"] == "1299.50"
    assert rows["OTHER"]["price"] == "44.00"  # followed to the other host
    assert rows["FLAKY"]["price"] == "30.00"  # retried after the 500
    assert rows["USD"]["currency"] == "USD"
    assert "5901234123457" in rows["GT"]["last_error"]
    assert "robots.txt" in rows["ROBOTS"]["last_error"]
    assert "file:" in rows["FILE"]["last_error"]
    assert rows["DOWN"]["consecutive_failures"] == 1
    assert shop.hits["/private/secret"] == 0  # never asked for a disallowed page
    assert shop.hits["/robots.txt"] == 2  # cached: once per competitor (acme, globex) on this host
    assert shop.hits["/p/always-500"] == 2  # one retry
    assert shop.hits["/p/teapot"] == 1  # no retry on other 4xx
    assert shop.hits["/p/gone"] == 1
    assert other_shop.hits["/robots.txt"] == 1  # the other host's robots.txt was asked too
    assert all(ua.startswith("pricemon/") for ua in shop.user_agents)
    usd_history = pricemon("history", "USD", "--json").json()
    assert usd_history[0]["currency_mismatch"] is True
    assert summary["competitors"]["acme"]["changed"] == 6
    assert summary["failed"] == 13
    rows_after_first = history_count(database_url)
    assert rows_after_first == 7

    # Nothing changed: 304s for the ETag pages, body-hash matches for the rest; no new rows.
    second = pricemon("scrape", "--json").json()
    assert second["status"] == "finished"
    assert history_count(database_url) == rows_after_first
    rows = by_sku(pricemon)
    assert rows["JSON"]["last_outcome"] == "not_modified"
    assert rows["OTHER"]["last_outcome"] == "unchanged"  # redirected pages are compared by hash
    assert rows["DOWN"]["consecutive_failures"] == 2
    acme = second["competitors"]["acme"]
    assert acme.get("changed", 0) == 0
    assert acme["not_modified"] + acme.get("unchanged", 0) == 6

    # A price moves: recorded as a change, in its own row.
    shop.pages["/p/jsonld"] = jsonld_page("17.49")
    third = pricemon("scrape", "--competitor", "acme", "--sku", "JSON", "--json").json()
    assert third["checked"] == 1 and third["changed"] == 1
    assert by_sku(pricemon)["JSON"]["price"] == "17.49"
    assert history_count(database_url) == rows_after_first + 1


def test_retry_after_is_honoured_and_slow_pages_time_out(tmp_path, shop, pricemon_cli, write_config, sqlite_url):
    shop.pages.update(
        {
            "/p/limited": fail_first(1, Reply(429, "slow down", {"Retry-After": "1"}), jsonld_page("9.99")),
            "/p/slow": Reply(200, jsonld_page("8.00"), delay=3),
        }
    )
    config = write_config(SCRAPE + competitor_block("acme", shop))
    pricemon = pricemon_cli(config, sqlite_url)
    setup_catalog(tmp_path, pricemon, [("LIM", "acme", shop.url("/p/limited")), ("SLOW", "acme", shop.url("/p/slow"))])
    summary = pricemon("scrape", "--json").json()
    rows = by_sku(pricemon)
    assert rows["LIM"]["last_outcome"] == "changed" and rows["LIM"]["price"] == "9.99"
    assert shop.hits["/p/limited"] == 2
    assert rows["SLOW"]["last_outcome"] == "timeout"
    assert "1s" in rows["SLOW"]["last_error"]
    assert summary["competitors"]["acme"]["timeout"] == 1


def test_selectors_robots_opt_out_and_proxyless_headers(tmp_path, shop, pricemon_cli, write_config, sqlite_url):
    shop.pages["/private/plain"] = plain_page("1.299,99 €")
    extra = """respect_robots_txt = false
user_agent = "pricemon-test/1.0"
headers = { "X-Shop" = "yes" }
[competitors.selectors]
price = ".product-price .now"
currency = "EUR"
decimal_separator = ","
in_stock = "text:In stock"
"""
    config = write_config(SCRAPE + competitor_block("acme", shop, extra))
    pricemon = pricemon_cli(config, sqlite_url)
    setup_catalog(tmp_path, pricemon, [("PLAIN", "acme", shop.url("/private/plain"))])
    pricemon("scrape", "--json")
    row = by_sku(pricemon)["PLAIN"]
    assert (row["last_outcome"], row["price"], row["in_stock"]) == ("changed", "1299.99", True)
    assert shop.hits["/robots.txt"] == 0
    assert shop.user_agents == ["pricemon-test/1.0"]


def test_run_sweep_in_worker_processes_with_progress_and_stop(tmp_path, shop, pricemon_cli, write_config, sqlite_url):
    from monitor.scrape.sweep import run_sweep

    names = [f"shop{i}" for i in range(3)]
    listings = []
    for i in range(600):
        shop.pages[f"/p/{i}"] = jsonld_page(f"{10 + i}.00")
        listings.append((f"S{i:03d}", names[i % 3], shop.url(f"/p/{i}")))
    config = write_config(
        # A generous timeout: this test is about sharding and progress, not slow pages, and a busy
        # machine must not turn a page into a timeout.
        SCRAPE.replace("batch_size = 4", "batch_size = 50\nworkers = 2").replace('timeout = "1s"', 'timeout = "20s"')
        + "".join(competitor_block(n, shop) for n in names)
    )
    pricemon = pricemon_cli(config, sqlite_url)
    setup_catalog(tmp_path, pricemon, listings)
    settings = load_settings(config, database_url=sqlite_url)
    seen: list[tuple[int, int, int]] = []
    summary = run_sweep(settings, progress=lambda *p: seen.append(p))
    assert summary.status == "finished"
    assert summary.checked == 600 and summary.changed == 600 and summary.failed == 0
    assert set(summary.competitors) == set(names)
    assert all(summary.competitors[n]["changed"] == 200 for n in names)
    assert seen[0] == (0, 600, 0) and seen[-1] == (600, 600, 0)
    assert len(seen) > 3  # progress arrives while the sweep runs, not only at the end
    assert history_count(sqlite_url) == 600
    store = open_store(sqlite_url)
    with store.session() as session:
        run = session.get_one(ScrapeRun, summary.run_id)
        assert (run.status, run.checked, run.changed) == ("finished", 600, 600)
    store.dispose()

    # Already stopped: nothing new starts, and the run says it was interrupted.
    stop = threading.Event()
    stop.set()
    stopped = run_sweep(settings, stop=stop)
    assert stopped.status == "interrupted"
    assert stopped.checked == 0

    with pytest.raises(Exception, match="unknown competitor"):
        run_sweep(settings, competitors=["nobody"])


def test_stop_mid_sweep_commits_what_was_checked(tmp_path, shop, pricemon_cli, write_config, sqlite_url) -> None:
    from monitor.scrape.sweep import run_sweep

    listings = []
    for i in range(120):
        shop.pages[f"/p/{i}"] = Reply(200, jsonld_page(f"{10 + i}.00"), delay=0.01)
        listings.append((f"S{i:03d}", "acme", shop.url(f"/p/{i}")))
    config = write_config(SCRAPE + competitor_block("acme", shop).replace("max_concurrency = 4", "max_concurrency = 2"))
    pricemon = pricemon_cli(config, sqlite_url)
    setup_catalog(tmp_path, pricemon, listings)
    stop = threading.Event()

    def progress(done: int, total: int, errors: int) -> None:
        if done >= 50:
            stop.set()  # what the daemon does on SIGTERM

    summary = run_sweep(load_settings(config, database_url=sqlite_url), stop=stop, progress=progress)
    assert summary.status == "interrupted"
    assert 50 <= summary.checked < 120
    # Everything that was checked was committed, nothing more.
    assert history_count(sqlite_url) == summary.checked
    checked = [row for row in pricemon("listings", "--json").json() if row["last_outcome"] == "changed"]
    assert len(checked) == summary.checked
