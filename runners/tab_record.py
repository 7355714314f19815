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

# A page can log without end (console.log in a loop, megabyte strings): the record keeps
# the first MAX_CONSOLE_ENTRIES messages, each cut to MAX_CONSOLE_TEXT characters, and
# only counts the others, so a tab's memory stays bounded whatever the page does.
MAX_CONSOLE_ENTRIES = 1000
MAX_CONSOLE_TEXT = 4000


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
        self._dropped = 0
        self._dropped_errors = 0
        self._requests = 0
        self._bytes = 0
        self._blocked: list[str] = []
        self._paints: list[tuple[str, float]] = []  # (frame id, LCP epoch seconds)
        self._painted = asyncio.Event()
        # The top frame's documents (redirect hops and same-document navigations not
        # counted), the HTTP status of the latest, and why one broke off mid-body.
        self.documents = 0
        self.document_status: int | None = None
        self.document_broken: str | None = None
        self._document_ids: set[str] = set()
        self._answered: set[str] = set()
        self._moved = asyncio.Event()
        self._broken = asyncio.Event()

    def console_message(self, level: str, text: str) -> None:
        """Keep the message (cut), or past ``MAX_CONSOLE_ENTRIES`` only count it."""
        if len(self._console) < MAX_CONSOLE_ENTRIES:
            self._console.append(ConsoleEntry(level[:100], text[:MAX_CONSOLE_TEXT]))
            return
        self._dropped += 1
        if level == "error":
            self._dropped_errors += 1

    def request_sent(self, params: dict[str, Any]) -> None:
        """``Network.requestWillBeSent``: a redirect hop is the same request again."""
        if params.get("redirectResponse") is None:
            self._requests += 1
            frame = params.get("frameId")
            if params.get("type") == "Document" and self.main_frame and frame == self.main_frame:
                self.documents += 1
                self._document_ids.add(str(params.get("requestId")))
                self._moved.set()

    def response_received(self, params: dict[str, Any]) -> None:
        """``Network.responseReceived``: the status of a top-frame document."""
        request_id = str(params.get("requestId"))
        if request_id in self._document_ids:
            self._answered.add(request_id)
            status = (params.get("response") or {}).get("status")
            self.document_status = int(status) if isinstance(status, int | float) else None

    def loading_failed(self, params: dict[str, Any]) -> None:
        """``Network.loadingFailed``: a top-frame document whose body broke off after
        its answer (not one refused, cancelled or aborted by a new navigation)."""
        error = str(params.get("errorText") or "")
        if (
            str(params.get("requestId")) in self._answered
            and not params.get("canceled")
            and "ERR_ABORTED" not in error
        ):
            self.document_broken = error or "the connection closed"
            self._broken.set()

    async def wait_for_document(self, since: int) -> None:
        """Return once the top frame has started more than ``since`` documents."""
        while self.documents <= since:
            self._moved.clear()
            await self._moved.wait()

    async def document_breaks(self) -> str:
        """Wait until a top-frame document breaks off mid-body; why (Chromium's error)."""
        await self._broken.wait()
        return self.document_broken or "the connection closed"

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
    def console_dropped(self) -> tuple[int, int]:
        """Messages counted but not kept: (all of them, those of level ``error``)."""
        return self._dropped, self._dropped_errors

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
