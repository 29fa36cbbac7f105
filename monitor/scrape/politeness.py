"""Politeness towards one competitor: its request slot (concurrency, spacing, adaptive delay) and
the robots.txt rules of the hosts it sends us to.

Modelled on Scrapy's download slots and AutoThrottle: the delay between two request starts grows
on 429/503 (at least to the `Retry-After` the shop asked for) and on slow answers, never shrinks
because of an error, and only decays slowly back to the configured minimum on healthy answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from email.utils import parsedate_to_datetime
from types import TracebackType
from urllib.parse import urlsplit

from protego import Protego

from monitor.store.models import utcnow

logger = logging.getLogger(__name__)

#: the smallest step the adaptive delay grows by when the minimum delay is zero
BACKOFF_STEP = 0.25
#: share of the gap to the minimum delay that one healthy answer takes away
DECAY = 0.1


def parse_retry_after(value: str | None) -> float | None:
    """Seconds a `Retry-After` header asks us to wait (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - utcnow()).total_seconds())


class Slot:
    """One competitor's request slot: at most `max_concurrency` requests in flight, and request
    starts spaced by the current (adaptive) delay.

    Use as `async with slot:` around one request; report how it went with `observe()`.
    """

    def __init__(self, name: str, *, max_concurrency: int, min_delay: float, max_delay: float, slow: float) -> None:
        self.name = name
        self.min_delay = min_delay
        self.max_delay = max(max_delay, min_delay)
        self.slow = slow
        self.delay = min_delay
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._next_start = 0.0  # loop time before which no request may start

    async def __aenter__(self) -> Slot:
        await self._semaphore.acquire()
        try:
            loop = asyncio.get_running_loop()
            now = loop.time()
            # Reserve a start time before sleeping so concurrent waiters queue up one delay apart.
            start = max(now, self._next_start)
            self._next_start = start + self.delay
            if start > now:
                await asyncio.sleep(start - now)
        except BaseException:
            self._semaphore.release()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._semaphore.release()

    def observe(self, status_code: int | None, elapsed: float, retry_after: float | None = None) -> None:
        """Adapt the delay to one answer (`status_code` None: timeout or connection error)."""
        if status_code in (429, 503):
            grown = max(self.delay * 2, BACKOFF_STEP, retry_after or 0.0)
            self._grow(grown, f"HTTP {status_code}")
            if retry_after:
                # The shop said when to come back: nobody starts before that.
                wait = min(retry_after, self.max_delay)
                self._next_start = max(self._next_start, asyncio.get_running_loop().time() + wait)
        elif status_code is None or elapsed > self.slow:
            self._grow(max(self.delay * 1.5, BACKOFF_STEP), "slow answer" if status_code else "no answer")
        elif status_code < 400 and self.delay > self.min_delay:
            self.delay = max(self.min_delay, self.delay - (self.delay - self.min_delay) * DECAY)
        # Other errors (4xx, 5xx) leave the delay as it is: errors never speed us up.

    def _grow(self, value: float, why: str) -> None:
        new = min(self.max_delay, value)
        if new > self.delay:
            logger.info("slowing down for %s: %.2fs between requests (%s)", self.name, new, why)
            self.delay = new


RobotsLoader = Callable[[str], Awaitable[tuple[int | None, str]]]


class RobotsUnreachable(Exception):
    """robots.txt got no answer at all (connection failure or timeout): the shop itself cannot
    be reached, and a page of it is recorded as that failure (`outcome`), not as a robots refusal."""

    def __init__(self, outcome: str, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.message = message


class RobotsRules:
    """robots.txt of every host one competitor's listings live on, fetched once and cached.

    Following RFC 9309: a 4xx robots.txt allows everything; a 5xx or an unreachable one
    disallows everything for this sweep (the shop may be in trouble; we do not add load).
    """

    def __init__(self, user_agent: str, load: RobotsLoader) -> None:
        self.user_agent = user_agent
        self._load = load
        self._rules: dict[str, asyncio.Future[Protego | bool | RobotsUnreachable]] = {}

    async def allowed(self, url: str) -> tuple[bool, str | None]:
        """Whether `url` may be fetched, and why not. Raises RobotsUnreachable when its host did
        not answer for robots.txt (remembered for the sweep: no more load on a shop in trouble)."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        future = self._rules.get(origin)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._rules[origin] = future
            try:
                future.set_result(await self._fetch(origin))
            except BaseException:
                # Cancelled mid-fetch: let the next caller try again instead of waiting forever.
                del self._rules[origin]
                future.cancel()
                raise
        rules = await future
        if isinstance(rules, RobotsUnreachable):
            raise RobotsUnreachable(rules.outcome, rules.message)
        if rules is True:
            return True, None
        if rules is False:
            return False, f"robots.txt of {origin} could not be read; not fetching"
        if rules.can_fetch(url, self.user_agent):
            return True, None
        return False, f"disallowed by {origin}/robots.txt"

    async def _fetch(self, origin: str) -> Protego | bool | RobotsUnreachable:
        try:
            status, text = await self._load(f"{origin}/robots.txt")
        except RobotsUnreachable as exc:
            logger.warning("robots.txt of %s: no answer: %s", origin, exc.message)
            return exc
        except Exception as exc:  # any other failure to read it disallows everything
            logger.warning("robots.txt of %s unreadable: %s", origin, exc)
            return False
        if status is None or status >= 500:
            logger.warning("robots.txt of %s unavailable (%s)", origin, status or "no answer")
            return False
        if status >= 400:
            return True
        try:
            return Protego.parse(text)
        except Exception:  # a garbled robots.txt forbids nothing we can understand
            logger.warning("robots.txt of %s could not be parsed; treating it as empty", origin)
            return True
