"""Strategy discovery from entry points and plugin files, and every kind of plugin failure.

The example package under examples/ is really installed (pip --target into a temp folder put on
sys.path), so discovery goes through importlib.metadata exactly as for any installed plugin.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.pricing.conftest import Market

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "pricemon-beat-average"


def _write_dist_info(target: Path, name: str, version: str, entry_points: dict[str, str]) -> None:
    """What an installer leaves behind: enough for importlib.metadata to find the entry points."""
    info = target / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[pricemon.strategies]\n{lines}", encoding="utf-8")


@pytest.fixture(scope="session")
def installed_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin package installed into its own folder (not on sys.path yet)."""
    work = tmp_path_factory.mktemp("example")
    source = work / "src"
    shutil.copytree(EXAMPLE, source)  # building writes egg-info next to the sources: not into the repo
    target = work / "site"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-input", "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    if result.returncode != 0:
        # No build backend reachable (offline): lay down the same metadata the wheel would carry.
        project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text(encoding="utf-8"))["project"]
        shutil.copytree(EXAMPLE / "src" / "pricemon_beat_average", target / "pricemon_beat_average")
        _write_dist_info(target, project["name"], project["version"],
                         project["entry-points"]["pricemon.strategies"])
    return target


FILE_PLUGIN = '''
from decimal import Decimal
from monitor.pricing import NoChange, Option, Suggestion


class FixedPrice:
    name = "fixed_price"
    description = "Always the configured price."
    options = {"price": Option(Decimal, Decimal("9.99"), "The price.")}

    def suggest(self, context, options):
        return Suggestion(options["price"], "fixed")
'''

BAD_PLUGINS = '''
import time
from decimal import Decimal
from monitor.pricing import NoChange, Suggestion


class _Base:
    options = {}
    description = "misbehaves on purpose"


class Raiser(_Base):
    name = "raiser"
    def suggest(self, context, options):
        raise ZeroDivisionError("boom")


class Sleeper(_Base):
    name = "sleeper"
    def suggest(self, context, options):
        time.sleep(3)
        return NoChange("too late")


class Negative(_Base):
    name = "negative"
    def suggest(self, context, options):
        return Suggestion(Decimal("-1"), "negative")


class Zero(_Base):
    name = "zero"
    def suggest(self, context, options):
        return Suggestion(Decimal("0"), "zero")


class NotANumber(_Base):
    name = "nan"
    def suggest(self, context, options):
        return Suggestion(Decimal("NaN"), "nan")


class Floaty(_Base):
    name = "floaty"
    def suggest(self, context, options):
        return Suggestion(19.99, "a float")


class Dollars(_Base):
    name = "dollars"
    def suggest(self, context, options):
        return Suggestion(Decimal("19.99"), "in dollars", currency="USD")


class Nonsense(_Base):
    name = "nonsense"
    def suggest(self, context, options):
        return "19.99"
'''

FAILURES = {
    "raiser": "strategy raiser raised ZeroDivisionError: boom",
    "sleeper": "strategy sleeper timed out after 0.2s",
    "negative": "strategy negative returned a price that is not positive (-1)",
    "zero": "strategy zero returned a price that is not positive (0)",
    "nan": "strategy nan returned a price that is not a finite number",
    "floaty": "strategy floaty returned a price of type float, expected Decimal",
    "dollars": "strategy dollars returned a price in USD, the product is priced in EUR",
    "nonsense": "strategy nonsense returned str, expected Suggestion or NoChange",
    "broken_ep": "strategy broken_ep failed to import from pricemon-broken 0.3",
    "in_broken_file": "strategy in_broken_file is unavailable: plugin file",
}


def test_builtins_and_an_installed_package_are_listed_with_their_source(
    installed_example: Path, monkeypatch: pytest.MonkeyPatch, sqlite_market: Market, tmp_path: Path
) -> None:
    monkeypatch.syspath_prepend(str(installed_example))
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "fixed.py").write_text(FILE_PLUGIN, encoding="utf-8")
    rows = sqlite_market.pricemon("--strategies-dir", str(folder), "strategies", "list", "--json").json()
    by_name = {r["name"]: r for r in rows}
    assert {"match_lowest", "undercut", "position", "raise_to_market", "beat_average", "fixed_price"} <= set(by_name)
    assert by_name["beat_average"]["source"].startswith("pricemon-beat-average 1.2.0")
    assert by_name["beat_average"]["options"]["percent"] == {
        "type": "Decimal", "default": "1", "description": "How far below the average, in percent."}
    assert by_name["undercut"]["source"].startswith("pricemon 0.1.0 (strategies.undercut:Undercut)")
    assert by_name["fixed_price"]["source"] == str(folder / "fixed.py")
    table = sqlite_market.pricemon("--strategies-dir", str(folder), "strategies", "list").stdout
    assert "beat_average" in table and "fixed_price" in table


def test_the_installed_example_prices_products(
    installed_example: Path, monkeypatch: pytest.MonkeyPatch, sqlite_market: Market
) -> None:
    monkeypatch.syspath_prepend(str(installed_example))
    sqlite_market.reconfigure('[pricing.default]\nstrategies = ["beat_average"]\nguardrails = []\n'
                              'options = { beat_average = { percent = 10 } }\n')
    sqlite_market.products("sku,name,price,currency\nA-1,Kettle,30.00,EUR\n")
    sqlite_market.listings([("A-1", "acme"), ("A-1", "globex")])
    sqlite_market.observe({("A-1", "acme"): "20.00", ("A-1", "globex"): "30.00"})
    sqlite_market.pricemon("suggest")
    [row] = sqlite_market.pricemon("suggestions", "--json").json()
    assert (row["strategy"], row["suggested_price"]) == ("beat_average", "22.50")
    assert row["reason"] == "average of 2: 25.00; 10% below -> 22.50"


def test_a_name_defined_twice_is_an_error_naming_both(sqlite_market: Market, tmp_path: Path) -> None:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "mine.py").write_text(FILE_PLUGIN.replace('"fixed_price"', '"undercut"'), encoding="utf-8")
    out = sqlite_market.pricemon("--strategies-dir", str(folder), "strategies", "list", expect=1)
    assert "strategy name 'undercut' is defined twice" in out.stderr
    assert "pricemon 0.1.0 (strategies.undercut:Undercut)" in out.stderr and str(folder / "mine.py") in out.stderr
    assert "Traceback" not in out.stderr


def test_each_kind_of_plugin_failure_is_reported_and_the_rest_goes_on(
    sqlite_market: Market, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "bad.py").write_text(BAD_PLUGINS, encoding="utf-8")
    (folder / "broken.py").write_text("import nothing_called_this_exists\n", encoding="utf-8")
    site = tmp_path / "site"
    _write_dist_info(site, "pricemon-broken", "0.3", {"broken_ep": "nothing_called_this_either:Strategy"})
    monkeypatch.syspath_prepend(str(site))

    names = list(FAILURES)
    skus = [f"S-{i}" for i in range(len(names))]
    overrides = "".join(
        f'[pricing.skus."{sku}"]\nstrategies = ["{name}"]\n' for sku, name in zip(skus, names, strict=True)
    )
    sqlite_market.reconfigure(f'[pricing]\ntimeout = "200ms"\n{overrides}')
    rows = "".join(f"{sku},Item,50.00,EUR\n" for sku in skus)
    sqlite_market.products(f"sku,name,price,currency\n{rows}OK-1,Fine,50.00,EUR\n")
    sqlite_market.listings([(sku, "acme") for sku in [*skus, "OK-1"]])
    sqlite_market.observe({(sku, "acme"): "40.00" for sku in [*skus, "OK-1"]})

    out = sqlite_market.pricemon("--strategies-dir", str(folder), "suggest", "--json")
    summary = out.json()
    assert (summary["products"], summary["suggested"], summary["failed"]) == (len(skus) + 1, 1, len(skus))
    errors = {e["sku"]: e["error"] for e in summary["errors"]}
    for sku, name in zip(skus, names, strict=True):
        assert FAILURES[name] in errors[sku], (name, errors[sku])
    assert "broken.py" in errors[skus[names.index("in_broken_file")]]
    # the products whose strategy failed keep their price and get no suggestion; the others go on
    [suggestion] = sqlite_market.pricemon("suggestions", "--json").json()
    assert (suggestion["sku"], suggestion["suggested_price"]) == ("OK-1", "39.99")
    prices = {p["sku"]: p["price"] for p in sqlite_market.pricemon("products", "--json").json()}
    assert all(prices[sku] == "50.00" for sku in skus)
    # the human output names the plugin and the product too
    text = sqlite_market.pricemon("--strategies-dir", str(folder), "suggest").stderr
    assert f"{skus[0]}: strategy raiser raised ZeroDivisionError: boom" in text


HISTORY_PLUGIN = '''
from decimal import Decimal
from monitor.pricing import Suggestion


class HistoryLow:
    name = "history_low"
    description = "The lowest price any competitor ever had."
    options = {}

    def suggest(self, context, options):
        points = context.price_history()
        low = min(p.price for p in points)
        return Suggestion(low, f"lowest of {len(points)} stored state(s): {low}")
'''


def test_a_strategy_can_read_the_products_price_history(sqlite_market: Market, tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "history.py").write_text(HISTORY_PLUGIN, encoding="utf-8")
    sqlite_market.reconfigure('[pricing.default]\nstrategies = ["history_low"]\nguardrails = []\n')
    sqlite_market.products("sku,name,price,currency\nA-1,Kettle,30.00,EUR\nB-2,Other,30.00,EUR\n")
    sqlite_market.listings([("A-1", "acme"), ("A-1", "globex"), ("B-2", "acme")])
    earlier = datetime.now(UTC) - timedelta(days=1)
    sqlite_market.observe({("A-1", "acme"): "12.00", ("A-1", "globex"): "20.00", ("B-2", "acme"): "5.00"}, at=earlier)
    sqlite_market.observe({("A-1", "acme"): "25.00", ("B-2", "acme"): "26.00"})
    sqlite_market.pricemon("--strategies-dir", str(folder), "suggest")
    rows = {r["sku"]: r for r in sqlite_market.pricemon("suggestions", "--json").json()}
    # each product sees its own history only (B-2's 5.00 is not A-1's)
    assert (rows["A-1"]["suggested_price"], rows["A-1"]["reason"]) == ("12.00", "lowest of 3 stored state(s): 12.0000")
    assert rows["B-2"]["suggested_price"] == "5.00"
