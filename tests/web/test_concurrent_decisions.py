"""The workspace and the CLI deciding and applying the same suggestions at once: a real `pricemon
serve` taking API and page requests (two approver tokens) while `pricemon approve --all` and
`pricemon apply` run as processes, round after round. Each suggestion is decided by one of them and
applied once, by one of them; the prices, the audit trail and the CSV feed agree; on SQLite and
PostgreSQL."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from monitor.store.models import PriceChange, Product, Suggestion, utcnow
from tests.pricing.conftest import Market
from tests.web.served import make_tokens, start

PRODUCTS = 48
CHUNK = 4  # suggestions per web decision: many small ones, spread over the CLI's whole run
# Per round: how long the web waits after the CLI is let go, between its approvals, and between its
# applies; who wins which suggestion then differs from round to round (the CLI acts ~0.2 s in).
SCHEDULE = ((0.0, 0.1, 0.02), (0.0, 0.1, 0.6), (0.3, 0.05, 0.1), (0.1, 0.0, 0.3))
CLI_USER = "cli-user"
Pace = tuple[float, float, float]  # (delay, gap, every): see SCHEDULE


@dataclass
class Reports:
    """What each actor said it did: suggestion ids by who claimed them, and the answers seen."""

    approved: dict[str, list[int]] = field(default_factory=dict)
    applied: dict[str, list[int]] = field(default_factory=dict)
    page_approvals: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, who: str, ids: list[int]) -> None:
        with self.lock:
            getattr(self, kind).setdefault(who, []).extend(ids)


class WarmCli:
    """`pricemon ARGS` as its own process, started ahead with its modules imported, waiting for a
    line on stdin to run: each round's actors then start at one moment instead of the CLI's
    second of imports after the web's requests are done."""

    def __init__(self, market: Market, *args: str) -> None:
        self.args = args
        argv = ["--config", str(market.config_path), "--database-url", market.database_url, *args]
        self.process = subprocess.Popen(
            [sys.executable, "-c", WARM_CLI, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )

    def go(self) -> None:
        assert self.process.stdin is not None and self.process.stderr is not None
        ready = self.process.stderr.readline()
        assert ready == "ready\n", f"pricemon {' '.join(self.args)} did not start: {ready}"
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def printed(self) -> dict[str, Any]:
        """The JSON answer as soon as it is printed (the process may still be exiting)."""
        assert self.process.stdout is not None
        lines: list[str] = []
        while not lines or lines[-1] != "}\n":
            line = self.process.stdout.readline()
            if not line:
                self.finish()
                raise AssertionError(f"pricemon {' '.join(self.args)} exited 0 without an answer")
            lines.append(line)
        return json.loads("".join(lines))

    def stop(self) -> None:
        """Kill it if it still runs (a failed round must not leave it waiting for its line)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate(timeout=30)

    def finish(self) -> None:
        _out, err = self.process.communicate(timeout=120)
        code = self.process.returncode
        assert code == 0, f"pricemon {' '.join(self.args)} exited {code}:\n{err}"


WARM_CLI = (
    "import sys; import monitor.cli, monitor.pricing.workflow, monitor.store.suggestions; "
    "print('ready', file=sys.stderr, flush=True); sys.stdin.readline(); from monitor.cli import main; main()"
)


def _cli_round(approve: WarmCli, apply: WarmCli, reports: Reports) -> None:
    try:
        approve.go()
        approved = approve.printed()
        reports.add("approved", CLI_USER, approved["ids"])
        apply.go()
        applied = apply.printed()
        apply.finish()
        approve.finish()
        reports.add("applied", CLI_USER, [c["suggestion_id"] for c in applied["applied"]])
    except BaseException as exc:  # seen by the test thread, which asserts on it
        reports.errors.append(f"CLI: {exc!r}")


def _api_actor(
    client: httpx.Client, chunks: list[list[int]], cli: threading.Thread, reports: Reports, pace: Pace
) -> None:
    """Approve chunk by chunk through the API, then apply every `every` seconds until the CLI is
    done (its approve and apply meet these), then once more."""
    delay, gap, every = pace
    try:
        time.sleep(delay)
        for chunk in chunks:
            answer = client.post("/api/v1/suggestions/approve", json={"ids": chunk})
            reports.statuses[f"api approve {answer.status_code}"] += 1
            if answer.status_code == 200:
                reports.add("approved", "approver-bot", [s["id"] for s in answer.json()["suggestions"]])
            else:  # some of them were taken by another approver first: nothing decided here
                assert answer.status_code == 409 and "not pending" in answer.json()["detail"], answer.text
            time.sleep(gap)
        while cli.is_alive():
            time.sleep(every)
            _api_apply(client, reports)
        _api_apply(client, reports)
    except BaseException as exc:
        reports.errors.append(f"API: {exc!r}")


def _api_apply(client: httpx.Client, reports: Reports) -> None:
    answer = client.post("/api/v1/apply", json={})
    assert answer.status_code == 200, answer.text
    reports.add("applied", "approver-bot", [c["suggestion_id"] for c in answer.json()["applied"]])


def _page_actor(
    client: httpx.Client, chunks: list[list[int]], cli: threading.Thread, reports: Reports, pace: Pace
) -> None:
    """The same through the pages' forms (the review queue's decide, the apply page's button)."""
    delay, gap, every = pace
    try:
        time.sleep(delay)
        for chunk in chunks:
            answer = client.post("/review/decide", data={"action": "approve", "ids": [str(i) for i in chunk]})
            reports.statuses[f"page decide {answer.status_code}"] += 1
            if answer.status_code == 303:
                query = httpx.URL(answer.headers["location"]).params
                assert query["done"] == "approved", answer.headers["location"]
                with reports.lock:
                    reports.page_approvals += int(query["count"])
            else:
                assert answer.status_code == 400 and "not pending" in answer.text, answer.text
            time.sleep(gap)
        while cli.is_alive():
            time.sleep(every)
            assert client.post("/apply").status_code == 200
    except BaseException as exc:
        reports.errors.append(f"pages: {exc!r}")


def _feed(path: Path) -> dict[str, str]:
    with path.open(newline="", encoding="utf-8") as handle:
        return {row["sku"]: row["price"] for row in csv.DictReader(handle)}


@pytest.mark.slow  # four rounds of two CLI processes and a server: ~15 s on a loaded machine
def test_web_and_cli_decide_and_apply_each_suggestion_once(market: Market) -> None:
    feed_path = market.tmp_path / "feed.csv"
    skus = [f"R-{i:03d}" for i in range(PRODUCTS)]
    market.products("sku,name,price,currency\n" + "".join(f"{s},Thing {s},50.00,EUR\n" for s in skus))
    market.listings((s, "acme") for s in skus)
    market.reconfigure(f'[feed]\ncsv_path = "{feed_path}"\n')
    tokens = make_tokens(market)
    tokens["pages"] = market.pricemon("tokens", "create", "pages-bot", "--role", "approver", "--json").json()["token"]

    with (
        contextmanager(start)(market, tokens) as served,
        served.client("approver") as api,
        served.client("pages") as pages,
    ):
        for round_, pace in enumerate(SCHEDULE):
            approve = WarmCli(market, "approve", "--all", "--by", CLI_USER, "--json")
            apply = WarmCli(market, "apply", "--by", CLI_USER, "--json")
            try:
                # The market moves down a euro each round: every product gets a new pending suggestion.
                market.observe({(s, "acme"): str(Decimal("40.00") - round_) for s in skus})
                market.pricemon("suggest")
                with market.store.session() as session:
                    ids = sorted(session.scalars(select(Suggestion.id).where(Suggestion.status == "pending")))
                assert len(ids) == PRODUCTS, f"round {round_}: {len(ids)} pending suggestions"
                chunks = [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]

                reports = Reports()
                cli = threading.Thread(target=_cli_round, args=(approve, apply, reports))
                actors = [
                    threading.Thread(target=_api_actor, args=(api, chunks[0::2], cli, reports, pace)),
                    threading.Thread(target=_page_actor, args=(pages, chunks[1::2], cli, reports, pace)),
                ]
                cli.start()
                for actor in actors:
                    actor.start()
                for thread in (cli, *actors):
                    thread.join(timeout=180)
                assert not reports.errors, reports.errors
            finally:
                approve.stop()
                apply.stop()
            _check_round(market, round_, ids, reports, feed_path)


def _check_round(market: Market, round_: int, ids: list[int], reports: Reports, feed_path: Path) -> None:
    everyone = ("cli-user", "approver-bot", "pages-bot")
    with market.store.session() as session:
        decided = dict(session.execute(select(Suggestion.id, Suggestion.status).where(Suggestion.id.in_(ids))).all())
        by = dict(session.execute(select(Suggestion.id, Suggestion.decided_by).where(Suggestion.id.in_(ids))).all())
        changes = session.execute(
            select(
                PriceChange.suggestion_id, PriceChange.applied_by, PriceChange.old_price, PriceChange.new_price
            ).where(PriceChange.suggestion_id.in_(ids))
        ).all()
        prices = {sku: price for sku, price in session.execute(select(Product.sku, Product.price))}
    where = f"round {round_} ({dict(reports.statuses)}; applied: {Counter(who for _, who, *_ in changes)})"
    # Nothing lost: every suggestion of the round was approved by someone and applied.
    assert Counter(decided.values()) == {"applied": len(ids)}, where

    # Decided once: each approval is reported by exactly one actor, the one the audit names.
    claimed = [sid for who in ("cli-user", "approver-bot") for sid in reports.approved.get(who, [])]
    assert len(claimed) == len(set(claimed)), f"{where}: a suggestion approved twice"
    for who in ("cli-user", "approver-bot"):
        assert sorted(sid for sid, name in by.items() if name == who) == sorted(reports.approved.get(who, [])), where
    assert sum(1 for name in by.values() if name == "pages-bot") == reports.page_approvals, where
    assert set(by.values()) <= set(everyone), where

    # Applied once: one audit row per suggestion, by the actor that reported applying it.
    per_suggestion = Counter(sid for sid, *_ in changes)
    assert sorted(per_suggestion) == ids and set(per_suggestion.values()) == {1}, where
    applied_by = {sid: who for sid, who, *_ in changes}
    for who in ("cli-user", "approver-bot"):
        reported = reports.applied.get(who, [])
        assert len(reported) == len(set(reported)), f"{where}: {who} reported an apply twice"
        assert sorted(reported) == sorted(sid for sid, name in applied_by.items() if name == who), where
    assert set(applied_by.values()) <= set(everyone), where

    # The prices moved once each (from the previous round's price), and the feed says so.
    expected = Decimal("40.00") - round_ - Decimal("0.01")
    assert {old for _, _, old, _ in changes} == {Decimal("50.00") if round_ == 0 else expected + 1}, where
    assert set(prices.values()) == {expected}, where
    assert _feed(feed_path) == {sku: f"{price:.2f}" for sku, price in prices.items()}, where


FEED_PRODUCTS = 20000  # a snapshot that takes a while to read and write, so that writers overlap


@pytest.mark.slow  # a 20,000-product feed written over and over: ~12 s
def test_the_csv_feed_ends_with_the_newest_prices_when_its_writers_overlap(market: Market) -> None:
    """Web applies rewrite the feed (with nothing to apply, too) while a price changes and
    `pricemon feed send` writes the feed after it: the file must end with the new price. A writer
    that read its snapshot before the change used to replace the file after the newer one."""
    feed_path = market.tmp_path / "feed.csv"
    market.products("sku,name,price,currency\n" + "".join(f"F-{i:06d},Thing,10.00,EUR\n" for i in range(FEED_PRODUCTS)))
    market.reconfigure(f'[feed]\ncsv_path = "{feed_path}"\n')
    tokens = make_tokens(market)
    stale = []
    with contextmanager(start)(market, tokens) as served:
        for trial in range(4):
            stop = threading.Event()
            failures: list[str] = []

            def keep_applying(stop: threading.Event, failures: list[str]) -> None:
                with served.client("approver") as api:
                    while not stop.is_set():
                        answer = api.post("/api/v1/apply", json={})
                        if answer.status_code != 200:
                            failures.append(answer.text)

            writers = [threading.Thread(target=keep_applying, args=(stop, failures)) for _ in range(3)]
            for writer in writers:
                writer.start()
            time.sleep(0.5)
            price = Decimal(11 + trial)
            with market.store.session() as session:
                session.execute(
                    update(Product).where(Product.sku == "F-000001").values(price=price, updated_at=utcnow())
                )
            market.pricemon("feed", "send")
            stop.set()
            for writer in writers:
                writer.join(timeout=60)
            assert not failures, failures
            if _feed(feed_path)["F-000001"] != f"{price:.2f}":
                stale.append((trial, _feed(feed_path)["F-000001"], f"{price:.2f}"))
    assert stale == [], "the feed kept an older price: (trial, feed, database)"
