"""Rendering a competitor's page in headless Chromium before it is read (`render = "browser"`), for
shops whose pages write their price with JavaScript.

The browser itself never reaches the network. Every request a page makes is intercepted: the
listing's document is answered with the body the competitor's `Fetcher` already fetched; scripts,
XHR and fetch() to the competitor's own origin are fetched by that same `Fetcher` (so robots.txt,
its request slot and adaptive delay, the size cap, the timeout, the proxy and any address rule of
a plain fetch hold for each of them); everything else (other hosts, images, fonts, media,
stylesheets, websockets, beacons) is refused. A dead proxy behind it all catches whatever might
slip past interception. One Chromium per worker process, at most `scrape.browser_pages` pages
at once in reused tabs whose cookies and storage are cleared after every page.

Playwright drives Debian's /usr/bin/chromium (`scrape.browser_executable`); pricemon never
downloads a browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from monitor.errors import ConfigError

if TYPE_CHECKING:
    from monitor.scrape.fetch import Fetcher, Page

logger = logging.getLogger(__name__)

#: as the report's browser test and the machine notes launch it; the proxy goes nowhere (see above)
LAUNCH_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--proxy-server=http://127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
)
#: the only kinds of request a page may make; images, fonts, media, stylesheets and the rest are
#: refused (extraction reads the DOM, never pixels or computed styles)
ALLOWED_TYPES = frozenset({"document", "script", "xhr", "fetch"})
#: requests one page may make besides its document
MAX_REQUESTS = 100
#: bytes one page may fetch in all, as a multiple of scrape.max_body_bytes
TOTAL_BODY_FACTOR = 4
#: the page counts as rendered once no request of it has been in flight for this long
QUIET_SECONDS = 0.1
#: longest wait for that quiet after the load event (a page that polls is read as it stands)
SETTLE_SECONDS = 5.0
#: renders one tab does before its browser context is replaced by a fresh one
RECYCLE_AFTER = 100
INSTALL_HINT = 'pip install "pricemon[browser]"'


def check_browser(executable: str) -> None:
    """Raise ConfigError, saying what to install, when pages cannot be rendered here."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        raise ConfigError(
            f'render = "browser" needs the Python package playwright: {INSTALL_HINT} (scrape.browser_executable)'
        ) from None
    if not os.access(executable, os.X_OK):
        raise ConfigError(
            f'render = "browser" needs Chromium at {executable} (scrape.browser_executable); '
            "on Debian: apt install chromium"
        )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _without_fragment(url: str) -> str:
    return url.partition("#")[0]


class _PageRequests:
    """What one rendered page asked for: in flight now, made so far, bytes fetched, refused."""

    def __init__(self, loop: asyncio.AbstractEventLoop, budget: int) -> None:
        self.loop = loop
        self.in_flight = 0
        self.made = 0
        self.bytes = 0
        self.budget = budget
        self.refused: list[str] = []
        self.last_activity = loop.time()
        self.seen = 0  # requests the page started, as the browser reports them
        self.unfinished = 0  # of those, not yet finished or failed in the browser

    def touch(self) -> None:
        self.last_activity = self.loop.time()

    def started(self) -> None:
        self.seen += 1
        self.unfinished += 1
        self.touch()

    def ended(self) -> None:
        self.unfinished = max(0, self.unfinished - 1)
        self.touch()

    def quiet(self) -> bool:
        return self.in_flight == 0 and self.unfinished == 0 and self.loop.time() - self.last_activity >= QUIET_SECONDS


@dataclass(eq=False)
class _Render:
    """One render in progress: what its requests may reach, and what they did."""

    fetcher: Fetcher
    document: Page
    requests: _PageRequests
    allowed: set[str]
    address: str
    served_document: bool = False


@dataclass(eq=False)
class _Tab:
    """A browser context with one page, reused for render after render (a new page costs a new
    renderer process: ~0.3 s of CPU where a reused one renders in ~0.1 s)."""

    context: Any
    page: Any = None
    uses: int = 0
    job: _Render | None = None


class BrowserPool:
    """One headless Chromium, started on first use, rendering at most `pages` pages at once in
    reused tabs. Close it with `aclose()`."""

    def __init__(self, pages: int, executable: str) -> None:
        self.pages = pages
        self.executable = executable
        self._semaphore = asyncio.Semaphore(pages)
        self._lock = asyncio.Lock()
        self._playwright: Any = None
        self._browser: Any = None
        self._idle: list[_Tab] = []

    async def _started(self) -> Any:
        async with self._lock:
            if self._browser is None or not self._browser.is_connected():
                from playwright.async_api import async_playwright

                if self._playwright is None:
                    self._playwright = await async_playwright().start()
                self._idle.clear()  # their browser is gone
                self._browser = await self._playwright.chromium.launch(
                    executable_path=self.executable, args=list(LAUNCH_ARGS), headless=True
                )
                logger.info("started %s for rendering, %d pages at once", self.executable, self.pages)
            return self._browser

    async def aclose(self) -> None:
        browser, playwright = self._browser, self._playwright
        self._browser = self._playwright = None
        self._idle.clear()
        try:
            if browser is not None:
                await browser.close()
        finally:
            if playwright is not None:
                await playwright.stop()

    async def _tab(self) -> _Tab:
        browser = await self._started()
        if self._idle:
            return self._idle.pop()
        context = await browser.new_context(service_workers="block", accept_downloads=False)
        tab = _Tab(context)

        async def route(route: Any) -> None:
            await _route(tab, route)

        async def socket(ws: Any) -> None:
            if tab.job is not None:
                tab.job.requests.refused.append(f"websocket: {ws.url[:120]}")
            await ws.close()

        await context.route("**/*", route)
        await context.route_web_socket("**/*", socket)
        tab.page = page = await context.new_page()
        page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.dismiss()))
        page.on("request", lambda _request: tab.job.requests.started() if tab.job else None)
        page.on("requestfinished", lambda _request: tab.job.requests.ended() if tab.job else None)
        page.on("requestfailed", lambda _request: tab.job.requests.ended() if tab.job else None)
        return tab

    async def _release(self, tab: _Tab, reusable: bool) -> None:
        from playwright.async_api import Error as PlaywrightError

        tab.job = None
        tab.uses += 1
        try:
            if reusable and tab.uses < RECYCLE_AFTER:
                # Nothing of one render may steer the next: storage and cookies go, the page is left.
                await asyncio.wait_for(tab.page.evaluate(_CLEAR_STORAGE), 5)
                await asyncio.wait_for(tab.page.goto("about:blank"), 5)
                await asyncio.wait_for(tab.context.clear_cookies(), 5)
                self._idle.append(tab)
                return
        except (TimeoutError, PlaywrightError):
            pass
        try:
            await asyncio.wait_for(tab.context.close(), 10)
        except (TimeoutError, PlaywrightError):
            logger.warning("a browser context did not close")

    async def render(self, fetcher: Fetcher, document: Page) -> Page:
        """The DOM of `document` after its scripts ran, as a page to extract from; every failure
        is a failed page (an outcome with a message), never an exception."""
        from playwright.async_api import Error as PlaywrightError

        from monitor.scrape.fetch import Page

        async with self._semaphore:
            try:
                tab = await self._tab()
            except PlaywrightError as exc:
                return Page("http_error", document.url, error=f"cannot start Chromium: {str(exc)[:200]}")
            reusable = False
            try:
                # Waiting for a free page is not the shop's fault; only rendering is timed.
                async with asyncio.timeout(fetcher.timeout):
                    page = await self._render(tab, fetcher, document)
                reusable = True
                return page
            except TimeoutError:
                return Page("timeout", document.url, 200, error=f"page not rendered within {fetcher.timeout:g}s")
            except PlaywrightError as exc:
                message = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
                return Page("http_error", document.url, 200, error=f"rendering failed: {message}")
            finally:
                await self._release(tab, reusable)

    async def _render(self, tab: _Tab, fetcher: Fetcher, document: Page) -> Page:
        from monitor.scrape.fetch import Page

        loop = asyncio.get_running_loop()
        cap = fetcher.scrape.max_body_bytes
        requests = _PageRequests(loop, cap * TOTAL_BODY_FACTOR)
        allowed = {_origin(document.url), _origin(fetcher.competitor.base_url)}
        tab.job = _Render(fetcher, document, requests, allowed, _without_fragment(document.url))
        await tab.page.goto(document.url, wait_until="load", timeout=fetcher.timeout * 1000)
        settle_until = loop.time() + SETTLE_SECONDS
        while loop.time() < settle_until:
            if requests.quiet():
                # Every response is in; one task turn in the page lets their callbacks write the
                # DOM. Rendered unless that started new requests.
                seen = requests.seen
                await tab.page.evaluate(_NEXT_TASK)
                if requests.quiet() and requests.seen == seen:
                    break
            await asyncio.sleep(QUIET_SECONDS / 2)
        html = await tab.page.content()
        if requests.refused:
            logger.debug(
                "rendering %s refused %d request(s): %s",
                document.url,
                len(requests.refused),
                "; ".join(requests.refused[:5]),
            )
        body = html.encode("utf-8", errors="replace")
        if len(body) > cap:
            return Page("invalid_content", document.url, 200, error=f"rendered page exceeds {cap} bytes")
        # No validators: the document may be unchanged while what its scripts load is not.
        return Page("ok", document.url, 200, body=body, encoding="utf-8", listing_url=document.listing_url)


_NEXT_TASK = "() => new Promise(resolve => setTimeout(resolve, 0))"
_CLEAR_STORAGE = "() => { try { localStorage.clear(); sessionStorage.clear(); } catch (e) {} }"


async def _refuse(route: Any, job: _Render | None, why: str) -> None:
    from playwright.async_api import Error as PlaywrightError

    if job is not None:
        job.requests.refused.append(f"{why}: {route.request.url[:120]}")
    with contextlib.suppress(PlaywrightError):  # the page went away meanwhile
        await route.abort("blockedbyclient")


async def _route(tab: _Tab, route: Any) -> None:
    """Answer one request of a tab's page: refused, its document, or fetched by its competitor's
    fetcher."""
    job = tab.job
    request = route.request
    url = request.url
    if job is None:
        await _refuse(route, None, "no render in progress")
        return
    if request.resource_type not in ALLOWED_TYPES:
        await _refuse(route, job, request.resource_type)
        return
    if urlsplit(url).scheme not in ("http", "https") or _origin(url) not in job.allowed:
        await _refuse(route, job, "other origin")
        return
    if request.method != "GET":
        await _refuse(route, job, request.method)
        return
    document = job.document
    if not job.served_document and request.is_navigation_request() and _without_fragment(url) == job.address:
        job.served_document = True
        charset = f"; charset={document.encoding}" if document.encoding else ""
        await _fulfill(route, 200, document.body, f"text/html{charset}")
        return
    requests = job.requests
    if requests.made >= MAX_REQUESTS:
        await _refuse(route, job, f"more than {MAX_REQUESTS} requests")
        return
    requests.made += 1
    requests.in_flight += 1
    requests.touch()
    try:
        fetched = await job.fetcher.get(url)
        if fetched.outcome != "ok":
            requests.refused.append(f"{fetched.outcome}: {url[:120]}")
            await _fulfill(route, fetched.status_code or 502, b"", "text/plain")
            return
        requests.bytes += len(fetched.body)
        if requests.bytes > requests.budget:
            await _refuse(route, job, f"over {requests.budget} bytes in all")
            return
        await _fulfill(route, 200, fetched.body, _content_type(fetched, request.resource_type))
    finally:
        requests.in_flight -= 1
        requests.touch()


async def _fulfill(route: Any, status: int, body: bytes, content_type: str) -> None:
    from playwright.async_api import Error as PlaywrightError

    with contextlib.suppress(PlaywrightError):  # the page went away meanwhile
        await route.fulfill(status=status, body=body, headers={"Content-Type": content_type})


def _content_type(fetched: Page, resource_type: str) -> str:
    charset = f"; charset={fetched.encoding}" if fetched.encoding else ""
    if fetched.content_type:
        return fetched.content_type + charset
    return ("text/javascript" if resource_type == "script" else "text/html") + charset
