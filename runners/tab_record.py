"""Tab record: what one page did while a runner had it open.

Console messages and uncaught errors, the requests it made and the bytes they brought
(from Chromium's ``Network`` events), the requests the filter blocked and why, and its
largest-contentful-paint candidates (from ``PerformanceTimeline``).
:class:`runners.browser.Tab` feeds it the CDP events' parameters as they arrive; it holds
plain values only, so the accounting needs no browser to be tested or read.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any


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


class TabRecord:
    """The running account of one tab. ``main_frame`` is the id of the tab's top frame
    (only its paints count); ``refusals`` are the filter's reasons, in order."""

    def __init__(self) -> None:
        self.main_frame = ""
        self.refusals: list[Exception] = []
        self._console: list[ConsoleEntry] = []
        self._requests = 0
        self._bytes = 0
        self._blocked: list[str] = []
        self._paints: list[tuple[str, float]] = []  # (frame id, LCP epoch seconds)
        self._painted = asyncio.Event()

    def console_message(self, level: str, text: str) -> None:
        self._console.append(ConsoleEntry(level, text))

    def request_sent(self, params: dict[str, Any]) -> None:
        """``Network.requestWillBeSent``: a redirect hop is the same request again."""
        if params.get("redirectResponse") is None:
            self._requests += 1

    def loading_finished(self, params: dict[str, Any]) -> None:
        """``Network.loadingFinished``: the response's length on the wire."""
        self._bytes += int(params.get("encodedDataLength", 0))

    def timeline_event(self, params: dict[str, Any]) -> None:
        """``PerformanceTimeline.timelineEventAdded``: a largest-contentful-paint entry."""
        event = params.get("event") or {}
        details = event.get("lcpDetails") or {}
        # As the page's PerformanceEntry.startTime: renderTime, else loadTime (an
        # image without Timing-Allow-Origin has no render time).
        at = details.get("renderTime") or details.get("loadTime")
        if isinstance(at, int | float) and at > 0:
            self._paints.append((str(event.get("frameId", "")), float(at)))
            self._painted.set()

    def blocked(self, url: str, reason: Exception) -> None:
        """The filter refused ``url`` for ``reason``."""
        self._blocked.append(url)
        self.refusals.append(reason)

    @property
    def console(self) -> tuple[ConsoleEntry, ...]:
        return tuple(self._console)

    @property
    def network(self) -> NetworkTotals:
        return NetworkTotals(self._requests, self._bytes, tuple(self._blocked))

    async def largest_contentful_paint(self, wait: float) -> float | None:
        """Epoch seconds of the main frame's latest largest-contentful-paint candidate,
        waiting up to ``wait`` seconds for a first one; None when Chromium reported none
        (a page that painted no content)."""
        if not self._painted.is_set() and wait > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._painted.wait()
        times = [at for frame, at in self._paints if frame == self.main_frame]
        return times[-1] if times else None
