"""Everything happens exactly once: two `pricemon apply` processes at once apply each approved
suggestion once (one audit row each) and post each change to the webhook once; on SQLite and
PostgreSQL, with real processes and a real webhook server on 127.0.0.1."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from monitor.store.models import PriceChange, Product, Suggestion
from tests.pricing.conftest import Market

PRODUCTS = 400


class SlowWebhook:
    """Accepts every POST after `delay` seconds (so two sends overlap) and counts each change_id."""

    def __init__(self, delay: float) -> None:
        self.received: Counter[int] = Counter()
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                time.sleep(delay)
                with hook.lock:
                    hook.received.update(c["change_id"] for c in body["changes"])
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/prices"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def slow_webhook() -> Iterator[SlowWebhook]:
    hook = SlowWebhook(delay=0.3)
    yield hook
    hook.close()


def _pricemon_process(market: Market, *args: str) -> subprocess.Popen[str]:
    exe = Path(sys.executable).with_name("pricemon")
    argv = [str(exe), "--config", str(market.config_path), "--database-url", market.database_url, *args]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))


def _approved_catalogue(market: Market) -> None:
    skus = [f"S-{i:04d}" for i in range(PRODUCTS)]
    market.products("sku,name,price,currency\n" + "".join(f"{s},Thing {s},50.00,EUR\n" for s in skus))
    market.listings((s, "acme") for s in skus)
    market.observe({(s, "acme"): "40.00" for s in skus})
    market.pricemon("suggest")
    assert market.pricemon("approve", "--all", "--json").json()["approved"] == PRODUCTS


def test_two_applies_at_once_apply_and_send_each_change_once(market: Market, slow_webhook: SlowWebhook) -> None:
    market.reconfigure(f'[feed]\nwebhook_url = "{slow_webhook.url}"\nbatch_size = 40\nretries = 0\n')
    _approved_catalogue(market)

    first, second = (_pricemon_process(market, "apply", "--json") for _ in range(2))
    results = [json.loads(p.communicate(timeout=300)[0]) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0]

    applied = [change["suggestion_id"] for result in results for change in result["applied"]]
    assert len(applied) == PRODUCTS and len(set(applied)) == PRODUCTS  # each by exactly one process
    with market.store.session() as session:
        changes = session.scalar(select(func.count()).select_from(PriceChange))
        per_suggestion = session.execute(
            select(PriceChange.suggestion_id, func.count()).group_by(PriceChange.suggestion_id)
        ).all()
        statuses = Counter(session.scalars(select(Suggestion.status)))
        unsent = session.scalar(select(func.count()).where(PriceChange.feed_state != "sent"))
    assert changes == PRODUCTS  # one audit row per change
    assert {n for _, n in per_suggestion} == {1}
    assert statuses == {"applied": PRODUCTS}
    assert unsent == 0
    # The feed: every change posted, none twice, though both sends ran at the same time.
    assert len(slow_webhook.received) == PRODUCTS
    assert set(slow_webhook.received.values()) == {1}
    sent = [result["feed"]["sent"] for result in results]
    assert sum(sent) == PRODUCTS
    products = {p["price"] for p in market.pricemon("products", "--json").json()}
    assert products == {"39.99"}


def test_a_reimport_keeps_prices_pricemon_applied_since_the_last_import(market: Market) -> None:
    exported = "sku,name,price,currency\nA-1,Kettle,50.00,EUR\nB-2,Toaster,50.00,EUR\nC-3,Mug,50.00,EUR\n"
    market.products(exported)
    market.listings([("A-1", "acme"), ("B-2", "acme")])
    market.observe({("A-1", "acme"): "40.00", ("B-2", "acme"): "45.00"})
    market.pricemon("suggest")
    market.pricemon("approve", "--all")
    market.pricemon("apply")
    prices = lambda: {p["sku"]: (p["name"], p["price"]) for p in market.pricemon("products", "--json").json()}  # noqa: E731
    assert prices() == {"A-1": ("Kettle", "39.99"), "B-2": ("Toaster", "44.99"), "C-3": ("Mug", "50.00")}

    # The same old export again, with a new name and a new price for C-3 (never applied): the
    # applied prices stay, the SKUs are listed, everything else is imported.
    path = market.tmp_path / "products.csv"
    path.write_text(exported.replace("Kettle", "Kettle 2l").replace("Mug,50.00", "Mug,12.00"), encoding="utf-8")
    result = market.pricemon("import", "products", str(path), "--json").json()
    assert result["kept_prices"] == ["A-1", "B-2"]
    assert prices() == {"A-1": ("Kettle 2l", "39.99"), "B-2": ("Toaster", "44.99"), "C-3": ("Mug", "12.00")}
    text = market.pricemon("import", "products", str(path)).stdout
    assert "A-1, B-2" in text and "--overwrite-prices" in text  # still kept on a second try

    # A file that agrees with the applied price, then one that moves it: the file is newer now.
    path.write_text("sku,name,price,currency\nB-2,Toaster,44.99,EUR\n", encoding="utf-8")
    assert market.pricemon("import", "products", str(path), "--json").json()["kept_prices"] == []
    path.write_text("sku,name,price,currency\nB-2,Toaster,46.00,EUR\n", encoding="utf-8")
    assert market.pricemon("import", "products", str(path), "--json").json()["kept_prices"] == []
    assert prices()["B-2"] == ("Toaster", "46.00")

    # --overwrite-prices takes the file's price regardless.
    path.write_text(exported, encoding="utf-8")
    result = market.pricemon("import", "products", str(path), "--overwrite-prices", "--json").json()
    assert result["kept_prices"] == []
    assert prices()["A-1"] == ("Kettle", "50.00")


def test_apply_beside_an_auto_applying_suggest_never_applies_from_a_stale_price(market: Market) -> None:
    """`pricemon apply` of reviewed suggestions while `pricemon suggest` (what the daemon runs)
    auto-applies others for the same products: whichever comes second finds the price moved and
    supersedes its suggestion, so the audit trail of each product is one unbroken chain."""
    _approved_catalogue(market)  # S-xxxx: approved 50.00 -> 39.99 (match_lowest)
    market.reconfigure('[pricing.default]\nstrategies = ["undercut"]\nauto_approve = true\n'
                       'options = { undercut = { percent = 10 } }\n')

    apply, suggest = _pricemon_process(market, "apply", "--json"), _pricemon_process(market, "suggest", "--json")
    for process in (apply, suggest):
        _out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err

    with market.store.session() as session:
        changes = session.execute(
            select(PriceChange.product_id, PriceChange.old_price, PriceChange.new_price).order_by(PriceChange.id)
        ).all()
        prices = {pid: price for pid, price in session.execute(select(Product.id, Product.price))}
    chains: dict[int, list[tuple[Any, Any]]] = {}
    for product_id, old, new in changes:
        chains.setdefault(product_id, []).append((old, new))
    assert len(chains) == PRODUCTS  # every product was repriced by one or the other
    for product_id, chain in chains.items():
        assert chain[0][0] == Decimal("50"), chain
        for (_, new), (old, _) in itertools.pairwise(chain):
            assert old == new, f"product {product_id} applied from a stale price: {chain}"
        assert chain[-1][1] == prices[product_id]
