"""Chromium through Playwright: the only module of the project that imports playwright.

``Browser`` launches Debian's Chromium once per runner and hands out ``Tab`` objects, each
in a fresh browser context (no cookies shared between jobs), at most ``max_pages`` at a
time. ``Tab`` exposes the few page operations the runners need and turns Playwright
errors into ``runners.errors`` exceptions. What a tab saw (``runners.tab_record``), which
requests it lets by (``runners.request_filter``) and how Chromium is launched
(``runners.browser_config``) are plain code apart from Playwright, re-exported here.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

from playwright.async_api import Browser as PlaywrightBrowser
from playwright.async_api import CDPSession, JSHandle, Page, Playwright, async_playwright
from playwright.async_api import ConsoleMessage as PlaywrightConsoleMessage
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from runners.browser_config import (  # noqa: F401 (re-exported: callers write browser.<name>)
    CHROMIUM,
    CHROMIUM_ARGS,
    BrowserConfig,
)
from runners.egress_proxy import Connect, EgressProxy
from runners.errors import BrowserUnavailable, PageFailed, PageNavigated, PageTimeout
from runners.request_filter import RequestFilter, RequestGate
from runners.tab_record import (  # noqa: F401 (re-exported: callers write browser.<name>)
    ConsoleEntry,
    NetworkTotals,
    TabRecord,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

# How Chromium reports a navigation the request filter or the egress proxy refused.
_REFUSED_ERRORS = ("ERR_BLOCKED_BY_CLIENT", "ERR_TUNNEL_CONNECTION_FAILED", "ERR_EMPTY_RESPONSE")
# How long a page that began another document is given to commit it before its load is
# awaited (see Tab.wait_for_load); only pages that navigate by themselves pay it.
LANDING_PAUSE_S = 0.05
# How Playwright reports a script or screenshot cut short by the page's own navigation.
_NAVIGATED_ERRORS = ("Execution context was destroyed",)
# What Playwright's call log (the lines after a timeout's first) says when an element
# kept it waiting; the last such line is why the action never happened.
_WAIT_REASONS = (
    "intercepts pointer events",
    "detached from the DOM",
    "is not visible",
    "is not enabled",
    "is not stable",
    "outside of the viewport",
)


def _why_waited(text: str) -> str | None:
    """Why an element action timed out, from Playwright's call log; None if unknown."""
    lines = [line.strip().lstrip("-").strip() for line in text.splitlines()[1:]]
    reasons = [line for line in lines if any(reason in line for reason in _WAIT_REASONS)]
    # No reason given (nothing matched, or a page too busy to be queried): none invented.
    return reasons[-1][:300] if reasons else None


def _wrap(exc: Exception, what: str) -> PageFailed:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, PlaywrightTimeoutError | asyncio.TimeoutError):
        why = _why_waited(str(exc))
        if why is not None:
            message = f"{message.rstrip('.')}: {why}"
        return PageTimeout(f"{what}: {message}")
    if any(text in message for text in _NAVIGATED_ERRORS):
        return PageNavigated(f"{what}: the page went to another document meanwhile")
    return PageFailed(f"{what}: {message}")


async def _fetch(session: CDPSession, method: str, params: dict[str, Any], url: str) -> None:
    """Answer Chromium about the paused request ``url`` (see ``RequestGate``)."""
    try:
        await session.send(method, params)
    except PlaywrightError as exc:  # the page or request went away meanwhile
        log.debug("request %s no longer paused: %s", url, exc)


@contextmanager
def _failing(what: str) -> Iterator[None]:
    """Playwright's errors inside raised as ``PageTimeout`` or ``PageFailed`` on ``what``."""
    try:
        yield
    except PlaywrightError as exc:
        raise _wrap(exc, what) from exc


class Tab:
    """One page in its own browser context. Methods take seconds for timeouts and raise
    ``PageTimeout`` or ``PageFailed``; selectors are Playwright selectors (CSS, or
    ``xpath=...``)."""

    def __init__(self, page: Page, record: TabRecord | None = None) -> None:
        self._page = page
        self._session: CDPSession | None = None
        self._record = record or TabRecord()
        self._releases: set[asyncio.Future[None]] = set()
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self._record.console_message("error", str(error)))

    def _on_console(self, message: PlaywrightConsoleMessage) -> None:
        self._record.console_message(message.type, message.text)
        # Playwright keeps a handle to each argument (a megabyte string, a DOM node) as
        # long as the page lives, here and in its driver: a page logging in a loop would
        # fill the runner's memory. The text is all a tab keeps: release them at once.
        handles = message.args
        if handles:
            task = asyncio.ensure_future(self._release(handles))
            self._releases.add(task)
            task.add_done_callback(self._releases.discard)

    @staticmethod
    async def _release(handles: list[JSHandle]) -> None:
        for handle in handles:
            with contextlib.suppress(PlaywrightError):  # the page may be gone already
                await handle.dispose()

    @property
    def navigations(self) -> int:
        """Documents the tab's top frame has started to load, counted as their request
        leaves (redirect hops and same-document navigations excluded)."""
        return self._record.documents

    async def wait_for_navigation(self, since: int) -> None:
        """Return once the top frame has started more than ``since`` documents."""
        await self._record.wait_for_document(since)

    async def _attach(
        self, request_filter: RequestFilter | None, init_script: str | None = None
    ) -> None:
        """One CDP session for the page's own accounting, sent its enables at once (one
        round trip): Chromium's ``Network`` events (one per request, the encoded length
        when it finishes, no round trip per request), ``PerformanceTimeline`` (largest
        contentful paint entries pushed as they happen, instead of waiting in the page
        for an observer), with a filter the ``Fetch`` domain, and ``init_script`` to run
        in every document before its own scripts."""
        session = await self._page.context.new_cdp_session(self._page)
        self._session = session
        record = self._record
        session.on("Network.requestWillBeSent", record.request_sent)
        session.on("Network.responseReceived", record.response_received)
        session.on("Network.loadingFinished", record.loading_finished)
        session.on("Network.loadingFailed", record.loading_failed)
        session.on("PerformanceTimeline.timelineEventAdded", record.timeline_event)
        if request_filter is not None:
            gate = RequestGate(request_filter, record, functools.partial(_fetch, session))
            session.on("Fetch.requestPaused", gate.paused)
        enables = [
            session.send("Network.enable"),
            session.send("Page.getFrameTree"),
            self._timeline_enable(session),
        ]
        if request_filter is not None:
            enables.append(session.send("Fetch.enable", {"patterns": [{"urlPattern": "*"}]}))
        if init_script is not None:
            enables.append(
                session.send("Page.addScriptToEvaluateOnNewDocument", {"source": init_script})
            )
        answers = await asyncio.gather(*enables)
        tree = answers[1] or {}
        record.main_frame = str(tree.get("frameTree", {}).get("frame", {}).get("id", ""))

    @staticmethod
    async def _timeline_enable(session: CDPSession) -> None:
        try:
            await session.send(
                "PerformanceTimeline.enable", {"eventTypes": ["largest-contentful-paint"]}
            )
        except PlaywrightError as exc:  # an older Chromium: no LCP, the rest works
            log.warning("no PerformanceTimeline in this Chromium: %s", exc)

    @property
    def console(self) -> tuple[ConsoleEntry, ...]:
        return self._record.console

    @property
    def console_dropped(self) -> tuple[int, int]:
        """Console messages counted but not kept (all, errors): see ``TabRecord``."""
        return self._record.console_dropped

    @property
    def network(self) -> NetworkTotals:
        return self._record.network

    @property
    def url(self) -> str:
        return self._page.url

    async def goto(self, url: str, timeout: float) -> int | None:
        """Load ``url`` until its load event; returns the final HTTP status (None when no
        response, e.g. same-document navigation). When the request filter blocked the
        document or one of its redirects (or the egress proxy refused its host), that
        refusal is raised."""
        refusals = self._record.refusals
        before = len(refusals)
        try:
            response = await self._until_broken(
                self._page.goto(url, timeout=timeout * 1000, wait_until="load"), url
            )
        except (TimeoutError, PlaywrightError) as exc:
            if len(refusals) > before and any(code in str(exc) for code in _REFUSED_ERRORS):
                # The document itself (or a redirect hop) was refused: say which and why.
                raise refusals[-1] from exc
            if "ERR_ABORTED" in str(exc) and self._record.document_status in (204, 205):
                raise PageFailed(
                    f"navigating to {url}: the server answered HTTP "
                    f"{self._record.document_status} with no content: there is no page"
                ) from exc
            if "Download is starting" in str(exc):
                raise PageFailed(
                    f"navigating to {url}: the server answered with a file download "
                    "(Content-Disposition: attachment), not a page"
                ) from exc
            raise _wrap(exc, f"navigating to {url}") from exc
        return None if response is None else response.status

    async def _until_broken(self, loading: Awaitable[T], url: str) -> T:
        """``loading``, unless the document's body breaks off first: Chromium then never
        fires its load event and ``loading`` would only end at its timeout."""
        load = asyncio.ensure_future(loading)
        broken = asyncio.ensure_future(self._record.document_breaks())
        try:
            await asyncio.wait((load, broken), return_when=asyncio.FIRST_COMPLETED)
        finally:
            broken.cancel()
            if not load.done():
                load.cancel()
            await asyncio.gather(load, broken, return_exceptions=True)
        if load.cancelled() and broken.done() and not broken.cancelled():
            raise PageFailed(
                f"navigating to {url}: the connection broke off while the page was "
                f"loading ({broken.result()})"
            )
        return load.result()

    async def wait_for_load(self, timeout: float) -> None:
        """Wait for the load event of the tab's current document, after the page began
        another one: Playwright answers at once for the document being left until the
        new one commits, so it is given a moment (``LANDING_PAUSE_S``) first."""
        await asyncio.sleep(LANDING_PAUSE_S)
        with _failing("waiting for the page to load"):
            await self._page.wait_for_load_state("load", timeout=timeout * 1000)

    async def evaluate(self, expression: str) -> Any:
        """The JSON-able value of a script expression or function evaluated in the page."""
        with _failing("evaluating a script"):
            return await self._page.evaluate(expression)

    async def content(self) -> str:
        with _failing("reading the HTML"):
            return await self._page.content()

    async def screenshot(
        self,
        full_page: bool = True,
        timeout: float = 30.0,
        size: tuple[int, int] | None = None,
    ) -> bytes:
        """A PNG of the page (the whole scrollable page when ``full_page``; only its
        top-left ``size`` CSS pixels, when given)."""
        clip = None if size is None else {"x": 0, "y": 0, "width": size[0], "height": size[1]}
        with _failing("taking a screenshot"):
            return await self._page.screenshot(
                full_page=full_page,
                type="png",
                timeout=timeout * 1000,
                animations="disabled",
                clip=clip,  # type: ignore[arg-type]
            )

    async def capture(self, width: int, height: int, timeout: float = 30.0) -> bytes:
        """A PNG of the page's top-left ``width`` x ``height`` CSS pixels (beyond the
        viewport when larger), in one CDP call: no page preparation round trips as in
        :meth:`screenshot` (the caller stops animations itself), and zlib tuned for
        speed (``optimizeForSpeed``: larger files, the same pixels). Falls back to
        :meth:`screenshot` when Chromium has no frame to capture yet."""
        session = self._session
        if session is None:
            return await self.screenshot(True, timeout, (width, height))
        viewport = self._page.viewport_size or {"width": width, "height": height}
        fits = width <= viewport["width"] and height <= viewport["height"]
        params = {
            "format": "png",
            "optimizeForSpeed": True,
            "captureBeyondViewport": not fits,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        }
        try:
            async with asyncio.timeout(timeout):
                answer = await session.send("Page.captureScreenshot", params)
        except TimeoutError as exc:
            raise PageTimeout(f"taking a screenshot: no answer within {timeout:g}s") from exc
        except PlaywrightError as exc:
            # The same clip: the whole page may be far larger than the caller's cap.
            log.info("fast screenshot failed (%s); taking it the long way", exc)
            return await self.screenshot(True, timeout, (width, height))
        return base64.b64decode(answer["data"])

    async def largest_contentful_paint(self, wait: float) -> float | None:
        """Epoch seconds of the main frame's latest largest-contentful-paint candidate,
        waiting up to ``wait`` seconds for a first one; None when Chromium reported none
        (a page that painted no content)."""
        return await self._record.largest_contentful_paint(wait)

    async def click(self, selector: str, timeout: float) -> None:
        with _failing(f"clicking {selector}"):
            await self._page.locator(selector).first.click(timeout=timeout * 1000)

    async def fill(self, selector: str, value: str, timeout: float) -> None:
        with _failing(f"filling {selector}"):
            await self._page.locator(selector).first.fill(value, timeout=timeout * 1000)

    async def press(self, selector: str | None, key: str, timeout: float) -> None:
        """Press ``key`` on the element, or on whatever has focus when no selector."""
        with _failing(f"pressing {key}"):
            if selector:
                await self._page.locator(selector).first.press(key, timeout=timeout * 1000)
            else:
                await self._page.keyboard.press(key)

    async def wait_for(self, selector: str, state: str, timeout: float) -> None:
        """Wait until the element is ``attached``, ``visible``, ``hidden`` or ``detached``."""
        with _failing(f"waiting for {selector} to be {state}"):
            await self._page.locator(selector).first.wait_for(
                state=state,  # type: ignore[arg-type]
                timeout=timeout * 1000,
            )

    async def text(self, selector: str, timeout: float) -> str:
        """The element's rendered text (``innerText``)."""
        with _failing(f"reading the text of {selector}"):
            return await self._page.locator(selector).first.inner_text(timeout=timeout * 1000)

    async def pause(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class Browser:
    """One Chromium per runner process. Use as ``async with Browser(config) as browser``;
    ``open_page`` waits while ``max_pages`` tabs are open."""

    def __init__(self, config: BrowserConfig | None = None) -> None:
        self.config = config or BrowserConfig()
        if self.config.max_pages < 1:
            raise ValueError("max_pages must be at least 1")
        self._pages = asyncio.Semaphore(self.config.max_pages)
        self._playwright: Playwright | None = None
        self._browser: PlaywrightBrowser | None = None
        self._started = False  # between start() and close(): Chromium should be up
        self._relaunching = asyncio.Lock()

    async def start(self) -> None:
        """Launch Chromium. Raises ``BrowserUnavailable`` if it cannot be started."""
        self._started = True
        if self._browser is not None:
            return
        playwright = await async_playwright().start()
        try:
            self._browser = await playwright.chromium.launch(
                executable_path=self.config.executable_path,
                args=[*CHROMIUM_ARGS, *self.config.extra_args],
            )
        except PlaywrightError as exc:
            await playwright.stop()
            raise BrowserUnavailable(
                f"cannot launch Chromium at {self.config.executable_path}: {exc}"
            ) from exc
        self._playwright = playwright

    async def close(self) -> None:
        """Close Chromium and the Playwright driver; safe to call twice."""
        self._started = False
        await self._shut()

    async def _shut(self) -> None:
        browser, playwright = self._browser, self._playwright
        self._browser = self._playwright = None
        try:
            if browser is not None:
                await browser.close()
        finally:
            if playwright is not None:
                await playwright.stop()

    async def _running(self) -> PlaywrightBrowser:
        """The started Chromium, launched again if it has gone away (killed by the OOM
        killer, crashed): else every later job of the runner would fail with
        ``BrowserUnavailable``, which the worker answers by running the job again."""
        async with self._relaunching:
            if not self._started:
                raise BrowserUnavailable("the browser is not started")
            if self._browser is None or not self._browser.is_connected():
                log.warning("Chromium has gone away: launching it again")
                with contextlib.suppress(PlaywrightError):
                    await self._shut()
                self._browser = self._playwright = None
                await self.start()
            assert self._browser is not None
            return self._browser

    async def __aenter__(self) -> Browser:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def open_pages(self) -> int:
        """How many tabs are open now (for metrics and tests)."""
        return self.config.max_pages - self._pages._value

    @asynccontextmanager
    async def open_page(
        self,
        request_filter: RequestFilter | None = None,
        init_script: str | None = None,
        *,
        egress: Connect | None = None,
    ) -> AsyncIterator[Tab]:
        """A tab in a fresh context, closed on exit. With ``request_filter`` every request
        of the page (subresources and each redirect hop included) is checked first and
        aborted if the filter gives a reason. With ``egress`` (the guard's ``connect``)
        the context's connections go through an :class:`EgressProxy` that opens them
        with it, to checked addresses only, and Chromium resolves no name itself. ``init_script``
        (JavaScript source) runs in every document of the tab before the document's own
        scripts."""
        async with self._pages, contextlib.AsyncExitStack() as stack:
            running = await self._running()
            record = TabRecord()
            proxy: dict[str, str] | None = None
            if egress is not None:
                gateway = EgressProxy(egress, record.blocked)
                proxy = {"server": await gateway.start()}
                stack.push_async_callback(gateway.close)
            try:
                context = await running.new_context(
                    viewport={
                        "width": self.config.viewport_width,
                        "height": self.config.viewport_height,
                    },
                    service_workers="block",
                    proxy=proxy,  # type: ignore[arg-type]
                )
            except PlaywrightError as exc:
                raise BrowserUnavailable(f"cannot open a browser context: {exc}") from exc
            try:
                tab = Tab(await context.new_page(), record)
                await tab._attach(request_filter, init_script)
                yield tab
            finally:
                try:
                    await context.close()
                except PlaywrightError as exc:
                    log.warning("closing a browser context failed: %s", exc)
