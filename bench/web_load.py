"""A bounded, closed-loop HTTP load, run as its own process: `python -m bench.web_load URL ...`.

N connections each send one GET, read the whole body, and send the next as soon as it arrived
(closed loop: the load never exceeds N requests in flight, so a slow server is measured as slow
rather than buried under a queue it cannot drain). Every request's latency is kept; the result is
one JSON object on stdout: counts, requests/s, p50/p95/p99/max in ms, statuses, and this process's
own CPU seconds so that the client's share of a 2-core machine can be read off.

aiohttp rather than wrk: the client must check every status (a 401 or a 500 is fast, and a
benchmark that counts it as a served page is wrong), log in through the same form a browser uses,
and keep every sample for exact percentiles; wrk's Lua API can do some of that only with a script
per scenario. On this machine the client costs about 0.1-0.2 ms of CPU per request, which the
report prints next to the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import resource
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

#: written to stderr when the measured window opens
WINDOW_OPEN = "bench.web_load: measuring"


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between closest ranks (numpy's default).

    `samples` need not be sorted. An empty sequence has no percentile and raises ValueError.
    """
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0-100")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarise(
    latencies_s: Sequence[float], seconds: float, statuses: Counter[int], errors: Counter[str]
) -> dict[str, Any]:
    """Figures for one measured window: every latency counts, only 2xx responses are "ok"."""
    ok = sum(n for status, n in statuses.items() if 200 <= status < 300)
    summary: dict[str, Any] = {
        "requests": len(latencies_s),
        "ok": ok,
        "failed": len(latencies_s) - ok + sum(errors.values()),
        "seconds": seconds,
        "requests_per_s": ok / seconds if seconds > 0 else 0.0,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": dict(errors),
    }
    if latencies_s:
        ms = [s * 1000 for s in latencies_s]
        summary |= {f"p{q}_ms": percentile(ms, q) for q in (50, 95, 99)}
        summary["max_ms"] = max(ms)
        summary["mean_ms"] = sum(ms) / len(ms)
    return summary


async def run_load(
    urls: Sequence[str],
    *,
    connections: int,
    seconds: float,
    warmup: float,
    headers: dict[str, str],
    cookies: dict[str, str],
    timeout: float = 30.0,
    stagger: float = 0.0,
) -> dict[str, Any]:
    """`stagger`: seconds between the starts of the connections (within the warm-up), as a load that
    builds up over time. (Servers whose workers share one listening socket give a burst of new
    connections to whichever worker wakes first; `pricemon serve --workers` no longer does.)"""
    import aiohttp

    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    body_bytes = 0
    measuring = False
    began = time.perf_counter()
    start_measuring = began + warmup
    stop = start_measuring + seconds

    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(
        connector=connector, headers=headers, cookies=cookies, timeout=client_timeout
    ) as session:

        async def worker(index: int) -> None:
            nonlocal body_bytes, measuring
            await asyncio.sleep(index * stagger)
            n = index
            while True:
                sent = time.perf_counter()
                if sent >= stop:
                    return
                url = urls[n % len(urls)]
                n += connections
                try:
                    async with session.get(url, allow_redirects=False) as response:
                        body = await response.read()
                        status = response.status
                except (aiohttp.ClientError, TimeoutError) as exc:
                    if sent >= start_measuring:
                        errors[type(exc).__name__] += 1
                    await asyncio.sleep(0.01)  # a refused connection must not spin the loop
                    continue
                done = time.perf_counter()
                # A request counts in the window it was sent in; the warm-up fills caches and pools.
                if sent >= start_measuring and done <= stop + timeout:
                    latencies.append(done - sent)
                    statuses[status] += 1
                    body_bytes += len(body)

        async def announce_window() -> None:
            # for a caller sampling the server while the window is open (bench.web: its CPU, its connections)
            await asyncio.sleep(max(0.0, start_measuring - time.perf_counter()))
            sys.stderr.write(f"{WINDOW_OPEN}\n")
            sys.stderr.flush()

        await asyncio.gather(announce_window(), *(worker(i) for i in range(connections)))
    ended = time.perf_counter()
    summary = summarise(latencies, min(ended, stop) - start_measuring if ended > start_measuring else 0.0,
                        statuses, errors)
    summary["connections"] = connections
    summary["body_bytes_mean"] = body_bytes / len(latencies) if latencies else 0
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.web_load", description=__doc__.splitlines()[0])
    parser.add_argument("urls", nargs="+", help="URLs to GET, taken in turn")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before the window")
    parser.add_argument("--stagger", type=float, default=None,
                        help="seconds between connection starts (default: the warm-up's first half, shared)")
    parser.add_argument("--header", action="append", default=[], help='"Name: value" sent with every request')
    parser.add_argument("--cookie", action="append", default=[], help='"name=value" sent with every request')
    args = parser.parse_args(argv)
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    cookies = dict(c.split("=", 1) for c in args.cookie)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # the figures are then the stdlib loop's; the client is still a separate process
        pass
    before = resource.getrusage(resource.RUSAGE_SELF)
    summary = asyncio.run(
        run_load(args.urls, connections=args.connections, seconds=args.seconds, warmup=args.warmup,
                 headers=headers, cookies=cookies,
                 stagger=args.stagger if args.stagger is not None else args.warmup / 2 / max(1, args.connections))
    )
    after = resource.getrusage(resource.RUSAGE_SELF)
    summary["client_cpu_seconds"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    json.dump(summary, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
