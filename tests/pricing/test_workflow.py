"""The review/apply/feed round trip through the `pricemon` command, on SQLite and PostgreSQL,
with a real webhook server on 127.0.0.1 that fails first and succeeds later."""

from __future__ import annotations

import csv
import json
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from monitor.store.models import PriceChange, Product
from tests.pricing.conftest import Market

SECRET = "s3cr3t-feed-token-42"


class Webhook:
    """Answers 503 to the first `fail_first` POSTs, then 204; keeps what it received."""

    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.requests: list[tuple[dict[str, str], Any, int]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = 503 if len(hook.requests) < hook.fail_first else 204
                hook.requests.append((dict(self.headers), body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/prices"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook(fail_first=3)
    yield hook
    hook.close()


def price_changes(market: Market) -> list[PriceChange]:
    with market.store.session() as session:
        return list(session.scalars(select(PriceChange).order_by(PriceChange.id)))


def test_suggest_review_apply_and_feed_round_trip(
    market: Market, webhook: Webhook, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed_csv = tmp_path / "out" / "feed.csv"
    feed_csv.parent.mkdir()  # pricemon does not create the feed's folder (`config check` reports a missing one)
    monkeypatch.setenv("PRICEMON_TEST_FEED_SECRET", SECRET)
    market.reconfigure(
        f'[feed]\ncsv_path = "{feed_csv}"\nwebhook_url = "{webhook.url}"\nsecret_env = "PRICEMON_TEST_FEED_SECRET"\n'
        'retries = 1\nbackoff = "10ms"\n'
    )
    market.products(
        "sku,name,price,currency,cost\nA-1,Kettle,25.00,EUR,20.00\nB-2,Drill,100.00,EUR,\n"
        "C-3,Lamp,19.99,EUR,\nD-4,Unwatched,10.00,EUR,\n"
    )
    market.listings([("A-1", "acme"), ("A-1", "globex"), ("B-2", "acme"), ("C-3", "initech")])
    market.observe({("A-1", "acme"): "19.99", ("A-1", "globex"): "22.50", ("B-2", "acme"): "89.00",
                    ("C-3", "initech"): "19.99"})

    summary = market.pricemon("suggest", "--json").json()
    # C-3 is already at the market price, D-4 has no offers: neither gets a suggestion
    assert (summary["products"], summary["suggested"], summary["unchanged"], summary["no_change"]) == (4, 2, 1, 1)
    first = {s["sku"]: s for s in market.pricemon("suggestions", "--json").json()}
    assert set(first) == {"A-1", "B-2"}
    assert first["A-1"]["reason"] == "lowest: acme 19.99; cost floor 20.00 -> 20.00; round .99 -> 20.99"
    details = first["A-1"]["details"]
    assert (details["competitor_min"], details["competitor_median"], details["competitor_max"]) == (
        "19.99", "21.24", "22.50")
    assert (details["rank_before"], details["rank_after"]) == (3, 2)
    assert [o["competitor"] for o in details["offers_used"]] == ["acme", "globex"]

    # the market moves for B-2: its pending suggestion is superseded; A-1's still says the same and stays
    market.observe({("B-2", "acme"): "79.00"})
    market.pricemon("suggest")
    second = {s["sku"]: s for s in market.pricemon("suggestions", "--json").json()}
    assert second["A-1"]["id"] == first["A-1"]["id"]
    assert second["B-2"]["suggested_price"] == "78.99" and second["B-2"]["id"] != first["B-2"]["id"]
    superseded = market.pricemon("suggestions", "--status", "superseded", "--json").json()
    assert [s["id"] for s in superseded] == [first["B-2"]["id"]]

    assert market.pricemon("reject", "--sku", "B-2", "--by", "bob", "--json").json()["rejected"] == 1
    approved = market.pricemon("approve", str(first["A-1"]["id"]), "--by", "alice", "--json").json()
    assert (approved["approved"], approved["ids"]) == (1, [first["A-1"]["id"]])
    again = market.pricemon("approve", str(first["A-1"]["id"]), expect=1)
    assert "is approved, not pending" in again.stderr
    assert "no suggestion 999" in market.pricemon("approve", "999", expect=1).stderr

    # apply: the price changes and is audited; the webhook fails both tries of this send
    applied = market.pricemon("--log-level", "debug", "apply", "--by", "alice", "--json")
    result = applied.json()
    assert result["applied"] == [{"sku": "A-1", "old_price": "25.00", "new_price": "20.99", "currency": "EUR",
                                  "strategy": "match_lowest", "suggestion_id": first["A-1"]["id"]}]
    assert result["feed"]["failed"] == 1 and "HTTP 503" in result["feed"]["error"]
    [change] = price_changes(market)
    assert (change.old_price, change.new_price) == (Decimal("25.00"), Decimal("20.99"))
    assert (change.applied_by, change.strategy) == ("alice", "match_lowest")
    assert change.reason == first["A-1"]["reason"]
    assert (change.feed_state, change.feed_attempts) == ("failed", 2)
    assert "HTTP 503" in (change.feed_error or "")
    products = {p["sku"]: p["price"] for p in market.pricemon("products", "--json").json()}
    assert products["A-1"] == "20.99" and products["B-2"] == "100.00"

    # the CSV feed was written anyway, atomically, with every active product
    with feed_csv.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["sku", "price", "currency", "updated_at"]
    assert {r["sku"]: r["price"] for r in rows} == {"A-1": "20.99", "B-2": "100.00", "C-3": "19.99", "D-4": "10.00"}
    assert datetime.fromisoformat(rows[0]["updated_at"]).tzinfo is not None
    assert not [p for p in feed_csv.parent.iterdir() if p.name != "feed.csv"]  # no temp file left behind
    # readable as any new file of this user is (the umask's mode), not a temporary file's 0600
    probe = tmp_path / "probe"
    probe.write_text("")
    assert stat.S_IMODE(feed_csv.stat().st_mode) == stat.S_IMODE(probe.stat().st_mode)

    # the next apply (nothing new approved) re-sends the unsent change; the server now accepts it
    resent = market.pricemon("--log-level", "debug", "apply", "--json").json()
    assert resent["applied"] == [] and resent["feed"]["sent"] == 1
    [change] = price_changes(market)
    assert (change.feed_state, change.feed_attempts, change.feed_error) == ("sent", 4, None)
    assert change.feed_sent_at is not None
    assert [status for _, _, status in webhook.requests] == [503, 503, 503, 204]
    headers, body, _ = webhook.requests[-1]
    assert headers["X-Pricemon-Secret"] == SECRET
    [sent] = body["changes"]
    assert (sent["sku"], sent["price"], sent["old_price"], sent["currency"]) == ("A-1", "20.99", "25.00", "EUR")
    # nothing left to send; the secret never shows in output or logs
    nothing = market.pricemon("feed", "send", "--json").json()
    assert nothing["sent"] == 0 and nothing["failed"] == 0
    assert len(webhook.requests) == 4
    for outcome in (applied,):
        assert SECRET not in outcome.stdout and SECRET not in outcome.stderr
    assert "price feed POST failed" in applied.stderr


def test_missing_webhook_secret_is_a_config_error_before_any_price_changes(
    market: Market, webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PRICEMON_TEST_FEED_SECRET", raising=False)
    market.reconfigure(f'[feed]\nwebhook_url = "{webhook.url}"\nsecret_env = "PRICEMON_TEST_FEED_SECRET"\n')
    market.products("sku,name,price,currency\nA-1,Kettle,25.00,EUR\n")
    market.listings([("A-1", "acme")])
    market.observe({("A-1", "acme"): "19.99"})
    market.pricemon("suggest")
    market.pricemon("approve", "--all")
    out = market.pricemon("apply", expect=1)
    assert "PRICEMON_TEST_FEED_SECRET is not set" in out.stderr
    assert market.pricemon("products", "--json").json()[0]["price"] == "25.00"
    assert price_changes(market) == []


def test_auto_approve_applies_within_guardrails_without_review(market: Market) -> None:
    market.reconfigure('[pricing.tags.clearance]\nstrategies = ["undercut"]\nauto_approve = true\n'
                       'options = { undercut = { percent = 10 } }\n')
    market.products("sku,name,price,currency,cost,tags\nA-1,Kettle,25.00,EUR,18.50,clearance\n"
                    "B-2,Drill,100.00,EUR,,\n")
    market.listings([("A-1", "acme"), ("B-2", "acme")])
    market.observe({("A-1", "acme"): "20.00", ("B-2", "acme"): "89.00"})
    summary = market.pricemon("suggest", "--json").json()
    assert (summary["suggested"], summary["auto_applied"]) == (2, 1)
    # 20.00 - 10% = 18.00, under cost 18.50: the floor holds, then .99 rounding rounds up past it
    products = {p["sku"]: p["price"] for p in market.pricemon("products", "--json").json()}
    assert products == {"A-1": "18.99", "B-2": "100.00"}
    [change] = price_changes(market)
    assert change.applied_by == "pricemon (auto-approve)" and change.feed_state == "none"
    applied = market.pricemon("suggestions", "--status", "applied", "--json").json()
    assert [(s["sku"], s["auto_approved"]) for s in applied] == [("A-1", True)]
    assert [s["sku"] for s in market.pricemon("suggestions", "--json").json()] == ["B-2"]


def test_backtest_replays_each_competitor_change(market: Market) -> None:
    market.products("sku,name,price,currency\nA-1,Kettle,35.00,EUR\n")
    market.listings([("A-1", "acme"), ("A-1", "globex")])
    start = datetime.now(UTC) - timedelta(days=3)
    market.observe({("A-1", "acme"): "30.00", ("A-1", "globex"): "32.00"}, at=start)
    market.observe({("A-1", "acme"): "25.00"}, at=start + timedelta(days=1))
    market.observe({("A-1", "globex"): "21.00"}, at=start + timedelta(days=2))
    market.observe({("A-1", "acme"): "25.00", ("A-1", "globex"): "21.00"}, at=start + timedelta(days=2, hours=1))
    result = market.pricemon("backtest", "--strategy", "match_lowest", "--days", "7", "--json").json()
    assert (result["products"], result["events"], result["suggestions"]) == (1, 3, 3)
    [item] = result["results"]
    assert [e["suggested"] for e in item["events"]] == ["29.99", "24.99", "20.99"]
    assert [(e["rank_before"], e["rank_after"]) for e in item["events"]] == [(3, 1), (2, 1), (2, 1)]
    assert item["end_price"] == "20.99"
    assert "unknown strategy 'nope'" in market.pricemon("backtest", "--strategy", "nope", expect=1).stderr
    # the stored products are untouched
    with market.store.session() as session:
        assert session.scalars(select(Product.price)).one() == 35


def test_a_suggestion_is_not_applied_when_our_price_moved_since(market: Market) -> None:
    market.products("sku,name,price,currency\nA-1,Kettle,25.00,EUR\n")
    market.listings([("A-1", "acme")])
    market.observe({("A-1", "acme"): "19.99"})
    market.pricemon("suggest")
    market.pricemon("approve", "--all")
    market.products("sku,name,price,currency\nA-1,Kettle,23.00,EUR\n")  # someone re-imports a new price
    assert market.pricemon("apply", "--json").json()["applied"] == []
    assert market.pricemon("products", "--json").json()[0]["price"] == "23.00"
    assert [s["status"] for s in market.pricemon("suggestions", "--status", "all", "--json").json()] == ["superseded"]
    assert price_changes(market) == []


def test_suggest_reads_all_offers_in_one_query_and_writes_in_batches(sqlite_market: Market) -> None:
    from sqlalchemy import event

    from monitor.pricing.workflow import compute_suggestions
    from monitor.settings import load_settings

    count = 1_234
    sqlite_market.reconfigure("[pricing]\nbatch_size = 500\n")
    skus = [f"P-{i:05d}" for i in range(count)]
    sqlite_market.products("sku,name,price,currency\n" + "".join(f"{sku},Item,50.00,EUR\n" for sku in skus))
    sqlite_market.listings([(sku, "acme") for sku in skus])
    sqlite_market.observe({(sku, "acme"): f"{30 + i % 7}.50" for i, sku in enumerate(skus)})

    statements: list[str] = []
    engine = sqlite_market.store.engine
    listener = lambda _c, _cur, statement, *_a: statements.append(statement)  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        settings = load_settings(sqlite_market.config_path, database_url=sqlite_market.database_url, environ={})
        summary = compute_suggestions(settings, sqlite_market.store)
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert (summary.products, summary.suggested, summary.failed) == (count, count, 0)
    # one streamed query for every product's offers, not one per product
    assert len([s for s in statements if "JOIN price_history" in s]) == 1
    inserts = [s for s in statements if s.startswith("INSERT INTO suggestions")]
    assert 3 <= len(inserts) <= 10  # one executemany per batch of 500 (SQLite may split large ones)
    rows = sqlite_market.pricemon("suggestions", "--json").json()
    assert len(rows) == count and rows[7]["suggested_price"] == "29.99"  # 30.50 -> .99 down
