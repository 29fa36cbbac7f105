"""The price feed out: a CSV snapshot written atomically, and a JSON webhook POST with retries.

The webhook secret is read from the environment variable named in `[feed] secret_env` and only
ever goes into the request header: never into a log line, an error message or the database.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from monitor.errors import ConfigError
from monitor.files import replaced_atomically
from monitor.money import format_amount
from monitor.redact import redact_text, redact_url
from monitor.safecsv import SafeWriter
from monitor.settings import FeedSettings

logger = logging.getLogger(__name__)

FEED_COLUMNS = ("sku", "price", "currency", "updated_at")

try:
    import fcntl
except ImportError:  # Windows: no flock; one writer of the feed at a time is then the user's to keep
    fcntl = None  # type: ignore[assignment]


@contextmanager
def csv_feed_lock(path: Path) -> Iterator[None]:
    """Hold the lock of the feed file's folder (flock), across processes and threads alike.

    Taken before the snapshot is read and held until it replaced the file: otherwise a writer
    that read before another process's apply committed can replace the file after that process
    wrote its newer snapshot, and the feed keeps the old prices until the next write. The folder
    is locked rather than a lock file beside the feed, so nothing but the feed is left there.
    """
    folder = os.open(Path(path).parent, os.O_RDONLY)
    try:
        if fcntl is not None:
            fcntl.flock(folder, fcntl.LOCK_EX)  # released when the descriptor is closed
        yield
    finally:
        os.close(folder)


def write_csv_feed(path: Path, rows: Iterable[tuple[str, Decimal, str, datetime]]) -> int:
    """Write `sku,price,currency,updated_at` to `path` through a temp file and os.replace, so a
    reader sees the old feed or the new one, never half of one. Returns the number of rows.

    A missing folder is not created (`config check` reports it): OSError says what is wrong."""
    count = 0
    with replaced_atomically(Path(path)) as fh:
        writer = SafeWriter(fh)
        writer.writerow(FEED_COLUMNS)
        for sku, price, currency, updated_at in rows:
            writer.writerow((sku, format_amount(price), currency, updated_at.isoformat()))
            count += 1
    return count


def webhook_headers(feed: FeedSettings, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    env = os.environ if environ is None else environ
    headers = {"Content-Type": "application/json", "User-Agent": "pricemon-feed/0.1"}
    if feed.secret_env:
        secret = env.get(feed.secret_env)
        if not secret:
            raise ConfigError(f"feed.secret_env: environment variable {feed.secret_env} is not set")
        headers[feed.secret_header] = secret
    return headers


class _DeliveryFailed(Exception):
    """One failed POST; tenacity retries on it and the last one's message is recorded."""


def post_changes(
    feed: FeedSettings,
    changes: Sequence[Mapping[str, Any]],
    headers: Mapping[str, str],
    client: httpx.Client | None = None,
) -> tuple[int, str | None]:
    """POST `{"changes": [...]}` to the webhook, retrying with exponential backoff and jitter.

    Returns (attempts made, last error or None when a 2xx answer was received).
    """
    assert feed.webhook_url is not None
    url = feed.webhook_url
    own = client is None
    http = client or httpx.Client(timeout=feed.timeout.total_seconds())
    payload = {"changes": [dict(c) for c in changes]}
    base = feed.backoff.total_seconds()

    def post_once() -> None:
        try:
            response = http.post(url, json=payload, headers=dict(headers))
        except httpx.HTTPError as exc:
            raise _DeliveryFailed(redact_text(f"{type(exc).__name__}: {exc}")[:500]) from None
        if not response.is_success:
            # the URL may carry credentials: the error is shown, logged and stored
            raise _DeliveryFailed(f"HTTP {response.status_code} from {redact_url(url)}")

    def log_failure(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        logger.warning("price feed POST failed (attempt %d of %d): %s", state.attempt_number, feed.retries + 1, error)

    retrying = Retrying(
        stop=stop_after_attempt(feed.retries + 1),
        wait=wait_random_exponential(multiplier=base, max=max(base, 60.0)),
        retry=retry_if_exception_type(_DeliveryFailed),
        after=log_failure,
        sleep=time.sleep,
        reraise=True,
    )
    try:
        retrying(post_once)
    except _DeliveryFailed as exc:
        return retrying.statistics.get("attempt_number", feed.retries + 1), str(exc)
    finally:
        if own:
            http.close()
    return retrying.statistics.get("attempt_number", 1), None
