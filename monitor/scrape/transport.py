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
`TransportFailure`, so the fetcher above them behaves the same whichever one it is given. Given an
`AddressPolicy`, `AiohttpPages` checks every address it connects to, after DNS (a "blocked"
failure names the address and the rule); `HttpxPages` checks address literals, since through a
proxy it is the proxy that resolves names.
"""

from __future__ import annotations

import functools
import socket
import ssl
from collections.abc import Mapping
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.http_exceptions import PayloadEncodingError

from monitor.scrape.addresses import AddressPolicy, BlockedAddressError


class TransportFailure(Exception):
    """A request that got no usable answer. `kind`: "timeout", "connection" (both worth a retry),
    "request" (a request that cannot succeed as sent), "body" (an undecodable body), "blocked"
    (the address policy refused the address; nothing was sent) or "tls" (the TLS handshake failed,
    e.g. a certificate no trusted CA signed; not retried, since a retry meets the same certificate)."""

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

    async def read(self, cap: int, *, truncate: bool = False) -> bytes | None:
        """The decoded body, or None as soon as it grows beyond `cap` bytes (with `truncate`, its
        first `cap` bytes instead)."""

    async def aclose(self) -> None: ...


class PageTransport(Protocol):
    async def get(self, url: str, headers: Mapping[str, str], timeout: float) -> PageResponse:
        """Send a GET; raises TransportFailure. `timeout` bounds connecting and each read."""

    async def aclose(self) -> None: ...


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:200]


@functools.cache
def ssl_context(ca_bundle: str | None = None) -> ssl.SSLContext:
    """certifi's CAs (httpx's default), plus those of `ca_bundle` (`scrape.ca_bundle`) when given.

    Building one costs ~50 ms (it loads the CA bundle); a sweep has one transport per competitor,
    so one is built per bundle and shared.
    """
    context = httpx.create_ssl_context()
    if ca_bundle is not None:
        context.load_verify_locations(cafile=ca_bundle)
    return context


def default_transport(
    proxy: str | None,
    max_connections: int = 512,
    policy: AddressPolicy | None = None,
    ca_bundle: str | None = None,
) -> PageTransport:
    """aiohttp for direct requests; httpx's own transport for a proxied competitor."""
    context = ssl_context(ca_bundle)
    if proxy:
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        return HttpxPages(httpx.AsyncHTTPTransport(proxy=proxy, limits=limits, verify=context), policy=policy)
    return AiohttpPages(max_connections=max_connections, policy=policy, ssl_context=context)


# -- aiohttp -----------------------------------------------------------------------------------------


class _AiohttpResponse:
    __slots__ = ("_response", "status")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status

    def header(self, name: str) -> str | None:
        return self._response.headers.get(name)

    async def read(self, cap: int, *, truncate: bool = False) -> bytes | None:
        stream = self._response.content
        chunks: list[bytes] = []
        size = 0
        try:
            # read(n) hands over whatever has arrived, up to n bytes: a page on a fast link comes
            # in one or two pieces instead of a fixed-size chunk at a time.
            while chunk := await stream.read(cap + 1 - size):
                size += len(chunk)
                if size > cap:
                    if not truncate:
                        return None
                    chunks.append(chunk[: len(chunk) - (size - cap)])
                    break
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


def _tls_failure(host: str | None, port: int | None, exc: BaseException) -> TransportFailure:
    reason: BaseException = exc
    while not isinstance(reason, ssl.SSLError) and reason.__cause__ is not None:
        reason = reason.__cause__
    if isinstance(exc, aiohttp.ClientSSLError) and isinstance(exc.os_error, ssl.SSLError):
        reason = exc.os_error
    detail = getattr(reason, "verify_message", None) or getattr(reason, "reason", None) or _short(reason)
    where = f" with {host}:{port}" if host else ""
    hint = ""
    if isinstance(reason, ssl.SSLCertVerificationError):
        hint = " (a private CA is trusted through scrape.ca_bundle)"
    return TransportFailure("tls", f"TLS handshake failed{where}: {detail}{hint}")


def _failure(exc: BaseException) -> TransportFailure:
    blocked = getattr(exc, "os_error", None) or exc.__cause__
    if isinstance(blocked, BlockedAddressError):
        return TransportFailure("blocked", str(blocked))
    if isinstance(exc, TimeoutError):  # aiohttp's socket timeouts are TimeoutErrors too
        return TransportFailure("timeout", _short(exc))
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return _tls_failure(getattr(exc, "host", None), getattr(exc, "port", None), exc)
    if isinstance(exc, (aiohttp.InvalidURL, aiohttp.ClientResponseError)):
        return TransportFailure("request", f"request failed: {_short(exc)}")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return TransportFailure("connection", f"connection failed: {_short(exc)}")
    return TransportFailure("request", f"request failed: {type(exc).__name__}: {_short(exc)}")


class CheckedResolver(AbstractResolver):
    """Wraps a resolver and drops the answers the policy refuses; when none is left, the lookup
    fails with the refusal. The socket factory checks again at connect time."""

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver) -> None:
        self.policy = policy
        self.inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self.inner.resolve(host, port, family)
        allowed = [a for a in answers if self.policy.refusal(a["host"]) is None]
        if not allowed and answers:
            refusal = self.policy.refusal(answers[0]["host"])
            raise BlockedAddressError(f"{host}: {refusal}")
        return allowed

    async def close(self) -> None:
        await self.inner.close()


class AiohttpPages:
    """Page GETs on one aiohttp session (created on first use, inside the running event loop).

    With a `policy`, every connection's address is checked after DNS and again as its socket is
    made; `resolver` replaces aiohttp's default name resolution (tests use it to rebind a name).
    """

    def __init__(
        self,
        *,
        max_connections: int = 512,
        policy: AddressPolicy | None = None,
        resolver: AbstractResolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.max_connections = max_connections
        self.policy = policy
        self.resolver = resolver
        self.ssl_context = ssl_context
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            resolver = self.resolver
            if self.policy is not None:
                resolver = CheckedResolver(self.policy, resolver or aiohttp.DefaultResolver())
            connector = aiohttp.TCPConnector(
                limit=self.max_connections,
                ssl=self.ssl_context or ssl_context(),
                resolver=resolver,
                socket_factory=self.policy.check_socket if self.policy is not None else None,
            )
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

    async def read(self, cap: int, *, truncate: bool = False) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in self._response.aiter_bytes():
                size += len(chunk)
                if size > cap:
                    if not truncate:
                        return None
                    chunks.append(chunk[: len(chunk) - (size - cap)])
                    break
                chunks.append(chunk)
        except httpx.DecodingError as exc:
            raise TransportFailure("body", f"undecodable body: {_short(exc)}") from None
        except httpx.HTTPError as exc:
            raise _httpx_failure(exc) from None
        return b"".join(chunks)

    async def aclose(self) -> None:
        await self._response.aclose()


def _httpx_failure(exc: Exception, url: str = "") -> TransportFailure:
    if isinstance(exc, httpx.TimeoutException):
        return TransportFailure("timeout", _short(exc))
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__ or cause.__context__
    if cause is not None:
        parts = urlsplit(url)
        return _tls_failure(parts.hostname, parts.port or (443 if parts.scheme == "https" else None), cause)
    if isinstance(exc, httpx.TransportError):
        return TransportFailure("connection", f"connection failed: {_short(exc)}")
    return TransportFailure("request", f"request failed: {_short(exc)}")


class HttpxPages:
    """Page GETs through any httpx transport (e.g. `httpx.AsyncHTTPTransport(proxy=...)`).

    With a `policy`, a URL whose host is an address literal is checked before it is sent; names
    are resolved by the proxy, out of pricemon's sight.
    """

    def __init__(self, transport: httpx.AsyncBaseTransport, *, policy: AddressPolicy | None = None) -> None:
        self.transport = transport
        self.policy = policy

    async def get(self, url: str, headers: Mapping[str, str], timeout: float) -> PageResponse:
        if self.policy is not None:
            refusal = self.policy.refusal_for_host(urlsplit(url).hostname or "")
            if refusal is not None:
                raise TransportFailure("blocked", refusal)
        timeouts = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
        try:
            request = httpx.Request("GET", url, headers=dict(headers), extensions={"timeout": timeouts})
            response = await self.transport.handle_async_request(request)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise _httpx_failure(exc, url) from None
        return _HttpxResponse(response)

    async def aclose(self) -> None:
        await self.transport.aclose()
