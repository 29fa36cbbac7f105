"""Secrets planted everywhere the config can hold one never appear in any output, log line,
stored error or file pricemon writes.

Every command runs as a real `pricemon` process (with `--log-level debug`, and with and without
`--json`), the daemon runs briefly as a subprocess, and the SQLite database is dumped with
iterdump: the test greps all of it for each secret. It also checks that the secrets were really
used (sent to the shop and the webhook), so a config that silently dropped them cannot pass.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Pricemon, WebhookServer, run_pricemon
from tests.scrape.conftest import Shop, jsonld_page

HEADER_SECRET = "Bearer hdr-5ecret-Ax91"
PROXY_PASSWORD = "prx-5ecret-Bq72"
HOOK_PASSWORD = "hook-5ecret-Cz33"
HOOK_TOKEN = "qtok-5ecret-Dw44"
HOOK_USER_TOKEN = "usrtok-5ecret-Jj00"
FEED_ENV_SECRET = "feedenv-5ecret-Ev55"
CHANNEL_PASSWORD = "chan-5ecret-Fu66"
CHANNEL_ENV_SECRET = "chanenv-5ecret-Gt77"
SMTP_PASSWORD = "smtp-5ecret-Hs88"
APPRISE_TOKEN = "appriseToken5ecretIr99"
APPRISE_ENV_TOKEN = "appriseEnvToken5ecretKk11"

SECRETS = [
    HEADER_SECRET,
    "hdr-5ecret-Ax91",
    PROXY_PASSWORD,
    HOOK_PASSWORD,
    HOOK_TOKEN,
    HOOK_USER_TOKEN,
    FEED_ENV_SECRET,
    CHANNEL_PASSWORD,
    CHANNEL_ENV_SECRET,
    SMTP_PASSWORD,
    APPRISE_TOKEN,
    APPRISE_ENV_TOKEN,
]

ENV = {
    "PM_FEED_SECRET": FEED_ENV_SECRET,
    "PM_CHANNEL_SECRET": CHANNEL_ENV_SECRET,
    "PM_SMTP_PASSWORD": SMTP_PASSWORD,
}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def planted(tmp_path: Path, webhook: WebhookServer) -> tuple[Path, Shop, WebhookServer]:
    shop = Shop()
    shop.pages["/p/1"] = jsonld_page("25.00")
    shop.pages["/p/2"] = jsonld_page("26.00")
    webhook.fail_status = 500  # every delivery fails, so every error path is taken and stored
    hook = webhook.url.replace("http://", f"http://feeduser:{HOOK_PASSWORD}@") + f"?token={HOOK_TOKEN}&shop=1"
    alert_hook = webhook.url.replace("http://", f"http://{HOOK_USER_TOKEN}@") + "/alerts"
    channel_hook = webhook.url.replace("http://", f"http://chan:{CHANNEL_PASSWORD}@") + "/channel"
    dead = closed_port()
    config = tmp_path / "pricemon.toml"
    config.write_text(
        f'''
database_url = "sqlite:///{tmp_path / 'pricemon.db'}"

[[competitors]]
name = "acme"
base_url = "{shop.base}/"
every = "2s"
min_delay = "0s"
respect_robots_txt = false
headers = {{ Authorization = "{HEADER_SECRET}" }}

[[competitors]]
name = "proxied"
base_url = "http://proxied.invalid/"
every = "2s"
min_delay = "0s"
respect_robots_txt = false
proxy = "http://proxyuser:{PROXY_PASSWORD}@127.0.0.1:{dead}"

[feed]
csv_path = "{tmp_path / 'feed.csv'}"
webhook_url = "{hook}"
secret_env = "PM_FEED_SECRET"
retries = 0
backoff = "10ms"
timeout = "2s"

[[alerting.channels]]
name = "hook"
type = "webhook"
url = "{channel_hook}"
secret_env = "PM_CHANNEL_SECRET"
timeout = "2s"

[[alerting.channels]]
name = "hook2"
type = "webhook"
url = "{alert_hook}"
timeout = "2s"

[[alerting.channels]]
name = "mail"
type = "email"
smtp_host = "127.0.0.1"
smtp_port = {dead}
username = "mailer"
password_env = "PM_SMTP_PASSWORD"
sender = "pricemon@example.com"
recipients = ["team@example.com"]
timeout = "2s"

[[alerting.channels]]
name = "app"
type = "apprise"
apprise_urls = ["json://127.0.0.1:{dead}/{APPRISE_TOKEN}"]
apprise_urls_env = "PM_APPRISE_URLS"
timeout = "2s"

[alerting]
retry_base = "10ms"

[[alerts]]
name = "undercut"
condition = "undercut"
channels = ["hook", "hook2", "mail", "app"]
quiet_period = "0s"
''',
        encoding="utf-8",
    )
    (tmp_path / "products.csv").write_text(
        "sku,name,price,currency,cost\nA-1,Kettle,30.00,EUR,10.00\nB-2,Toaster,31.00,EUR,10.00\n", encoding="utf-8"
    )
    (tmp_path / "listings.csv").write_text(
        f"sku,competitor,url\nA-1,acme,{shop.base}/p/1\nB-2,acme,{shop.base}/p/2\n"
        "A-1,proxied,http://proxied.invalid/p/1\n",
        encoding="utf-8",
    )
    yield config, shop, webhook
    shop.close()


def test_no_secret_in_any_output_log_or_stored_error(planted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config, shop, webhook = planted
    env = {**ENV, "PM_APPRISE_URLS": f"json://127.0.0.1:{closed_port()}/{APPRISE_ENV_TOKEN}", "PRICEMON_CONFIG": ""}
    seen: list[str] = []
    in_process = Pricemon(config)

    def pricemon(*args: str, expect: tuple[int, ...] = (0,), subprocess_: bool = False) -> None:
        """Run a command as a real process, or in this one (faster; the same entry point, logging
        set-up and redaction, with the environment a user would have)."""
        if subprocess_:
            done = run_pricemon("--config", str(config), "--log-level", "debug", *args, cwd=tmp_path, env=env)
            code, out, err = done.returncode, done.stdout, done.stderr
        else:
            result = in_process("--log-level", "debug", *args, expect=None)
            code, out, err = result.exit_code, result.stdout, result.stderr
        seen.append(f"$ pricemon {' '.join(args)}\n{out}\n{err}")
        assert code in expect, f"pricemon {' '.join(args)} exited {code}:\n{err}"
        assert "Traceback" not in err, err

    monkeypatch.chdir(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for json_flag in ((), ("--json",)):
        pricemon("config", "check", *json_flag, subprocess_=True)
    pricemon("import", "products", "products.csv")
    pricemon("import", "listings", "listings.csv")
    pricemon("scrape", subprocess_=True)
    pricemon("scrape", "--json")
    for json_flag in ((), ("--json",)):
        pricemon("listings", *json_flag)
        pricemon("status", *json_flag, expect=(0, 2))
        pricemon("alerts", *json_flag)
        pricemon("alerts", "deliver", *json_flag)
        pricemon("alerts", "test", "undercut", *json_flag, expect=(1,))
        pricemon("extract", f"{shop.base}/p/1", "--competitor", "acme", *json_flag)
        pricemon("extract", "http://proxied.invalid/p/1", "--competitor", "proxied", *json_flag, expect=(1,))
        pricemon("history", "A-1", *json_flag)
        pricemon("strategies", "list", *json_flag)
    pricemon("suggest")
    pricemon("suggest", "--json")
    pricemon("suggestions", "--json")
    pricemon("approve", "--sku", "A-1")
    pricemon("apply")
    pricemon("approve", "--sku", "B-2")
    pricemon("apply", "--json")
    pricemon("feed", "send", expect=(1,))
    pricemon("feed", "send", "--json", expect=(1,))
    pricemon("report")
    pricemon("report", "--json")
    pricemon("report", "--format", "csv", "--out", "report.csv")
    pricemon("report", "--out", "report.html")
    pricemon("backtest", "--strategy", "undercut", "--json")
    pricemon("db", "current")

    # The daemon, briefly, with JSON logs at debug level: it sweeps, evaluates alerts and retries them.
    daemon_log = tmp_path / "daemon.log"
    exe = Path(sys.executable).with_name("pricemon")
    with daemon_log.open("w") as log:
        daemon = subprocess.Popen(
            [str(exe), "--config", str(config), "run", "--log-level", "debug", "--log-format", "json"],
            cwd=tmp_path, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and shop.hits["/p/1"] < 4:
                time.sleep(0.2)
            time.sleep(1.0)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
    daemon_text = daemon_log.read_text()
    assert shop.hits["/p/1"] >= 4, daemon_text[-3000:]  # the daemon swept (two CLI sweeps + its own)

    # The secrets were really used: a config that dropped them would pass the grep below.
    assert webhook.attempts > 0
    with sqlite3.connect(tmp_path / "pricemon.db") as db:
        feed_errors = [row[0] for row in db.execute("select feed_error from price_changes")]
        delivery_errors = [row[0] for row in db.execute("select last_error from alert_deliveries")]
        listing_errors = [row[0] for row in db.execute("select last_error from listings where last_error is not null")]
        dump = "\n".join(db.iterdump())
    assert feed_errors and all(feed_errors), "the feed webhook failures were stored"
    assert any(delivery_errors), "the alert delivery failures were stored"
    assert listing_errors, "the proxied competitor's failure was stored"

    outputs = {
        "commands": "\n".join(seen),
        "daemon log": daemon_text,
        "database": dump,
        **{name: (tmp_path / name).read_text() for name in ("feed.csv", "report.csv", "report.html")},
    }
    leaks = [
        f"{secret!r} in {where}: ...{text[max(0, text.find(secret) - 200): text.find(secret) + 80]}..."
        for where, text in outputs.items()
        for secret in SECRETS
        if secret in text
    ]
    assert not leaks, "\n\n".join(leaks[:10])
    # What is shown instead: the key, the host and *** (the outputs stay useful).
    assert "Authorization" in outputs["commands"] and "***" in outputs["commands"]
    assert "127.0.0.1" in outputs["commands"]
