"""Request filter: every request of a tab checked before Chromium sends it.

A :data:`RequestFilter` says, for a URL, None (let it through) or the error that says
why it is blocked. :class:`RequestGate` applies it to the requests Chromium's ``Fetch``
domain pauses (each redirect hop and subresource included), records what it refused in
the tab's :class:`runners.tab_record.TabRecord`, and answers Chromium through ``send``,
which :class:`runners.browser.Tab` provides; nothing here touches Playwright.

Its log names the origin (scheme, host, port) of what it blocked, never the URL: a
query or a path can carry a secret, and a page can make hundreds of requests to one
host. So one INFO line per blocked host and tab (at most :data:`MAX_LOGGED_HOSTS` of
them), the repeats at DEBUG.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from runners.tab_record import TabRecord

log = logging.getLogger(__name__)

# url -> None to let the request through, or the error that says why it is blocked.
RequestFilter = Callable[[str], Awaitable[Exception | None]]
# (Fetch method, its params, the request's url) -> None; a page or request that went away
# meanwhile is not an error (the sender logs it).
FetchSend = Callable[[str, dict[str, Any], str], Awaitable[None]]

# A page that requests a new host each time (random subdomains) still writes few lines.
MAX_LOGGED_HOSTS = 20


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: no user, password, path or query, which may
    hold a secret. ``(unparsable URL)`` when it has no host or a bad port."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return "(unparsable URL)"
    if not host:
        return f"{parts.scheme}: URL" if parts.scheme else "(unparsable URL)"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def reason_without_url(reason: Exception, url: str, origin: str) -> str:
    """``reason``'s message with ``url`` (as it is, or as its repr shows it) replaced
    by ``origin``: the guard's errors quote the target they refuse."""
    text = str(reason)
    for shown in (repr(url)[1:-1], url):
        if shown:
            text = text.replace(shown, origin)
    return text


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
        self._logged: set[str] = set()  # origins this tab's log already named

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
        self._log_blocked(url, reason)
        failed = {"requestId": request_id, "errorReason": "BlockedByClient"}
        await self._send("Fetch.failRequest", failed, url)

    def _log_blocked(self, url: str, reason: Exception) -> None:
        origin = origin_of(url)
        why = reason_without_url(reason, url, origin)
        if origin in self._logged or len(self._logged) > MAX_LOGGED_HOSTS:
            log.debug("blocked a request to %s: %s", origin, why)
            return
        self._logged.add(origin)
        if len(self._logged) > MAX_LOGGED_HOSTS:
            log.info(
                "blocked a request to %s: %s; this tab blocked more than %d hosts, "
                "the next ones are logged at DEBUG only",
                origin,
                why,
                MAX_LOGGED_HOSTS,
            )
            return
        log.info(
            "blocked a request to %s: %s (further blocks of it in this tab at DEBUG)",
            origin,
            why,
        )
