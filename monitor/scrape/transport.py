"""How a page request leaves pricemon: one GET, its status and headers, and its body read up to a cap.

Two implementations of the same small interface:

* `AiohttpPages`, the default: page GETs go straight to an aiohttp session. A sweep makes one
  request per listing, and on the benchmark web building httpx's `Request` and `Response`
  objects around aiohttp (URL parsing, header normalisation, the body's async-iterator chain)
  cost about as much CPU as aiohttp's own work (bench/README.md, "Fetching").
* `HttpxPages`, for everything else: any httpx transport, so a competitor behind a proxy uses
  httpx's reference proxy support, and anything that speaks httpx's transport API can be plugged
  in.

Both follow no redirects, keep no cookies, decode gzip/deflate bodies and report failures as
`TransportFailure`, so the fetcher above them behaves the same whichever one it is given.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Mapping
from typing import Protocol

import aiohttp
import httpx
from aiohttp.http_exceptions import PayloadEncodingError


class TransportFailure(Exception):
    """A request that got no usable answer. `kind`: "timeout", "connection" (both worth a retry),
    "request" (a request that cannot succeed as sent) or "body" (an undecodable body)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind

    @property
    def retryable(self) -> bool:
        return self.kind in ("timeout", "connection")


class PageResponse(Protocol):
    status: int

    def header(self, name: str) -> str | None:
        """A response header by name (any case), or None."""

    async def read(self, cap: int) -> bytes | None:
        """The decoded body, or None as soon as it grows beyond `cap` bytes."""

    async def aclose(self) -> None: ...


class PageTransport(Protocol):
    async def get(self, url: str, headers: Mapping[str, str], timeout: float) -> PageResponse:
        """Send a GET; raises TransportFailure. `timeout` bounds connecting and each read."""

    async def aclose(self) -> None: ...


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:200]


@functools.cache
def ssl_context() -> ssl.SSLContext:
    # Building one costs ~50 ms (it loads the CA bundle); a sweep has one transport per competitor.
    return httpx.create_ssl_context()


def default_transport(proxy: str | None, max_connections: int = 512) -> PageTransport:
    """aiohttp for direct requests; httpx's own transport for a proxied competitor."""
    if proxy:
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        return HttpxPages(httpx.AsyncHTTPTransport(proxy=proxy, limits=limits, verify=ssl_context()))
    return AiohttpPages(max_connections=max_connections)


# -- aiohttp -----------------------------------------------------------------------------------------


class _AiohttpResponse:
    __slots__ = ("_response", "status")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status

    def header(self, name: str) -> str | None:
        return self._response.headers.get(name)

    async def read(self, cap: int) -> bytes | None:
        stream = self._response.content
        chunks: list[bytes] = []
        size = 0
        try:
            # read(n) hands over whatever has arrived, up to n bytes: a page on a fast link comes
            # in one or two pieces instead of a fixed-size chunk at a time.
            while chunk := await stream.read(cap + 1 - size):
                size += len(chunk)
                if size > cap:
                    return None
                chunks.append(chunk)
        except aiohttp.ClientPayloadError as exc:
            if isinstance(exc.__cause__, PayloadEncodingError):
                raise TransportFailure("body", f"undecodable body: {_short(exc)}") from None
            raise TransportFailure("connection", f"connection failed: {_short(exc)}") from None
        except aiohttp.ClientError as exc:
            raise _failure(exc) from None
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def aclose(self) -> None:
        self._response.release()


def _failure(exc: BaseException) -> TransportFailure:
    if isinstance(exc, TimeoutError):  # aiohttp's socket timeouts are TimeoutErrors too
        return TransportFailure("timeout", _short(exc))
    if isinstance(exc, (aiohttp.InvalidURL, aiohttp.ClientResponseError)):
        return TransportFailure("request", f"request failed: {_short(exc)}")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return TransportFailure("connection", f"connection failed: {_short(exc)}")
    return TransportFailure("request", f"request failed: {type(exc).__name__}: {_short(exc)}")


class AiohttpPages:
    """Page GETs on one aiohttp session (created on first use, inside the running event loop)."""

    def __init__(self, *, max_connections: int = 512) -> None:
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.max_connections, ssl=ssl_context())
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),  # pricemon keeps no cookies
                auto_decompress=True,
                # The caller's headers are the whole request: no aiohttp User-Agent or Accept.
                skip_auto_headers=("User-Agent", "Accept"),
            )
        return self._session

    async def get(self, url: str, headers: Mapping[str, str], timeout: float) -> PageResponse:
        limits = self._timeouts.get(timeout)
        if limits is None:
            limits = self._timeouts[timeout] = aiohttp.ClientTimeout(
                total=None, connect=timeout, sock_connect=timeout, sock_read=timeout
            )
        try:
            response = await self._client().get(url, headers=headers, allow_redirects=False, timeout=limits)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            raise _failure(exc) from None
        return _AiohttpResponse(response)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


# -- httpx -------------------------------------------------------------------------------------------


class _HttpxResponse:
    __slots__ = ("_response", "status")

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status = response.status_code

    def header(self, name: str) -> str | None:
        return self._response.headers.get(name)

    async def read(self, cap: int) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in self._response.aiter_bytes():
                size += len(chunk)
                if size > cap:
                    return None
                chunks.append(chunk)
        except httpx.DecodingError as exc:
            raise TransportFailure("body", f"undecodable body: {_short(exc)}") from None
        except httpx.HTTPError as exc:
            raise _httpx_failure(exc) from None
        return b"".join(chunks)

    async def aclose(self) -> None:
        await self._response.aclose()


def _httpx_failure(exc: Exception) -> TransportFailure:
    if isinstance(exc, httpx.TimeoutException):
        return TransportFailure("timeout", _short(exc))
    if isinstance(exc, httpx.TransportError):
        return TransportFailure("connection", f"connection failed: {_short(exc)}")
    return TransportFailure("request", f"request failed: {_short(exc)}")


class HttpxPages:
    """Page GETs through any httpx transport (e.g. `httpx.AsyncHTTPTransport(proxy=...)`)."""

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self.transport = transport

    async def get(self, url: str, headers: Mapping[str, str], timeout: float) -> PageResponse:
        timeouts = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
        try:
            request = httpx.Request("GET", url, headers=dict(headers), extensions={"timeout": timeouts})
            response = await self.transport.handle_async_request(request)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise _httpx_failure(exc) from None
        return _HttpxResponse(response)

    async def aclose(self) -> None:
        await self.transport.aclose()
