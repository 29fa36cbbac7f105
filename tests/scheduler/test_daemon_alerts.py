"""The daemon raises alerts after its sweeps and re-sends them when a channel comes back."""

from __future__ import annotations

import json

from tests.conftest import WebhookServer
from tests.scheduler.conftest import competitor_block, config_text, wait_for
from tests.scheduler.test_daemon import latest_price, seed


def test_price_drop_alert_is_raised_by_the_daemon_and_delivered_once_the_channel_is_back(
    tmp_path, shop, webhook: WebhookServer, write_config, pricemon_cli, start_daemon
) -> None:
    db = tmp_path / "pricemon.db"
    alerting = f"""
[alerting]
retry_base = "1s"
retry_max = "1s"

[[alerting.channels]]
name = "hook"
type = "webhook"
url = "{webhook.url}"

[[alerts]]
name = "drops"
condition = "price_drop"
channels = ["hook"]
percent = 5
"""
    config = write_config(config_text(db, competitor_block("alpha", shop)) + alerting)
    seed(pricemon_cli, config, tmp_path, shop, {"alpha": ["K1", "K2"]})
    webhook.fail_status = 503  # the channel is down when the drop is first seen
    daemon = start_daemon(config)
    wait_for(lambda: latest_price(db, "K1") == 10.0, "the first observation of K1", daemon=daemon)

    shop.prices["K1"] = "8.00"  # -20%: a drop
    shop.prices["K2"] = "9.80"  # -2%: below the rule's threshold
    wait_for(lambda: latest_price(db, "K1") == 8.0 and latest_price(db, "K2") == 9.8, "both changes", daemon=daemon)
    wait_for(lambda: webhook.attempts >= 1, "a delivery attempt while the channel is down", daemon=daemon)
    assert webhook.events == []

    webhook.fail_status = None
    events = wait_for(lambda: webhook.events, "the alert once the channel is back", daemon=daemon)
    assert daemon.stop() == 0
    assert len(events) == 1
    assert "K1" in json.dumps(events[0]) and "K2" not in json.dumps(events[0])
    alerts = pricemon_cli(config)("alerts", "--json").json()
    assert [a["rule"] for a in alerts] == ["drops"]
