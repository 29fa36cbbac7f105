"""Third-party strategies cannot take pricemon down (issue 15).

Hostile plugins in a `strategies_dir`: one calls os._exit(1), one hangs, two return amounts the
store cannot keep, one raises. Through `pricemon suggest` (in-process on SQLite and PostgreSQL,
and as a real process) and through the daemon as a real process: each fails its own product,
named by strategy and SKU, and every other product still gets its suggestion.
"""

# The market/shop/daemon fixtures are imported from their packages' conftest files, so their
# names are parameters here too.
# ruff: noqa: F811

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import run_pricemon
from tests.pricing.conftest import CONFIG, Market, market, sqlite_market  # noqa: F401
from tests.scheduler.conftest import competitor_block, config_text, shop, start_daemon, wait_for  # noqa: F401

HOSTILE = '''
import os
import time
from decimal import Decimal
from monitor.pricing import NoChange, Suggestion


class _Base:
    options = {}
    description = "misbehaves on purpose"


class Exits(_Base):
    name = "exits"
    def suggest(self, context, options):
        os._exit(1)


class Hangs(_Base):
    name = "hangs"
    def suggest(self, context, options):
        time.sleep(1000)
        return NoChange("never")


class Huge(_Base):
    name = "huge"
    def suggest(self, context, options):
        return Suggestion(Decimal("1e30"), "huge")


class Twelve(_Base):
    name = "twelve"
    def suggest(self, context, options):
        return Suggestion(Decimal("123456789012.34"), "twelve digits")


class Raises(_Base):
    name = "raises"
    def suggest(self, context, options):
        raise RuntimeError("plugin bug")


class Quits(_Base):
    name = "quits"
    def suggest(self, context, options):
        raise SystemExit(3)
'''

EXPECTED = {
    "X-EXIT": "strategy exits crashed its worker process (exit code 1)",
    "X-HANG": "strategy hangs timed out after 1s",
    "X-HUGE": "strategy huge returned a price pricemon cannot keep (price is above the largest amount",
    "X-TWELVE": "strategy twelve returned a price pricemon cannot keep (price is above the largest amount",
    "X-RAISE": "strategy raises raised RuntimeError: plugin bug",
    "X-QUIT": "strategy quits raised SystemExit: 3",
}
STRATEGY = {"X-EXIT": "exits", "X-HANG": "hangs", "X-HUGE": "huge", "X-TWELVE": "twelve", "X-RAISE": "raises",
            "X-QUIT": "quits"}
GOOD = [f"OK-{i:02d}" for i in range(40)]


def hostile_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "hostile.py").write_text(HOSTILE, encoding="utf-8")
    return folder


def configure(market: Market, folder: Path, pricing: str) -> None:
    """The market's config with `strategies_dir` (a top-level key, so before the [[competitors]])."""
    market.config_path.write_text(f'strategies_dir = "{folder}"\n{CONFIG}{pricing}', encoding="utf-8")


def hostile_config(extra: str = "") -> str:
    # The hostile SKUs sit between good ones, so each shares a chunk with products that must still be priced.
    overrides = "".join(f'[pricing.skus."{sku}"]\nstrategies = ["{name}"]\nguardrails = []\n'
                        for sku, name in STRATEGY.items())
    return f'[pricing]\ntimeout = "1s"\nworkers = 2\n{extra}{overrides}'


def all_skus() -> list[str]:
    hostile = list(STRATEGY)
    return [*GOOD[:13], *hostile[:3], *GOOD[13:27], *hostile[3:], *GOOD[27:]]


def seed(market: Market) -> None:
    skus = all_skus()
    market.products("sku,name,price,currency\n" + "".join(f"{sku},Item,50.00,EUR\n" for sku in skus))
    market.listings([(sku, "acme") for sku in skus])
    market.observe({(sku, "acme"): "40.00" for sku in skus})


def assert_survived(summary: dict, suggestions: list[dict]) -> None:
    assert (summary["products"], summary["suggested"], summary["failed"]) == (len(GOOD) + len(STRATEGY), len(GOOD),
                                                                              len(STRATEGY))
    errors = {e["sku"]: e for e in summary["errors"]}
    assert set(errors) == set(STRATEGY)
    for sku, text in EXPECTED.items():
        assert text in errors[sku]["error"], (sku, errors[sku])
        assert errors[sku]["strategy"] == STRATEGY[sku]
    by_sku = {s["sku"]: s for s in suggestions}
    assert sorted(by_sku) == sorted(GOOD)
    assert all(s["suggested_price"] == "39.99" for s in by_sku.values())


def strategy_workers() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True)
            if "monitor.pricing.isolation" in " ".join(p.cmdline())]


def test_suggest_survives_every_kind_of_hostile_plugin(market: Market, tmp_path: Path) -> None:
    folder = hostile_folder(tmp_path)
    configure(market, folder, hostile_config())
    seed(market)
    began = time.monotonic()
    out = market.pricemon("suggest", "--json")
    assert time.monotonic() - began < 60  # the hang (1000 s) was killed at the 1 s timeout
    assert_survived(out.json(), market.pricemon("suggestions", "--json").json())
    # the logs name the strategy and the SKU; no worker process is left behind
    assert "strategy exits crashed its worker process (exit code 1) on X-EXIT" in out.stderr
    assert "strategy hangs timed out after 1s on X-HANG" in out.stderr
    assert "Traceback" not in out.stderr
    assert strategy_workers() == []
    prices = {p["sku"]: p["price"] for p in market.pricemon("products", "--json").json()}
    assert all(prices[sku] == "50.00" for sku in STRATEGY)


def test_suggest_as_a_process_survives_them_and_keeps_stdout_clean(sqlite_market: Market, tmp_path: Path) -> None:
    folder = hostile_folder(tmp_path)
    (folder / "chatty.py").write_text(
        "from monitor.pricing import NoChange\n\n"
        "class Chatty:\n    name = 'chatty'\n    description = ''\n    options = {}\n\n"
        "    def suggest(self, context, options):\n        print('hello from a plugin')\n"
        "        return NoChange('said hello')\n", encoding="utf-8")
    # Batches of 7: the workers price one batch while the next is read, crashes and hangs included.
    configure(sqlite_market, folder, hostile_config(
        'batch_size = 7\n[pricing.default]\nstrategies = ["chatty", "match_lowest"]\n'))
    seed(sqlite_market)
    result = run_pricemon("--config", str(sqlite_market.config_path), "--database-url", sqlite_market.database_url,
                          "suggest", "--json", cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)  # a plugin's print() went to stderr, not into the JSON
    assert "hello from a plugin" in result.stderr
    assert_survived(summary, sqlite_market.pricemon("suggestions", "--json").json())


def test_a_plugin_that_crashes_on_every_product_fails_each_and_the_run_ends(
    sqlite_market: Market, tmp_path: Path
) -> None:
    folder = hostile_folder(tmp_path)
    configure(sqlite_market, folder, '[pricing]\nworkers = 2\n[pricing.default]\nstrategies = ["exits"]\n')
    skus = [f"C-{i}" for i in range(12)]
    sqlite_market.products("sku,name,price,currency\n" + "".join(f"{sku},Item,50.00,EUR\n" for sku in skus))
    sqlite_market.listings([(sku, "acme") for sku in skus])
    sqlite_market.observe({(sku, "acme"): "40.00" for sku in skus})
    summary = sqlite_market.pricemon("suggest", "--json").json()
    assert (summary["products"], summary["failed"], summary["suggested"]) == (12, 12, 0)
    assert {e["sku"] for e in summary["errors"]} == set(skus)
    assert all("strategy exits crashed its worker process" in e["error"] for e in summary["errors"])


def test_the_daemon_survives_a_plugin_that_ends_its_process(
    tmp_path: Path, shop, write_config, pricemon_cli, start_daemon
) -> None:
    folder = hostile_folder(tmp_path)
    db = tmp_path / "pricemon.db"
    config = write_config(
        config_text(db, competitor_block("alpha", shop), scheduler="suggest_every = '1s'")
        .replace('database_url =', f'strategies_dir = "{folder}"\ndatabase_url =', 1)
        + '\n[pricing]\ntimeout = "1s"\n[pricing.skus."K-EXIT"]\nstrategies = ["exits"]\n'
        + '[pricing.skus."K-HANG"]\nstrategies = ["hangs"]\n'
    )
    skus = ["K1", "K-EXIT", "K-HANG", "K2"]
    (tmp_path / "products.csv").write_text("sku,name,price,currency\n" + "".join(f"{s},Kettle,10.00,EUR\n"
                                                                                 for s in skus))
    (tmp_path / "listings.csv").write_text("sku,competitor,url\n" + "".join(f"{s},alpha,{shop.url(s)}\n"
                                                                            for s in skus))
    pricemon = pricemon_cli(config)
    pricemon("import", "products", str(tmp_path / "products.csv"))
    pricemon("import", "listings", str(tmp_path / "listings.csv"))
    for sku in skus:
        shop.prices[sku] = "9.49"

    daemon = start_daemon(config, "--log-format", "json")

    def suggested() -> list[tuple[str, float]]:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
            return connection.execute(
                "SELECT p.sku, s.suggested_price FROM suggestions s JOIN products p ON p.id = s.product_id "
                "ORDER BY p.sku").fetchall()

    wait_for(lambda: {sku for sku, _ in suggested()} == {"K1", "K2"}, "suggestions for K1 and K2", daemon=daemon,
             timeout=60)
    messages = [json.loads(line)["message"] for line in daemon.log.splitlines() if line.startswith("{")]
    # a second round of suggestions ran after the crash: the daemon's pool was restarted, not lost
    wait_for(lambda: sum("strategy exits crashed its worker process (exit code 1) on K-EXIT" in m
                         for m in [json.loads(line)["message"] for line in daemon.log.splitlines()
                                   if line.startswith("{")]) >= 2,
             "two suggestion rounds that met the crashing plugin", daemon=daemon, timeout=60)
    messages = [json.loads(line)["message"] for line in daemon.log.splitlines() if line.startswith("{")]
    assert any("strategy hangs timed out after 1s on K-HANG" in m for m in messages), messages
    assert any(m.startswith("pricing K-EXIT: strategy exits crashed") for m in messages), messages
    assert daemon.alive()
    assert daemon.stop() == 0
    assert {sku for sku, _ in suggested()} == {"K1", "K2"}


@pytest.mark.parametrize("value", ["1e30", "123456789012.34", "9999999999.99999"])
def test_a_strategy_result_outside_the_money_range_fails_its_product_only(
    market: Market, tmp_path: Path, value: str
) -> None:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "odd.py").write_text(
        "from decimal import Decimal\nfrom monitor.pricing import Suggestion\n\n"
        "class Odd:\n    name = 'odd'\n    description = ''\n    options = {}\n\n"
        "    def suggest(self, context, options):\n"
        f"        return Suggestion(Decimal('{value}') if context.product.sku == 'BAD' else Decimal('12.00'), 'odd')\n",
        encoding="utf-8")
    configure(market, folder, '[pricing.default]\nstrategies = ["odd"]\nguardrails = []\n')
    market.products("sku,name,price,currency\nBAD,Item,50.00,EUR\nGOOD,Item,50.00,EUR\n")
    summary = market.pricemon("suggest", "--json").json()
    assert (summary["suggested"], summary["failed"]) == (1, 1)
    [error] = summary["errors"]
    assert error["sku"] == "BAD" and error["strategy"] == "odd"
    assert "strategy odd returned a price pricemon cannot keep" in error["error"]
    [row] = market.pricemon("suggestions", "--json").json()
    assert (row["sku"], row["suggested_price"]) == ("GOOD", "12.00")


def test_strategy_workers_end_when_suggest_is_killed(sqlite_market: Market, tmp_path: Path) -> None:
    import subprocess
    import sys

    folder = hostile_folder(tmp_path)
    configure(sqlite_market, folder,
              '[pricing]\ntimeout = "10m"\nworkers = 2\n[pricing.default]\nstrategies = ["hangs"]\n')
    sqlite_market.products("sku,name,price,currency\nH-1,Item,50.00,EUR\nH-2,Item,50.00,EUR\n")
    exe = Path(sys.executable).with_name("pricemon")
    process = subprocess.Popen([str(exe), "--config", str(sqlite_market.config_path), "--database-url",
                                sqlite_market.database_url, "suggest"], cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        parent = psutil.Process(process.pid)
        workers = wait_for(
            lambda: [p for p in parent.children() if "monitor.pricing.isolation" in " ".join(p.cmdline())],
            "the strategy workers to start", timeout=60)
        time.sleep(1.0)  # they are inside time.sleep(1000) now
        process.kill()  # SIGKILL: no chance to stop them
        process.wait(timeout=10)
        _gone, alive = psutil.wait_procs(workers, timeout=15)
        assert alive == [], f"strategy workers outlived their parent: {alive}"
    finally:
        if process.poll() is None:
            process.kill()
