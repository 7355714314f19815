"""Chromium through Playwright: the only module of the project that imports playwright.

``Browser`` launches Debian's Chromium once per runner and hands out ``Tab`` objects, each
in a fresh browser context (no cookies shared between jobs), at most ``max_pages`` at a
time. ``Tab`` exposes the few page operations the runners need, records console messages
and network totals, and turns Playwright errors into ``runners.errors`` exceptions.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from playwright.async_api import Browser as PlaywrightBrowser
from playwright.async_api import CDPSession, Page, Playwright, async_playwright
from playwright.async_api import ConsoleMessage as PlaywrightConsoleMessage
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from runners.errors import BrowserUnavailable, PageFailed, PageTimeout

log = logging.getLogger(__name__)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-gpu",
    "--no-first-run",
)

# url -> None to let the request through, or the error that says why it is blocked.
RequestFilter = Callable[[str], Awaitable[Exception | None]]


@dataclass(frozen=True)
class BrowserConfig:
    """How to launch Chromium. ``extra_args`` are appended to ``CHROMIUM_ARGS``."""

    executable_path: str = CHROMIUM
    max_pages: int = 4
    viewport_width: int = 1280
    viewport_height: int = 800
    extra_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConsoleEntry:
    """One console message or uncaught page error; ``level`` is Chromium's type
    (``log``, ``info``, ``warning``, ``error``, ``debug``, ...)."""

    level: str
    text: str


@dataclass(frozen=True)
class NetworkTotals:
    """Requests the page made (blocked ones excluded) and bytes received over the wire."""

    requests: int
    bytes: int
    blocked: tuple[str, ...]


def _wrap(exc: Exception, what: str) -> PageFailed:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, PlaywrightTimeoutError | asyncio.TimeoutError):
        return PageTimeout(f"{what}: {message}")
    return PageFailed(f"{what}: {message}")


class Tab:
    """One page in its own browser context. Methods take seconds for timeouts and raise
    ``PageTimeout`` or ``PageFailed``; selectors are Playwright selectors (CSS, or
    ``xpath=...``)."""

    def __init__(self, page: Page) -> None:
        self._page = page
        self._session: CDPSession | None = None
        self._main_frame = ""
        self._console: list[ConsoleEntry] = []
        self._requests = 0
        self._bytes = 0
        self._blocked: list[str] = []
        self._refusals: list[Exception] = []
        self._paints: list[tuple[str, float]] = []  # (frame id, LCP epoch seconds)
        self._painted = asyncio.Event()
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self._console.append(ConsoleEntry("error", str(error))))

    def _on_console(self, message: PlaywrightConsoleMessage) -> None:
        self._console.append(ConsoleEntry(message.type, message.text))

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

        def sent(params: dict[str, Any]) -> None:
            if params.get("redirectResponse") is None:
                self._requests += 1

        def finished(params: dict[str, Any]) -> None:
            self._bytes += int(params.get("encodedDataLength", 0))

        def timeline(params: dict[str, Any]) -> None:
            event = params.get("event") or {}
            details = event.get("lcpDetails") or {}
            # As the page's PerformanceEntry.startTime: renderTime, else loadTime (an
            # image without Timing-Allow-Origin has no render time).
            at = details.get("renderTime") or details.get("loadTime")
            if isinstance(at, int | float) and at > 0:
                self._paints.append((str(event.get("frameId", "")), float(at)))
                self._painted.set()

        session.on("Network.requestWillBeSent", sent)
        session.on("Network.loadingFinished", finished)
        session.on("PerformanceTimeline.timelineEventAdded", timeline)
        if request_filter is not None:
            self._filter_with(session, request_filter)
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
        self._main_frame = str(tree.get("frameTree", {}).get("frame", {}).get("id", ""))

    @staticmethod
    async def _timeline_enable(session: CDPSession) -> None:
        try:
            await session.send(
                "PerformanceTimeline.enable", {"eventTypes": ["largest-contentful-paint"]}
            )
        except PlaywrightError as exc:  # an older Chromium: no LCP, the rest works
            log.warning("no PerformanceTimeline in this Chromium: %s", exc)

    def _filter_with(self, session: CDPSession, request_filter: RequestFilter) -> None:
        # Chromium's Fetch domain rather than page.route: Playwright's route sees only
        # the first request of a navigation's redirect chain, the Fetch domain pauses
        # every hop, and the browser still does its own networking (timings stay real).
        pending: set[asyncio.Task[None]] = set()

        async def decide(params: dict[str, Any]) -> None:
            request_id = params["requestId"]
            url = str(params.get("request", {}).get("url", ""))
            try:
                reason = await request_filter(url)
            except Exception as exc:  # a filter that breaks must not let the request by
                reason = exc
            try:
                if reason is None:
                    await session.send("Fetch.continueRequest", {"requestId": request_id})
                    return
                self._blocked.append(url)
                self._refusals.append(reason)
                log.info("blocked request %s: %s", url, reason)
                await session.send(
                    "Fetch.failRequest", {"requestId": request_id, "errorReason": "BlockedByClient"}
                )
            except PlaywrightError as exc:  # the page or request went away meanwhile
                log.debug("request %s no longer paused: %s", url, exc)

        def paused(params: dict[str, Any]) -> None:
            task = asyncio.get_running_loop().create_task(decide(params))
            pending.add(task)
            task.add_done_callback(pending.discard)

        session.on("Fetch.requestPaused", paused)

    @property
    def console(self) -> tuple[ConsoleEntry, ...]:
        return tuple(self._console)

    @property
    def network(self) -> NetworkTotals:
        return NetworkTotals(self._requests, self._bytes, tuple(self._blocked))

    @property
    def url(self) -> str:
        return self._page.url

    async def goto(self, url: str, timeout: float) -> int | None:
        """Load ``url`` until its load event; returns the final HTTP status (None when no
        response, e.g. same-document navigation). When the request filter blocked the
        document or one of its redirects, the filter's error is raised."""
        try:
            response = await self._page.goto(url, timeout=timeout * 1000, wait_until="load")
        except (TimeoutError, PlaywrightError) as exc:
            if self._refusals and "ERR_BLOCKED_BY_CLIENT" in str(exc):
                # The document itself (or a redirect hop) was refused: say which and why.
                raise self._refusals[-1] from exc
            raise _wrap(exc, f"navigating to {url}") from exc
        return None if response is None else response.status

    async def evaluate(self, expression: str) -> Any:
        """The JSON-able value of a script expression or function evaluated in the page."""
        try:
            return await self._page.evaluate(expression)
        except PlaywrightError as exc:
            raise _wrap(exc, "evaluating a script") from exc

    async def content(self) -> str:
        try:
            return await self._page.content()
        except PlaywrightError as exc:
            raise _wrap(exc, "reading the HTML") from exc

    async def screenshot(self, full_page: bool = True, timeout: float = 30.0) -> bytes:
        """A PNG of the page (the whole scrollable page when ``full_page``)."""
        try:
            return await self._page.screenshot(
                full_page=full_page, type="png", timeout=timeout * 1000, animations="disabled"
            )
        except PlaywrightError as exc:
            raise _wrap(exc, "taking a screenshot") from exc

    async def capture(self, width: int, height: int, timeout: float = 30.0) -> bytes:
        """A PNG of the page's top-left ``width`` x ``height`` CSS pixels (beyond the
        viewport when larger), in one CDP call: no page preparation round trips as in
        :meth:`screenshot` (the caller stops animations itself), and zlib tuned for
        speed (``optimizeForSpeed``: larger files, the same pixels). Falls back to
        :meth:`screenshot` when Chromium has no frame to capture yet."""
        session = self._session
        if session is None:
            return await self.screenshot(full_page=True, timeout=timeout)
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
            log.info("fast screenshot failed (%s); taking it the long way", exc)
            return await self.screenshot(full_page=True, timeout=timeout)
        return base64.b64decode(answer["data"])

    async def largest_contentful_paint(self, wait: float) -> float | None:
        """Epoch seconds of the main frame's latest largest-contentful-paint candidate,
        waiting up to ``wait`` seconds for a first one; None when Chromium reported none
        (a page that painted no content)."""
        if not self._painted.is_set() and wait > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._painted.wait()
        times = [at for frame, at in self._paints if frame == self._main_frame]
        return times[-1] if times else None

    async def click(self, selector: str, timeout: float) -> None:
        try:
            await self._page.locator(selector).first.click(timeout=timeout * 1000)
        except PlaywrightError as exc:
            raise _wrap(exc, f"clicking {selector}") from exc

    async def fill(self, selector: str, value: str, timeout: float) -> None:
        try:
            await self._page.locator(selector).first.fill(value, timeout=timeout * 1000)
        except PlaywrightError as exc:
            raise _wrap(exc, f"filling {selector}") from exc

    async def press(self, selector: str | None, key: str, timeout: float) -> None:
        """Press ``key`` on the element, or on whatever has focus when no selector."""
        try:
            if selector:
                await self._page.locator(selector).first.press(key, timeout=timeout * 1000)
            else:
                await self._page.keyboard.press(key)
        except PlaywrightError as exc:
            raise _wrap(exc, f"pressing {key}") from exc

    async def wait_for(self, selector: str, state: str, timeout: float) -> None:
        """Wait until the element is ``attached``, ``visible``, ``hidden`` or ``detached``."""
        try:
            await self._page.locator(selector).first.wait_for(
                state=state,  # type: ignore[arg-type]
                timeout=timeout * 1000,
            )
        except PlaywrightError as exc:
            raise _wrap(exc, f"waiting for {selector} to be {state}") from exc

    async def text(self, selector: str, timeout: float) -> str:
        """The element's rendered text (``innerText``)."""
        try:
            return await self._page.locator(selector).first.inner_text(timeout=timeout * 1000)
        except PlaywrightError as exc:
            raise _wrap(exc, f"reading the text of {selector}") from exc

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

    async def start(self) -> None:
        """Launch Chromium. Raises ``BrowserUnavailable`` if it cannot be started."""
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
        browser, playwright = self._browser, self._playwright
        self._browser = self._playwright = None
        try:
            if browser is not None:
                await browser.close()
        finally:
            if playwright is not None:
                await playwright.stop()

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
        self, request_filter: RequestFilter | None = None, init_script: str | None = None
    ) -> AsyncIterator[Tab]:
        """A tab in a fresh context, closed on exit. With ``request_filter`` every request
        of the page (subresources and each redirect hop included) is checked first and
        aborted if the filter gives a reason. ``init_script`` (JavaScript source) runs in
        every document of the tab before the document's own scripts."""
        async with self._pages:
            if self._browser is None:
                raise BrowserUnavailable("the browser is not started")
            try:
                context = await self._browser.new_context(
                    viewport={
                        "width": self.config.viewport_width,
                        "height": self.config.viewport_height,
                    },
                    service_workers="block",
                )
            except PlaywrightError as exc:
                raise BrowserUnavailable(f"cannot open a browser context: {exc}") from exc
            try:
                tab = Tab(await context.new_page())
                await tab._attach(request_filter, init_script)
                yield tab
            finally:
                try:
                    await context.close()
                except PlaywrightError as exc:
                    log.warning("closing a browser context failed: %s", exc)
