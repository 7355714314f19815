"""A tab: one Chromium page in its own browser context, as the runners use it.

``Tab`` exposes the few page operations the runners need (navigate, read, click, fill,
screenshot) with timeouts in seconds, and turns Playwright's errors into
``runners.errors`` exceptions (``runners.browser_errors``). It keeps its own CDP session
for what the tab saw (``runners.tab_record``) and, on a guarded page, for the request
filter (``runners.request_filter``). Tabs are handed out by
:meth:`runners.browser.Browser.open_page`, which wires the egress proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

from playwright.async_api import CDPSession, Frame, JSHandle, Page
from playwright.async_api import ConsoleMessage as PlaywrightConsoleMessage
from playwright.async_api import Error as PlaywrightError

from runners import browser_capture
from runners.browser_errors import REFUSED_ERRORS, failing, wrap_error
from runners.errors import PageFailed
from runners.request_filter import RequestFilter, RequestGate
from runners.tab_record import ConsoleEntry, NetworkTotals, TabRecord

log = logging.getLogger(__name__)
T = TypeVar("T")

# How long a page that began another document is given to commit it before its load is
# awaited (see Tab.wait_for_load); only pages that navigate by themselves pay it.
LANDING_PAUSE_S = 0.05
# How long a refused navigation's error page is given to commit (see Tab.goto).
ERROR_PAGE_WAIT_S = 2.0


async def _fetch(session: CDPSession, method: str, params: dict[str, Any], url: str) -> None:
    """Answer Chromium about the paused request ``url`` (see ``RequestGate``)."""
    try:
        await session.send(method, params)
    except PlaywrightError as exc:  # the page or request went away meanwhile
        log.debug("request %s no longer paused: %s", url, exc)


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

    async def attach(
        self, request_filter: RequestFilter | None, init_script: str | None = None
    ) -> None:
        """One CDP session for the page's own accounting, sent its enables at once (one
        round trip): Chromium's ``Network`` events (one per request, the encoded length
        when it finishes, no round trip per request), ``PerformanceTimeline`` (largest
        contentful paint entries pushed as they happen, instead of waiting in the page
        for an observer), with a filter the ``Fetch`` domain, and ``init_script`` to run
        in every document before its own scripts. Called once, by ``Browser.open_page``,
        before the tab is handed out."""
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
        error_page = asyncio.Event()

        def committed(frame: Frame) -> None:
            if frame == self._page.main_frame and frame.url.startswith("chrome-error:"):
                error_page.set()

        self._page.on("framenavigated", committed)
        try:
            response = await self._until_broken(
                self._page.goto(url, timeout=timeout * 1000, wait_until="load"), url
            )
        except (TimeoutError, PlaywrightError) as exc:
            if len(refusals) > before and any(code in str(exc) for code in REFUSED_ERRORS):
                # The document itself (or a redirect hop) was refused: say which and why,
                # once Chromium's error page has committed. Playwright fails the
                # navigation before that, and the late commit would interrupt the tab's
                # next goto (Case generation goes on to the next link after a refused one).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(error_page.wait(), ERROR_PAGE_WAIT_S)
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
            raise wrap_error(exc, f"navigating to {url}") from exc
        finally:
            self._page.remove_listener("framenavigated", committed)
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
        with failing("waiting for the page to load"):
            await self._page.wait_for_load_state("load", timeout=timeout * 1000)

    async def evaluate(self, expression: str) -> Any:
        """The JSON-able value of a script expression or function evaluated in the page."""
        with failing("evaluating a script"):
            return await self._page.evaluate(expression)

    async def content(self) -> str:
        with failing("reading the HTML"):
            return await self._page.content()

    async def screenshot(
        self,
        full_page: bool = True,
        timeout: float = 30.0,
        size: tuple[int, int] | None = None,
    ) -> bytes:
        """A PNG of the page (the whole scrollable page when ``full_page``; only its
        top-left ``size`` CSS pixels, when given): ``runners.browser_capture.screenshot``."""
        return await browser_capture.screenshot(self._page, full_page, timeout, size)

    async def capture(self, width: int, height: int, timeout: float = 30.0) -> bytes:
        """A PNG of the page's top-left ``width`` x ``height`` CSS pixels in one CDP call,
        falling back to :meth:`screenshot`: ``runners.browser_capture.capture``."""
        return await browser_capture.capture(self._page, self._session, width, height, timeout)

    async def largest_contentful_paint(self, wait: float) -> float | None:
        """Epoch seconds of the main frame's latest largest-contentful-paint candidate,
        waiting up to ``wait`` seconds for a first one; None when Chromium reported none
        (a page that painted no content)."""
        return await self._record.largest_contentful_paint(wait)

    async def click(self, selector: str, timeout: float) -> None:
        with failing(f"clicking {selector}"):
            await self._page.locator(selector).first.click(timeout=timeout * 1000)

    async def fill(self, selector: str, value: str, timeout: float) -> None:
        with failing(f"filling {selector}"):
            await self._page.locator(selector).first.fill(value, timeout=timeout * 1000)

    async def press(self, selector: str | None, key: str, timeout: float) -> None:
        """Press ``key`` on the element, or on whatever has focus when no selector."""
        with failing(f"pressing {key}"):
            if selector:
                await self._page.locator(selector).first.press(key, timeout=timeout * 1000)
            else:
                await self._page.keyboard.press(key)

    async def wait_for(self, selector: str, state: str, timeout: float) -> None:
        """Wait until the element is ``attached``, ``visible``, ``hidden`` or ``detached``."""
        with failing(f"waiting for {selector} to be {state}"):
            await self._page.locator(selector).first.wait_for(
                state=state,  # type: ignore[arg-type]
                timeout=timeout * 1000,
            )

    async def text(self, selector: str, timeout: float) -> str:
        """The element's rendered text (``innerText``)."""
        with failing(f"reading the text of {selector}"):
            return await self._page.locator(selector).first.inner_text(timeout=timeout * 1000)

    async def pause(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
