"""What one SSE stream may hold of a node: a slot among its account's open streams, and
a bound on how long one write to its client may take.

Without a cap, one token could open thousands of streams and exhaust the node (each
holds a subscription, a buffer and a socket); without a write bound, a client that
stops reading keeps its stream and its socket past the window, since uvicorn has no
write timeout and a stalled ``send`` never returns. :class:`StreamSlots` counts open
streams per account; :class:`LimitedStream` holds a slot for exactly as long as its
response runs (every way it ends frees it) and gives up on a write that takes longer
than the bound, closing the connection.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.responses import Response, StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from api import sse
from api.errors import STREAMING, error_response

# Where the app puts the server's own ``send`` (see api/app.py), so that a stalled
# write can abort the connection under every wrapper Starlette adds.
SERVER_SEND = "runledger.server_send"

log = logging.getLogger(__name__)


class Slot:
    """One open stream of an account; :meth:`release` frees it (once, whoever calls)."""

    def __init__(self, slots: StreamSlots, account: str) -> None:
        self._slots = slots
        self.account = account
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._slots._free(self.account)


class StreamSlots:
    """The open streams of each account on this node, at most ``per_account`` each."""

    def __init__(self, per_account: int) -> None:
        self.per_account = per_account
        self._open: dict[str, int] = {}
        # For /metrics (api/metrics_app.py), with no account in them.
        self.total_open = 0
        self.opened = 0
        self.refused = 0

    def open(self, account: str) -> int:
        return self._open.get(account, 0)

    def take(self, account: str) -> Slot | None:
        """A slot for a new stream of ``account``; None when it has ``per_account``."""
        count = self._open.get(account, 0)
        if count >= self.per_account:
            self.refused += 1
            return None
        self._open[account] = count + 1
        self.total_open += 1
        self.opened += 1
        return Slot(self, account)

    def _free(self, account: str) -> None:
        self.total_open -= 1
        count = self._open.get(account, 0) - 1
        if count > 0:
            self._open[account] = count
        else:
            self._open.pop(account, None)


def too_many_streams(per_account: int, retry_after_s: float) -> Response:
    """429 ``too_many_streams``: the account holds every slot of this node. A slot
    frees at the latest when a stream's window ends, hence ``Retry-After``."""
    return error_response(
        429,
        "too_many_streams",
        f"this account already has {per_account} open streams on this node, the limit; "
        "close one, or raise RUNLEDGER_SSE_MAX_STREAMS_PER_ACCOUNT",
        headers={"Retry-After": str(max(1, math.ceil(retry_after_s)))},
    )


class SendTimedOut(Exception):
    """A write to a stream's client did not complete within the bound."""


def _abort_connection(scope: Scope) -> None:
    """Drop the connection at once, unsent bytes and all.

    Closing it the usual way waits for the unsent bytes to go out, which a client that
    reads nothing never lets happen: the socket would stay open. uvicorn's ``send`` is
    a method of the request's cycle, which holds the transport; another server simply
    closes the connection as it can when the response ends unfinished.
    """
    server_send = scope.get(SERVER_SEND)
    transport = getattr(getattr(server_send, "__self__", None), "transport", None)
    abort = getattr(transport, "abort", None)
    if callable(abort):
        abort()


class TimedSend:
    """``send`` that raises :class:`SendTimedOut` (after ``on_timeout``, which aborts
    the connection) when a message is not written within ``bound_s`` seconds.

    Not ``asyncio.timeout`` around each write: that arms and cancels a timer per message
    per client (about 4 us of CPU each, 60 times a bare non-blocking send). One timer
    per stream instead wakes every ``bound_s`` seconds, or when the write in progress
    reaches its bound, and cancels only a write that did; a write that does not block
    costs two attribute stores. Call :meth:`close` when the stream ends.
    """

    def __init__(self, send: Send, bound_s: float, on_timeout: Callable[[], None]) -> None:
        self._send = send
        self._bound_s = bound_s
        self._on_timeout = on_timeout
        self._since: float | None = None  # when the write in progress began
        self._writer: asyncio.Task[Any] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.timed_out = False

    async def __call__(self, message: Message) -> None:
        loop = asyncio.get_running_loop()
        if self._timer is None:
            self._timer = loop.call_later(self._bound_s, self._check)
        self._since = loop.time()
        self._writer = asyncio.current_task()
        try:
            await self._send(message)
        except asyncio.CancelledError:
            writer = self._writer
            if not self.timed_out or writer is None or writer.uncancel() > 0:
                raise
            raise SendTimedOut(f"a write to the client took over {self._bound_s:g} s") from None
        finally:
            self._since = None

    def _check(self) -> None:
        loop = asyncio.get_running_loop()
        since = self._since
        now = loop.time()
        if since is not None and now - since >= self._bound_s:
            self._timer = None
            self.timed_out = True
            self._on_timeout()
            if self._writer is not None:
                self._writer.cancel()
            return
        delay = self._bound_s if since is None else since + self._bound_s - now
        self._timer = loop.call_later(delay, self._check)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class LimitedStream(StreamingResponse):
    """An SSE response that holds ``slot`` while it runs and bounds each write.

    However the response ends (window, done, a client gone, an error, a stalled write),
    ``finally`` frees the slot and closes the body, whose own ``finally`` unsubscribes:
    Starlette may stop iterating a body without closing it (a disconnect noticed while
    a write is pending), which would leave that to the garbage collector.
    """

    def __init__(self, body: AsyncIterator[bytes], slot: Slot, send_timeout_s: float) -> None:
        super().__init__(body, media_type=sse.MEDIA_TYPE, headers=sse.HEADERS)
        self.slot = slot
        self.send_timeout_s = send_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[STREAMING] = True  # an error from here on is not answered with a 500
        timed = TimedSend(send, self.send_timeout_s, lambda: _abort_connection(scope))
        try:
            await super().__call__(scope, receive, timed)
        except Exception:
            if not timed.timed_out:
                raise
            log.info("stream: the client did not read for %g s; closed", self.send_timeout_s)
        finally:
            timed.close()
            self.slot.release()
            close: Any = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                await close()
