"""A TCP relay that holds every byte the shops send back for a random delay: the stand-in for
`tc netem delay` on kernels built without sch_netem.

Run inside the benchmark's network namespace, in front of nginx: `python -m bench.delay_relay HOST
--delay 40ms --jitter 20ms LISTEN_PORT=UPSTREAM_PORT ...`. Each chunk read from nginx is released to
the client at max(previous release, now + delay +- jitter) (uniform, as netem's default), so bytes
keep their order and throughput is not capped; requests go upstream at once. That is netem on the
shops' side of the veth: every request/response round trip, the TLS handshake's included, gains
40 +- 20 ms. Loss is left to the kernel (an nftables rule on the veth), so TCP really retransmits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import socket
import sys
from collections.abc import Sequence

from monitor.settings import parse_duration

#: chunks waiting for their release time per connection before reading from nginx pauses
QUEUE_CHUNKS = 64
READ_BYTES = 65536


async def _pump_now(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(READ_BYTES):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.write_eof()


async def _pump_delayed(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float, jitter: float
) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(QUEUE_CHUNKS)

    async def release() -> None:
        while True:
            at, chunk = await queue.get()
            wait = at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not chunk:
                return
            writer.write(chunk)
            await writer.drain()

    releaser = asyncio.create_task(release())
    last = 0.0
    try:
        while True:
            chunk = await reader.read(READ_BYTES)
            last = max(last, loop.time() + delay + random.uniform(-jitter, jitter))
            await queue.put((last, chunk))
            if not chunk:
                break
        await releaser
    except (ConnectionError, OSError):
        pass
    finally:
        releaser.cancel()
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()


async def _serve(host: str, pairs: Sequence[tuple[int, int]], delay: float, jitter: float) -> None:
    async def handle(port: int, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        sock = client_w.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            upstream_r, upstream_w = await asyncio.open_connection(host, port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(
            _pump_now(client_r, upstream_w), _pump_delayed(upstream_r, client_w, delay, jitter), return_exceptions=True
        )
        with contextlib.suppress(OSError):
            upstream_w.close()

    servers = []
    for listen, upstream in pairs:

        async def on_client(r: asyncio.StreamReader, w: asyncio.StreamWriter, upstream: int = upstream) -> None:
            await handle(upstream, r, w)

        servers.append(await asyncio.start_server(on_client, host, listen, backlog=4096))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    for server in servers:
        server.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.delay_relay", description=__doc__)
    parser.add_argument("host", help="address to listen on; nginx is reached on the same address")
    parser.add_argument("--delay", default="40ms")
    parser.add_argument("--jitter", default="20ms")
    parser.add_argument("pairs", nargs="+", metavar="LISTEN=UPSTREAM")
    args = parser.parse_args(argv)
    pairs = [tuple(int(p) for p in pair.split("=", 1)) for pair in args.pairs]
    delay = parse_duration(args.delay).total_seconds()
    jitter = min(parse_duration(args.jitter).total_seconds(), delay)
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency of pricemon
        runner = asyncio.run
    runner(_serve(args.host, pairs, delay, jitter))  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main())
