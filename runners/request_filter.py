"""Request filter: every request of a tab checked before Chromium sends it.

A :data:`RequestFilter` says, for a URL, None (let it through) or the error that says
why it is blocked. :class:`RequestGate` applies it to the requests Chromium's ``Fetch``
domain pauses (each redirect hop and subresource included), records what it refused in
the tab's :class:`runners.tab_record.TabRecord`, and answers Chromium through ``send``,
which :class:`runners.browser.Tab` provides; nothing here touches Playwright.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from runners.tab_record import TabRecord

log = logging.getLogger(__name__)

# url -> None to let the request through, or the error that says why it is blocked.
RequestFilter = Callable[[str], Awaitable[Exception | None]]
# (Fetch method, its params, the request's url) -> None; a page or request that went away
# meanwhile is not an error (the sender logs it).
FetchSend = Callable[[str, dict[str, Any], str], Awaitable[None]]


class RequestGate:
    """Answers ``Fetch.requestPaused`` events: continue the request, or fail it as
    ``BlockedByClient`` and record the filter's reason.

    Chromium's Fetch domain rather than page.route: Playwright's route sees only the
    first request of a navigation's redirect chain, the Fetch domain pauses every hop,
    and the browser still does its own networking (timings stay real)."""

    def __init__(self, request_filter: RequestFilter, record: TabRecord, send: FetchSend) -> None:
        self._filter = request_filter
        self._record = record
        self._send = send
        self._pending: set[asyncio.Task[None]] = set()

    def paused(self, params: dict[str, Any]) -> None:
        """The ``Fetch.requestPaused`` handler: decides in a task, the event loop keeps on."""
        task = asyncio.get_running_loop().create_task(self._decide(params))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _decide(self, params: dict[str, Any]) -> None:
        request_id = params["requestId"]
        url = str(params.get("request", {}).get("url", ""))
        try:
            reason = await self._filter(url)
        except Exception as exc:  # a filter that breaks must not let the request by
            reason = exc
        if reason is None:
            await self._send("Fetch.continueRequest", {"requestId": request_id}, url)
            return
        self._record.blocked(url, reason)
        log.info("blocked request %s: %s", url, reason)
        failed = {"requestId": request_id, "errorReason": "BlockedByClient"}
        await self._send("Fetch.failRequest", failed, url)
