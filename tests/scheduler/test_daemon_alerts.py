"""The daemon raises alerts after its sweeps and re-sends them when a channel comes back."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.scheduler.conftest import competitor_block, config_text, wait_for
from tests.scheduler.test_daemon import latest_price, seed


class Hook:
    """A webhook on 127.0.0.1 that records what it accepts and refuses while `down` is set."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.refused = 0
        self.down = True
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if hook.down:
                    hook.refused += 1
                    self.send_response(503)
                else:
                    hook.bodies.append(json.loads(body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[dict[str, Any]]:
        return [event for body in self.bodies for event in body.get("events", [])]


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook()
    yield server
    server.server.shutdown()
    server.server.server_close()


def test_price_drop_alert_is_raised_by_the_daemon_and_delivered_once_the_channel_is_back(
    tmp_path, shop, hook, write_config, pricemon_cli, start_daemon
) -> None:
    db = tmp_path / "pricemon.db"
    alerting = f"""
[alerting]
retry_base = "1s"
retry_max = "1s"

[[alerting.channels]]
name = "hook"
type = "webhook"
url = "{hook.url}"

[[alerts]]
name = "drops"
condition = "price_drop"
channels = ["hook"]
percent = 5
"""
    config = write_config(config_text(db, competitor_block("alpha", shop)) + alerting)
    seed(pricemon_cli, config, tmp_path, shop, {"alpha": ["K1", "K2"]})
    daemon = start_daemon(config)
    wait_for(lambda: latest_price(db, "K1") == 10.0, "the first observation of K1", daemon=daemon)

    shop.prices["K1"] = "8.00"  # -20%: a drop
    shop.prices["K2"] = "9.80"  # -2%: below the rule's threshold
    wait_for(lambda: latest_price(db, "K1") == 8.0 and latest_price(db, "K2") == 9.8, "both changes", daemon=daemon)
    wait_for(lambda: hook.refused >= 1, "a delivery attempt while the channel is down", daemon=daemon)
    assert hook.events() == []

    hook.down = False
    events = wait_for(hook.events, "the alert once the channel is back", daemon=daemon)
    assert daemon.stop() == 0
    assert len(events) == 1
    assert "K1" in json.dumps(events[0]) and "K2" not in json.dumps(events[0])
    alerts = pricemon_cli(config)("alerts", "--json").json()
    assert [a["rule"] for a in alerts] == ["drops"]
