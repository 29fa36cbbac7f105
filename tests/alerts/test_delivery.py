"""Delivery: one grouped message per channel, through a real webhook, SMTP and Apprise; failures
are kept and retried with backoff until the channel is back; secrets never reach a log."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from monitor.alerts import after_sweep, deliver_pending, retry_delay
from monitor.store.models import AlertDelivery, utcnow
from tests.alerts.conftest import Mailbox, Shop, make_settings
from tests.conftest import WebhookServer

NOW = utcnow().replace(microsecond=0)
T0 = NOW - timedelta(hours=1)
WEBHOOK_SECRET = "whsec-9f8e7d6c5b4a"
SMTP_PASSWORD = "s3cret-smtp-pw"
APPRISE_TOKEN = "TopSecretToken123"
APPRISE_PATH_TOKEN = "PathToken4567890"  # many services carry their token in the path (Telegram, Slack)


def undercut_settings(channels: list[dict[str, Any]], **alerting: Any) -> Any:
    return make_settings(
        alerting={"channels": channels, **alerting},
        alerts=[
            {"name": "cheaper", "condition": "undercut", "channels": [c["name"] for c in channels], "quiet_period": 0}
        ],
    )


def hook_channel(webhook: WebhookServer) -> dict[str, Any]:
    return {"name": "hook", "type": "webhook", "url": webhook.url, "secret_env": "PRICEMON_WEBHOOK_SECRET"}


def deliveries(shop: Shop) -> list[AlertDelivery]:
    with shop.store.session() as session:
        return list(session.scalars(select(AlertDelivery).order_by(AlertDelivery.id)))


def test_events_of_a_sweep_go_out_as_one_webhook_message_with_the_secret_header(
    shop: Shop, webhook: WebhookServer
) -> None:
    settings = undercut_settings([hook_channel(webhook)])
    env = {"PRICEMON_WEBHOOK_SECRET": WEBHOOK_SECRET}
    run = shop.sweep(shop.seen("A", "acme", "90.00", T0), shop.seen("B", "bolt", "80.00", T0))
    result = after_sweep(settings, shop.store, run, now=NOW, environ=env)
    assert len(result.raised) == 2
    assert result.delivered["sent"] == 2
    assert len(webhook.received) == 1  # grouped: one POST for the sweep
    post = webhook.received[0]
    assert post.headers["X-Pricemon-Secret"] == WEBHOOK_SECRET
    assert post.body["title"] == "pricemon: 2 alerts"
    assert [(e["rule"], e["payload"]["sku"], e["payload"]["price"]) for e in post.body["events"]] == [
        ("cheaper", "A", "90.00"),
        ("cheaper", "B", "80.00"),
    ]
    assert all(d.status == "sent" and d.attempts == 1 and d.delivered_at is not None for d in deliveries(shop))
    # nothing new and nothing due: nothing is sent twice
    again = after_sweep(settings, shop.store, run, now=NOW + timedelta(minutes=1), environ=env)
    assert again.raised == [] and again.delivered["sent"] == 0
    assert len(webhook.received) == 1


def test_a_failing_channel_keeps_its_alerts_and_catches_up_with_backoff(
    shop: Shop, webhook: WebhookServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = undercut_settings([hook_channel(webhook)], retry_base="30s", retry_max="5m")
    env = {"PRICEMON_WEBHOOK_SECRET": WEBHOOK_SECRET}
    webhook.fail_status = 503
    run = shop.sweep(shop.seen("A", "acme", "90.00", T0))
    first = after_sweep(settings, shop.store, run, now=NOW, environ=env)
    assert first.delivered["failed"] == 1
    [delivery] = deliveries(shop)
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert "HTTP 503" in (delivery.last_error or "")
    assert delivery.next_attempt_at == NOW + timedelta(seconds=30)

    # not due yet: not tried
    assert deliver_pending(settings, shop.store, now=NOW + timedelta(seconds=10), environ=env) == {}
    # due, still down: the wait doubles
    assert deliver_pending(settings, shop.store, now=NOW + timedelta(seconds=31), environ=env)["failed"] == 1
    [delivery] = deliveries(shop)
    assert delivery.attempts == 2
    assert delivery.next_attempt_at == NOW + timedelta(seconds=31 + 60)

    # another sweep while the channel is down
    run = shop.sweep(shop.seen("B", "bolt", "85.00", T0 + timedelta(minutes=5)))
    after_sweep(settings, shop.store, run, now=NOW + timedelta(minutes=1), environ=env)
    assert webhook.received == []

    webhook.fail_status = None  # the channel is back
    counts = deliver_pending(settings, shop.store, now=NOW + timedelta(minutes=10), environ=env)
    assert counts["sent"] == 2
    assert len(webhook.received) == 1
    assert [e["payload"]["sku"] for e in webhook.events] == ["A", "B"]
    assert [d.status for d in deliveries(shop)] == ["sent", "sent"]
    assert "failed" in caplog.text  # a failure is never silent
    assert WEBHOOK_SECRET not in caplog.text


def test_backoff_is_capped() -> None:
    settings = make_settings(alerting={"retry_base": "30s", "retry_max": "5m"})
    assert [retry_delay(settings, n).total_seconds() for n in range(6)] == [30, 60, 120, 240, 300, 300]
    assert retry_delay(settings, 500).total_seconds() == 300


def test_a_channel_missing_from_the_config_keeps_its_alerts(shop: Shop, webhook: WebhookServer) -> None:
    settings = undercut_settings([hook_channel(webhook)])
    env = {"PRICEMON_WEBHOOK_SECRET": WEBHOOK_SECRET}
    run = shop.sweep(shop.seen("A", "acme", "90.00", T0))
    webhook.fail_status = 500
    after_sweep(settings, shop.store, run, now=NOW, environ=env)
    renamed = make_settings(alerting={"channels": [{**hook_channel(webhook), "name": "other"}]})
    assert deliver_pending(renamed, shop.store, now=NOW + timedelta(hours=1), environ=env)["waiting"] == 1
    webhook.fail_status = None
    assert deliver_pending(settings, shop.store, now=NOW + timedelta(hours=1), environ=env)["sent"] == 1


def test_email_over_smtp_with_a_password_from_the_environment(
    shop: Shop, smtp_server: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    channel = {
        "name": "mail",
        "type": "email",
        "smtp_host": smtp_server.host,
        "smtp_port": smtp_server.port,
        "username": "pricemon",
        "password_env": "PRICEMON_SMTP_PASSWORD",
        "sender": "pricemon@example.com",
        "recipients": ["pricing@example.com", "boss@example.com"],
    }
    settings = undercut_settings([channel])
    run = shop.sweep(shop.seen("A", "acme", "90.00", T0), shop.seen("A", "bolt", "95.00", T0))

    wrong = after_sweep(settings, shop.store, run, now=NOW, environ={"PRICEMON_SMTP_PASSWORD": "wrong-password-1"})
    assert wrong.delivered["failed"] == 2 and smtp_server.messages == []
    assert all("SMTPAuthenticationError" in (d.last_error or "") for d in deliveries(shop))

    good = deliver_pending(
        settings, shop.store, now=NOW + timedelta(minutes=5), environ={"PRICEMON_SMTP_PASSWORD": SMTP_PASSWORD}
    )
    assert good["sent"] == 2
    [mail] = smtp_server.messages
    assert mail["Subject"] == "pricemon: 2 alerts"
    assert mail["To"] == "pricing@example.com, boss@example.com"
    body = mail.get_payload(decode=True).decode()
    assert "acme: A (Item A) sells at 90.00 EUR" in body
    assert "bolt: A (Item A) sells at 95.00 EUR" in body
    assert smtp_server.logins[-1] == ("pricemon", SMTP_PASSWORD)
    assert SMTP_PASSWORD not in caplog.text and "wrong-password-1" not in caplog.text
    assert all(SMTP_PASSWORD not in (d.last_error or "") for d in deliveries(shop))


def test_apprise_urls_deliver_and_their_tokens_never_show(
    shop: Shop, webhook: WebhookServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    port = webhook.url.split(":")[2].split("/")[0]
    token_url = f"json://pricemon:{APPRISE_TOKEN}@127.0.0.1:{port}/hook/{APPRISE_PATH_TOKEN}"
    settings = undercut_settings([{"name": "chat", "type": "apprise", "apprise_urls_env": "PRICEMON_APPRISE_URLS"}])
    env = {"PRICEMON_APPRISE_URLS": token_url}

    webhook.fail_status = 500
    run = shop.sweep(shop.seen("A", "acme", "90.00", T0))
    assert after_sweep(settings, shop.store, run, now=NOW, environ=env).delivered["failed"] == 1
    [delivery] = deliveries(shop)
    assert delivery.last_error and "Apprise could not notify" in delivery.last_error

    webhook.fail_status = None
    assert deliver_pending(settings, shop.store, now=NOW + timedelta(hours=1), environ=env)["sent"] == 1
    [post] = webhook.received
    assert "acme: A (Item A) sells at 90.00 EUR" in post.body["message"]
    assert post.headers["Authorization"].startswith("Basic ")  # the credentials did travel
    assert post.path == f"/hook/{APPRISE_PATH_TOKEN}"
    assert "127.0.0.1" in caplog.text  # Apprise and urllib3 did log about the request...
    for secret in (APPRISE_TOKEN, APPRISE_PATH_TOKEN):  # ...but never the tokens
        assert secret not in caplog.text
        assert all(secret not in (d.last_error or "") for d in deliveries(shop))


def test_an_unset_secret_variable_is_a_recorded_failure(shop: Shop, webhook: WebhookServer) -> None:
    settings = undercut_settings([hook_channel(webhook)])
    run = shop.sweep(shop.seen("A", "acme", "90.00", T0))
    result = after_sweep(settings, shop.store, run, now=NOW, environ={})
    assert result.delivered["failed"] == 1
    [delivery] = deliveries(shop)
    assert delivery.last_error == "channel hook: environment variable PRICEMON_WEBHOOK_SECRET is not set"
    assert webhook.received == []
