"""`pricemon alerts [--json]`, `alerts test RULE`, `alerts deliver`, and the alert settings."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.alerts import after_sweep
from monitor.errors import ConfigError
from monitor.settings import load_settings, settings_from_mapping
from monitor.store.models import utcnow
from tests.alerts.conftest import build_shop
from tests.conftest import WebhookServer

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "pricemon.toml"
TOKEN = "TopSecretToken123"


def config_text(webhook: WebhookServer) -> str:
    return f"""
[[competitors]]
name = "acme"
base_url = "http://127.0.0.1:9/"

[[competitors]]
name = "bolt"
base_url = "http://127.0.0.1:9/"

[[alerting.channels]]
name = "hook"
type = "webhook"
url = "{webhook.url}"
secret_env = "PRICEMON_WEBHOOK_SECRET"

[[alerting.channels]]
name = "chat"
type = "apprise"
apprise_urls = ["json://pricemon:{TOKEN}@127.0.0.1:9/hook"]

[[alerts]]
name = "cheaper"
condition = "undercut"
channels = ["hook"]

[[alerts]]
name = "to-chat"
condition = "price_drop"
channels = ["chat"]
"""


def test_alerts_lists_recent_alerts_with_their_delivery_state(
    write_config, pricemon_cli, sqlite_url: str, webhook: WebhookServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRICEMON_WEBHOOK_SECRET", "whsec-1234567")
    path = write_config(config_text(webhook))
    settings = load_settings(path, database_url=sqlite_url)
    shop = build_shop(sqlite_url)
    now = utcnow()
    run = shop.sweep(shop.seen("A", "acme", "90.00", now - timedelta(minutes=5)))
    webhook.fail_status = 502
    after_sweep(settings, shop.store, run, now=now)
    shop.store.dispose()

    pricemon = pricemon_cli(path, sqlite_url)
    [alert] = pricemon("alerts", "--json").json()
    assert alert["rule"] == "cheaper"
    assert alert["condition"] == "undercut"
    assert alert["payload"]["price"] == "90.00"  # money in JSON is a string
    [delivery] = alert["deliveries"]
    assert (delivery["channel"], delivery["status"], delivery["attempts"]) == ("hook", "failed", 1)
    assert "HTTP 502" in delivery["last_error"]
    assert pricemon("alerts", "--rule", "to-chat", "--json").json() == []
    table = pricemon("alerts").stdout
    assert "cheaper" in table and "failed x1" in table

    # `alerts deliver` sends what is due once the channel is back (the retry is 30s away: not yet)
    webhook.fail_status = None
    assert pricemon("alerts", "deliver", "--json").json() == {"sent": 0, "failed": 0, "waiting": 0}
    assert webhook.received == []


def test_alerts_test_sends_a_sample_through_the_rules_channels(
    write_config, pricemon_cli, sqlite_url: str, webhook: WebhookServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRICEMON_WEBHOOK_SECRET", "whsec-1234567")
    pricemon = pricemon_cli(write_config(config_text(webhook)), sqlite_url)
    out = pricemon("alerts", "test", "cheaper")
    assert out.stdout.strip() == "cheaper -> hook: sent"
    [post] = webhook.received
    assert post.headers["X-Pricemon-Secret"] == "whsec-1234567"
    assert "test alert of rule 'cheaper'" in post.body["events"][0]["message"]
    assert pricemon("alerts", "--json").json() == []  # a test stores nothing

    failed = pricemon("alerts", "test", "to-chat", "--json", expect=1)
    [result] = failed.json()["channels"]
    assert result["channel"] == "chat" and result["sent"] is False
    assert TOKEN not in failed.stdout + failed.stderr

    unknown = pricemon("alerts", "test", "nope", expect=1)
    assert "pricemon: error: no alert rule named 'nope' (rules: cheaper, to-chat)" in unknown.stderr


def test_config_check_never_shows_apprise_tokens(write_config, pricemon_cli, webhook: WebhookServer) -> None:
    out = pricemon_cli(write_config(config_text(webhook)))("config", "check", "--json")
    assert TOKEN not in out.stdout
    chat = next(c for c in out.json()["alerting"]["channels"] if c["name"] == "chat")
    assert chat["apprise_urls"] == ["json://***"]


@pytest.mark.parametrize(
    ("alerting", "alerts", "expected"),
    [
        ({}, [{"name": "r", "condition": "undercut", "channels": ["x"]}], "unknown channel(s) x"),
        ({"channels": [{"name": "w", "type": "webhook"}]}, [], "a webhook needs `url`"),
        ({"channels": [{"name": "m", "type": "email", "smtp_host": "h"}]}, [], "email needs"),
        ({"channels": [{"name": "a", "type": "apprise"}]}, [], "apprise needs"),
        ({}, [{"name": "r", "condition": "cheap", "channels": []}], "alerts[0].condition"),
        (
            {"channels": [{"name": "w", "type": "webhook", "url": "http://127.0.0.1:9/"}]},
            [{"name": "r", "condition": "back_in_stock", "channels": ["w"], "percent": 5}],
            "`percent` does not apply to back_in_stock",
        ),
        (
            {"channels": [{"name": "w", "type": "webhook", "url": "http://127.0.0.1:9/"}]},
            [{"name": "r", "condition": "undercut", "channels": ["w"], "percent": 5, "amount": 1}],
            "not both",
        ),
    ],
)
def test_bad_alert_settings_are_config_errors(alerting, alerts, expected) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_mapping({"alerting": alerting, "alerts": alerts})
    assert expected in str(info.value)


def test_the_commented_alert_examples_in_the_shipped_config_are_valid(write_config) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    block = text[text.index("# --- Alerts") :]
    end = re.search(r"\n\[(?!alerting\b)", block)  # the next section, someone else's
    block = block[: end.start()] if end else block
    # Uncomment the example channels and rules (lines like "# key = value" and "# [[table]]").
    lines = [re.sub(r"^# (?=\[|\w+ = )", "", line) for line in block.splitlines()]
    settings = load_settings(write_config("\n".join(lines)), environ={})
    assert [c.type for c in settings.alerting.channels] == ["webhook", "email", "apprise"]
    assert [(r.name, r.condition) for r in settings.alerts] == [
        ("undercut", "undercut"),
        ("shop-down", "scrape_failing"),
    ]
