"""The per-competitor slot: spacing between request starts and the adaptive delay."""

from __future__ import annotations

import asyncio

from monitor.scrape.politeness import Slot, parse_retry_after


def test_delay_backs_off_on_429_and_slow_answers_never_speeds_up_on_errors() -> None:
    async def scenario() -> list[float]:
        slot = Slot("acme", max_concurrency=2, min_delay=0.1, max_delay=5, slow=1.0)
        seen = [slot.delay]
        slot.observe(429, 0.01, retry_after=2.0)  # the shop asked for 2 s
        seen.append(slot.delay)
        slot.observe(500, 0.01)  # an error never makes us faster
        seen.append(slot.delay)
        slot.observe(200, 0.01)  # a healthy answer decays it a little, not to the minimum
        seen.append(slot.delay)
        slot.observe(200, 3.0)  # slow answer: back off again
        seen.append(slot.delay)
        slot.observe(503, 0.01, retry_after=3600)  # capped by max_delay
        seen.append(slot.delay)
        return seen

    start, after_429, after_500, after_ok, after_slow, after_503 = asyncio.run(scenario())
    assert start == 0.1
    assert after_429 == 2.0
    assert after_500 == after_429
    assert 0.1 < after_ok < after_429
    assert after_slow > after_ok
    assert after_503 == 5


def test_requests_wait_for_retry_after_and_respect_concurrency() -> None:
    async def scenario() -> tuple[float, int]:
        loop = asyncio.get_running_loop()
        slot = Slot("acme", max_concurrency=1, min_delay=0, max_delay=5, slow=10)
        slot.observe(429, 0.0, retry_after=0.3)
        began = loop.time()
        active = peak = 0

        async def request() -> None:
            nonlocal active, peak
            async with slot:
                active += 1
                peak = max(peak, active)
                await asyncio.sleep(0.01)
                active -= 1

        await asyncio.gather(*(request() for _ in range(3)))
        return loop.time() - began, peak

    waited, peak = asyncio.run(scenario())
    assert waited >= 0.29  # nobody started before the Retry-After had passed
    assert peak == 1


def test_retry_after_forms() -> None:
    assert parse_retry_after("120") == 120
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # in the past
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
