"""Chromium through Playwright: one browser per runner, and the tabs it hands out.

``Browser`` launches Debian's Chromium once per runner (and again if it has gone away)
and hands out :class:`runners.browser_tab.Tab` objects, each in a fresh browser context
(no cookies shared between jobs), at most ``max_pages`` at a time; on a guarded page
the context's connections go through an egress proxy (``runners.egress_proxy``).

Playwright is imported by the ``browser*`` modules only: this one, ``browser_tab`` (page
operations), ``browser_capture`` (screenshots) and ``browser_errors`` (its errors said
as ``runners.errors``). What a tab saw (``runners.tab_record``) and how Chromium is
launched (``runners.browser_config``) are plain code, re-exported here with ``Tab`` so
that callers write ``browser.<name>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from playwright.async_api import Browser as PlaywrightBrowser
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Playwright, async_playwright

from runners.browser_config import (  # noqa: F401 (re-exported: callers write browser.<name>)
    CHROMIUM,
    CHROMIUM_ARGS,
    BrowserConfig,
)
from runners.browser_tab import LANDING_PAUSE_S, Tab  # noqa: F401 (re-exported)
from runners.egress_proxy import Connect, EgressProxy
from runners.errors import BrowserUnavailable
from runners.request_filter import RequestFilter
from runners.tab_record import (  # noqa: F401 (re-exported: callers write browser.<name>)
    ConsoleEntry,
    NetworkTotals,
    TabRecord,
)

log = logging.getLogger(__name__)


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
                await tab.attach(request_filter, init_script)
                yield tab
            finally:
                try:
                    await context.close()
                except PlaywrightError as exc:
                    log.warning("closing a browser context failed: %s", exc)
