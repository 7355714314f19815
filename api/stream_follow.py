"""The life of one SSE stream: its first messages, its backlog, then live events until
``done``, the window, a dropped subscription or the client going away."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence

from api import sse
from api.broadcaster import Applied, Subscription
from api.deps import ApiDeps

# What a stream does with one event: the texts to send, and whether it ends there.
Step = Callable[[Applied], tuple[list[bytes], bool]]
# What it sends once the backlog is through, and whether it ends there.
Settle = Callable[[], tuple[list[bytes], bool]]


def _no_settle() -> tuple[list[bytes], bool]:
    return [], False


async def follow(
    deps: ApiDeps,
    sub: Subscription | None,
    first: Sequence[bytes],
    backlog: AsyncGenerator[Applied, None],
    step: Step,
    settle: Settle = _no_settle,
    closing: Callable[[], None] | None = None,
) -> AsyncIterator[bytes]:
    """``first``, then the backlog, ``settle``'s closing words on it, then live events
    until done, the window or the client's disconnect (Starlette cancels the iteration;
    ``finally`` unsubscribes, then calls ``closing``, however the stream ended). A
    backlog longer than the window stops at the window, after at least one message: the
    client resumes from its last id."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deps.sse_window_s
    try:
        for text in first:
            yield text
        async for a in backlog:
            texts, end = step(a)
            for text in texts:
                yield text
            if end or (texts and loop.time() >= deadline):
                return
        texts, end = settle()
        for text in texts:
            yield text
        if sub is None or end:
            return
        while True:
            left = deadline - loop.time()
            if left <= 0:
                return
            items = await sub.take(min(deps.sse_heartbeat_s, left))
            if sub.dropped:
                yield sse.DROPPED
                return
            if not items:
                if loop.time() < deadline:
                    yield sse.HEARTBEAT
                continue
            for a in items:
                texts, end = step(a)
                for text in texts:
                    yield text
                if end:
                    return
    finally:
        await backlog.aclose()
        if sub is not None and deps.broadcaster is not None:
            deps.broadcaster.unsubscribe(sub)
        if closing is not None:
            closing()
