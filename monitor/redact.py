"""Hiding secrets: the one place that decides what a password, token or header value looks like
once it is shown, logged or stored (`***`).

Two layers. `redact_url` hides what a URL carries itself (user:password@, token-like query
parameters); `redact_text` does that for every URL inside a message and also replaces every
secret pricemon knows of: values from the config (header values, proxy and URL passwords, Apprise
URLs) and from the environment variables it names, which `remember_secrets` records when the
settings are loaded. `RedactingFilter` applies `redact_text` to every log record as a safety net.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

MASK = "***"

# Query parameters whose value is a credential (case-insensitive, also as a suffix: `x_api_key`).
_TOKEN_PARAM = re.compile(
    r"(?:^|[_\-.])(?:token|access_token|api_?key|apikey|key|secret|password|passwd|pwd|pass|auth|"
    r"authorization|signature|sig|credential|credentials|session|sessionid)$",
    re.IGNORECASE,
)
# A URL inside free text: a scheme, then everything up to whitespace or a quote.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")
# Shorter values are not treated as secrets: replacing "a" everywhere would hide everything.
MIN_SECRET_LENGTH = 4

_lock = threading.Lock()
_secrets: set[str] = set()


def remember_secrets(values: Iterable[str | None]) -> None:
    """Record secret values so `redact_text` (and so every log line) hides them from now on."""
    with _lock:
        for value in values:
            if value and len(value) >= MIN_SECRET_LENGTH:
                _secrets.add(value)


def known_secrets() -> frozenset[str]:
    with _lock:
        return frozenset(_secrets)


def _is_token_param(name: str) -> bool:
    return bool(_TOKEN_PARAM.search(name))


def redact_url(url: str) -> str:
    """`url` with its password (or a user name used as a token), and token-like query values, hidden.

    A URL that cannot be parsed is redacted by pattern: anything before an `@`, token-like values.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port, like the rest of parsing
    except ValueError:
        return _redact_unparsable(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        if colon:
            netloc = f"{user}:{MASK}@{host}"
        elif parts.scheme in ("http", "https"):
            netloc = f"{MASK}@{host}"  # `https://TOKEN@hooks.example/`: the user name is the credential
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_is_token_param(k) for k, _ in pairs):
            query = urlencode([(k, MASK if _is_token_param(k) else v) for k, v in pairs], safe="*")
    if netloc == parts.netloc and query == parts.query:
        return url
    return parts._replace(netloc=netloc, query=query).geturl()


_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://)[^/?#]*@")
_QUERY_PAIR = re.compile(r"([?&;])([^=&#;]+)=([^&#;]*)")


def _redact_unparsable(url: str) -> str:
    url = _USERINFO.sub(lambda m: m.group(1) + MASK + "@", url)

    def pair(match: re.Match[str]) -> str:
        value = MASK if _is_token_param(match.group(2)) else match.group(3)
        return f"{match.group(1)}{match.group(2)}={value}"

    return _QUERY_PAIR.sub(pair, url)


def redact_apprise_url(url: str) -> str:
    """Show only the service of an Apprise URL: the rest usually holds its tokens."""
    scheme, sep, _rest = url.partition("://")
    return f"{scheme}://{MASK}" if sep else MASK


def redact_text(text: str) -> str:
    """`text` with every URL redacted and every remembered secret replaced by `***`."""
    if not text:
        return text
    if "://" in text:
        text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
    secrets = known_secrets()
    if secrets:
        # Longest first, so a secret that contains another is hidden whole.
        for secret in sorted(secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
    return text


def redact_value(value: Any) -> Any:
    """`redact_text` through strings, lists and dicts (JSON-like data); other values as they are."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


class RedactingFilter(logging.Filter):
    """A handler filter that redacts each record's message, its `extra=` values and its traceback.

    The message is formatted here once, so a secret passed as a %-argument is hidden too.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the formatter to report
            return True
        cleaned = redact_text(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        for key, value in list(vars(record).items()):
            if key in _STANDARD or key.startswith("_"):
                continue
            if isinstance(value, str | dict | list | tuple):
                setattr(record, key, redact_value(value))
        return True


_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def install_log_filter(handler: logging.Handler) -> None:
    """Put the redacting filter on `handler` (once): every record it emits passes through it."""
    if not any(isinstance(f, RedactingFilter) for f in handler.filters):
        handler.addFilter(RedactingFilter())


__all__ = [
    "MASK",
    "RedactingFilter",
    "install_log_filter",
    "known_secrets",
    "redact_apprise_url",
    "redact_text",
    "redact_url",
    "redact_value",
    "remember_secrets",
]
