"""Alert channels: send one grouped message through a JSON webhook, SMTP, or Apprise.

Secrets (the webhook's header value, the SMTP password, Apprise URLs and their tokens) are read
from the environment at send time and registered with `secret_filter`, which masks them in every
log record of pricemon and of the libraries that might print a URL or a header.
"""

from __future__ import annotations

import logging
import os
import re
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from monitor.redact import known_secrets, redact_apprise_url, redact_text, redact_url, remember_secrets
from monitor.settings import AlertChannel

logger = logging.getLogger(__name__)

MASK = "***"
# Libraries that may log a URL (which can carry a token) while a channel sends.
_LOGGERS_THAT_MAY_SHOW_URLS = ("apprise", "httpx", "httpcore", "urllib3.connectionpool", "requests", __name__)


class ChannelError(Exception):
    """A channel could not take a message; the text is already free of secrets."""


class SecretFilter(logging.Filter):
    """Masks every registered secret in a log record's final text (through monitor.redact, the
    one place that knows pricemon's secrets)."""

    def register(self, *values: str | None) -> None:
        remember_secrets(values)

    def scrub(self, text: str) -> str:
        return redact_text(text)

    def filter(self, record: logging.LogRecord) -> bool:
        if known_secrets():
            try:
                message = record.getMessage()
            except (TypeError, ValueError):
                return True  # a malformed record: logging reports it itself; never break logging here
            scrubbed = self.scrub(message)
            if scrubbed != message:
                record.msg, record.args = scrubbed, None
        return True


secret_filter = SecretFilter()
for _name in _LOGGERS_THAT_MAY_SHOW_URLS:
    logging.getLogger(_name).addFilter(secret_filter)


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """The events of one channel's batch, as a title, a plain text and structured events."""

    title: str
    text: str
    events: list[dict[str, Any]] = field(default_factory=list)


def compose(events: Sequence[Mapping[str, Any]]) -> OutgoingMessage:
    """Group events into one message: one line per event, oldest first."""
    title = f"pricemon: {events[0]['message']}"[:200] if len(events) == 1 else f"pricemon: {len(events)} alerts"
    lines = [f"- [{e['rule']}] {e['message']}" for e in events]
    return OutgoingMessage(title=title, text="\n".join(lines), events=[dict(e) for e in events])


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def _required_env(channel: AlertChannel, variable: str, environ: Mapping[str, str]) -> str:
    value = environ.get(variable)
    if not value:
        raise ChannelError(f"channel {channel.name}: environment variable {variable} is not set")
    return value


def apprise_urls(channel: AlertChannel, environ: Mapping[str, str] | None = None) -> list[str]:
    """The channel's Apprise URLs: the literal ones and those from `apprise_urls_env`."""
    urls = list(channel.apprise_urls)
    if channel.apprise_urls_env:
        urls += [u for u in re.split(r"[\s,]+", _env(environ).get(channel.apprise_urls_env, "")) if u]
    return urls


def _register_url_secrets(url: str) -> None:
    """An Apprise URL hides its tokens anywhere: user, password, host (tgram://TOKEN/...), path
    or query. Mask the whole URL and each part that is not an ordinary host name."""
    secret_filter.register(url)
    parts = urlsplit(url)
    secret_filter.register(parts.netloc.rsplit("@", 1)[0] if "@" in parts.netloc else None)
    secret_filter.register(parts.username, parts.password)
    host = parts.hostname or ""
    if host and "." not in host and host != "localhost":
        secret_filter.register(host)
    for segment in parts.path.split("/"):
        if len(segment) >= 8:
            secret_filter.register(segment)
    for _key, value in parse_qsl(parts.query):
        if len(value) >= 8:
            secret_filter.register(value)


def register_channel_secrets(channel: AlertChannel, environ: Mapping[str, str] | None = None) -> None:
    """Mask this channel's secrets in logs from now on (called before anything is sent)."""
    env = _env(environ)
    if channel.secret_env:
        secret_filter.register(env.get(channel.secret_env))
    if channel.password_env:
        secret_filter.register(env.get(channel.password_env))
    if channel.url and urlsplit(channel.url).password:
        secret_filter.register(urlsplit(channel.url).password)
    for url in apprise_urls(channel, environ):
        _register_url_secrets(url)


def send(channel: AlertChannel, message: OutgoingMessage, environ: Mapping[str, str] | None = None) -> None:
    """Deliver `message` through `channel` or raise ChannelError (whose text holds no secret)."""
    register_channel_secrets(channel, environ)
    env = _env(environ)
    try:
        if channel.type == "webhook":
            _send_webhook(channel, message, env)
        elif channel.type == "email":
            _send_email(channel, message, env)
        else:
            _send_apprise(channel, message, env)
    except ChannelError as exc:
        raise ChannelError(secret_filter.scrub(str(exc))) from None
    except Exception as exc:  # any library failure is this channel being unavailable, never the sweep's
        raise ChannelError(secret_filter.scrub(f"{type(exc).__name__}: {exc}")) from None


def _send_webhook(channel: AlertChannel, message: OutgoingMessage, env: Mapping[str, str]) -> None:
    import httpx

    headers = {"User-Agent": "pricemon-alerts"}
    if channel.secret_env:
        headers[channel.secret_header] = _required_env(channel, channel.secret_env, env)
    body = {
        "source": "pricemon",
        "channel": channel.name,
        "title": message.title,
        "text": message.text,
        "events": message.events,
    }
    assert channel.url is not None  # the settings require it for webhooks
    try:
        response = httpx.post(
            channel.url, json=body, headers=headers, timeout=channel.timeout.total_seconds(), follow_redirects=False
        )
    except httpx.HTTPError as exc:
        raise ChannelError(f"webhook {redact_url(channel.url)}: {type(exc).__name__}: {exc}") from None
    if not 200 <= response.status_code < 300:
        raise ChannelError(f"webhook {redact_url(channel.url)} answered HTTP {response.status_code}")


def _send_email(channel: AlertChannel, message: OutgoingMessage, env: Mapping[str, str]) -> None:
    assert channel.smtp_host is not None and channel.sender is not None
    mail = EmailMessage()
    mail["Subject"] = message.title
    mail["From"] = channel.sender
    mail["To"] = ", ".join(channel.recipients)
    mail.set_content(message.text + "\n")
    timeout = channel.timeout.total_seconds()
    smtp: smtplib.SMTP
    if channel.security == "ssl":
        smtp = smtplib.SMTP_SSL(
            channel.smtp_host, channel.smtp_port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        smtp = smtplib.SMTP(channel.smtp_host, channel.smtp_port, timeout=timeout)
    with smtp:
        if channel.security == "starttls":
            smtp.starttls(context=ssl.create_default_context())
        if channel.username:
            password = _required_env(channel, channel.password_env, env) if channel.password_env else ""
            smtp.login(channel.username, password)
        refused = smtp.send_message(mail)
    if refused:
        raise ChannelError(f"email: the server refused {', '.join(sorted(refused))}")


def _send_apprise(channel: AlertChannel, message: OutgoingMessage, env: Mapping[str, str]) -> None:
    import apprise

    urls = apprise_urls(channel, env)
    if not urls:
        raise ChannelError(f"channel {channel.name}: no Apprise URL (is {channel.apprise_urls_env} set?)")
    notifier = apprise.Apprise()
    for number, url in enumerate(urls, 1):
        if not notifier.add(url):
            raise ChannelError(
                f"channel {channel.name}: Apprise URL #{number} ({redact_apprise_url(url)}) is not valid"
            )
    with apprise.LogCapture(level=logging.WARNING) as captured:
        ok = notifier.notify(body=message.text, title=message.title)
    if not ok:
        # Apprise says why only in its log; the filter on its logger already masked the tokens.
        reason = " ".join(line.strip() for line in captured.getvalue().splitlines()[-3:])
        raise ChannelError(f"channel {channel.name}: Apprise could not notify every URL: {reason or 'no reason given'}")
