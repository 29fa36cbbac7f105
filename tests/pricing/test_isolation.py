"""Strategies in worker processes (monitor.pricing.isolation): what a plugin author relies on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.pricing.conftest import CONFIG, Market

HISTORY_AND_CRASH = '''
import os
from monitor.pricing import NoChange, Suggestion


class HistoryLow:
    name = "history_low"
    description = "The lowest price any competitor ever had; ends its process for one SKU."
    options = {}

    def suggest(self, context, options):
        if context.product.sku == "CRASH":
            os._exit(7)
        points = context.price_history()
        if not points:
            return NoChange("no history")
        low = min(p.price for p in points)
        return Suggestion(low, f"lowest of {len(points)} stored state(s)")
'''


def test_price_history_is_served_to_workers_across_batches_and_a_crash(sqlite_market: Market, tmp_path: Path) -> None:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "history.py").write_text(HISTORY_AND_CRASH, encoding="utf-8")
    # One worker and batches of two: the crash restarts the only worker, pipelined batches go on.
    sqlite_market.config_path.write_text(
        f'strategies_dir = "{folder}"\n{CONFIG}[pricing]\nworkers = 1\nbatch_size = 2\n'
        '[pricing.default]\nstrategies = ["history_low"]\nguardrails = []\n', encoding="utf-8")
    skus = ["A-1", "CRASH", "B-2", "C-3", "D-4"]
    sqlite_market.products("sku,name,price,currency\n" + "".join(f"{s},Item,30.00,EUR\n" for s in skus))
    sqlite_market.listings([(s, "acme") for s in skus])
    earlier = datetime.now(UTC) - timedelta(days=1)
    sqlite_market.observe({(s, "acme"): f"{10 + i}.00" for i, s in enumerate(skus)}, at=earlier)
    sqlite_market.observe({(s, "acme"): "25.00" for s in skus})
    summary = sqlite_market.pricemon("suggest", "--json").json()
    assert (summary["suggested"], summary["failed"]) == (4, 1)
    [error] = summary["errors"]
    assert (error["sku"], error["strategy"]) == ("CRASH", "history_low")
    assert error["error"] == "strategy history_low crashed its worker process (exit code 7)"
    rows = {r["sku"]: r for r in sqlite_market.pricemon("suggestions", "--json").json()}
    # each product saw its own history (A-1's low was 10.00, D-4's 14.00)
    assert {s: rows[s]["suggested_price"] for s in rows} == {"A-1": "10.00", "B-2": "12.00", "C-3": "13.00",
                                                             "D-4": "14.00"}
    assert rows["A-1"]["reason"] == "lowest of 2 stored state(s)"
