"""Live updates over Server-Sent Events: one Process, FlowRun or CaseRun, or everything
the token's account may see (``GET /stream?type=&status=``).

Each stream takes a slot among its account's open streams (api/stream_limits.py: 429
over the cap), subscribes to the node's broadcaster, then reads its backlog from the
``events`` table in pages of ``RUNLEDGER_SSE_BACKLOG_PAGE`` events (once the node has
applied the client's Last-Event-ID, which may come from a node further on), then
follows live events, dropping what the backlog already sent (by seq for one aggregate,
by per-partition offset account-wide): no gap, no duplicate, also for events committed
while the backlog is paged (a later page has them, or the subscription does). A fresh
account-wide stream sends its starting cursor first, as an id alone. A stream of an
object the node has not projected yet waits once for the node to catch up with the
ledger before answering 404, so a client may open the stream of a run it created a
moment ago. A stream ends after the node's window (``RUNLEDGER_SSE_WINDOW_S``), after
``done`` (the run reached a terminal status or was deleted), when the client goes away,
or when a write to it stalls past ``RUNLEDGER_SSE_SEND_TIMEOUT_S``.

A live event's body (state and event as JSON) is rendered once, by the first stream
that sends it, and shared by every other (:attr:`Applied.body`); each stream adds only
its ``id:`` line.

A resume is cheap however long the history: the node keeps the states its streams
folded or sent last (api/stream_states.py), so a reconnect that missed nothing reads at
most the current state, and one a few events behind reads only the rows after a kept
state and folds those.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api import sse
from api.broadcaster import Applied, Subscription
from api.context import Context, context
from api.errors import ApiError
from api.stream_backlog import (
    account_pages,
    history_page,
    history_pages,
    items_of,
)
from api.stream_filters import filters, matcher
from api.stream_follow import follow
from api.stream_kinds import (
    KINDS,
    Kind,
    body_of,
    caught_up,
    done_message,
    position_of,
    states_of,
)
from api.stream_limits import LimitedStream, StreamSlots, too_many_streams
from api.stream_resume import MISS_WAIT_S, check_partitions, from_kept, last_event_id, reach
from api.stream_states import StreamStates, of_app
from streams.domain import process


async def _limited(
    request: Request, ctx: Context, open_body: Callable[[], Awaitable[AsyncIterator[bytes]]]
) -> Response:
    """The stream ``open_body`` makes, holding one of the account's slots until it ends;
    429 ``too_many_streams`` when the account holds them all."""
    slots: StreamSlots = request.app.state.stream_slots
    slot = slots.take(ctx.principal.account)
    if slot is None:
        return too_many_streams(slots.per_account, ctx.deps.sse_window_s)
    try:
        body = await open_body()
    except BaseException:
        slot.release()
        raise
    return LimitedStream(body, slot, ctx.deps.sse_send_timeout_s)


def _unsubscribe(ctx: Context, sub: Subscription | None) -> None:
    if sub is not None and ctx.deps.broadcaster is not None:
        ctx.deps.broadcaster.unsubscribe(sub)


async def _current(ctx: Context, kind: Kind, aggregate_id: str) -> Any:
    """The aggregate's current state (None: absent or deleted). A Process's comes from
    the node's cache of committed states when it has it (no query), else it is read and
    remembered there, so the next reconnect of its stream reads nothing."""
    account = ctx.principal.account
    cache = ctx.deps.process_cache
    if kind.noun != process.AGGREGATE or cache is None:
        return await run_in_threadpool(kind.current, ctx.deps.reads, account, aggregate_id)
    found = cache.get(account, aggregate_id)
    if found is not None:
        return found
    version = cache.version
    found = await run_in_threadpool(kind.current, ctx.deps.reads, account, aggregate_id)
    if found is not None:
        cache.put(found, version)
    return found


async def _object_body(
    ctx: Context, kind: Kind, aggregate_id: str, last: str | None, states: StreamStates
) -> AsyncIterator[bytes]:
    account = ctx.principal.account
    after = sse.parse_position(last) if last else None
    if last and after is not None:
        check_partitions(ctx, [after[0]], last)
    broadcaster = ctx.deps.broadcaster
    sub = None
    if broadcaster is not None:
        sub = broadcaster.subscribe(
            lambda a: a.row.account == account, aggregate=(kind.noun, aggregate_id)
        )
    size = ctx.deps.sse_backlog_page
    # ``paged``: more backlog pages may follow ``page``; False: ``page`` is all of the
    # backlog (the client missed nothing).
    paged = True
    try:
        kept = resumed = None
        if last and after is not None:
            await reach(ctx, [after], last)
            kept = await from_kept(
                ctx, states, kind.noun, aggregate_id, after,
                lambda: _current(ctx, kind, aggregate_id),
            )  # fmt: skip
            if kept is None:
                resumed = await run_in_threadpool(caught_up, ctx, kind, aggregate_id, after)
        if kept is not None:
            page, paged = kept
        elif resumed is not None:
            page, paged = [resumed], False
        else:
            page = await run_in_threadpool(
                history_page, ctx, kind.noun, aggregate_id, 0, size, None
            )
            if not page:
                # Created a moment ago, maybe not projected yet: catch up once, look again.
                await ctx.deps.positions.wait_for_end(min(MISS_WAIT_S, ctx.deps.wait_timeout_s))
                page = await run_in_threadpool(
                    history_page, ctx, kind.noun, aggregate_id, 0, size, None
                )
        if not page:
            raise ApiError(404, "not_found", f"{kind.noun} {aggregate_id} not found")
        home = page[0].row.partition
        if last and after is not None and after[0] != home:
            # Not an id of this stream: resuming from it would skip all or nothing.
            raise ApiError(
                400,
                "invalid_last_event_id",
                f"Last-Event-ID {last!r} is not a position of {kind.noun} {aggregate_id}, "
                f"whose events are on partition {home}",
            )
    except BaseException:
        _unsubscribe(ctx, sub)
        raise
    backlog = (
        items_of(page)
        if not paged
        else history_pages(ctx, kind.noun, aggregate_id, page, states.keep)
    )
    # One aggregate lives on one partition: its offsets order its events. The client
    # has seen every event at or before ``after``; ``seen`` is the newest of them while
    # it is the last event read, which ends the stream at once if it was the end.
    last_seq = 0
    seen: Applied | None = None

    # The newest event handled, kept when the stream ends: the client's reconnect
    # resumes from it (api/stream_states.py). Not ``resumed``: its state is the read
    # model's, and only states folded from the events (the backlog's, the projector's)
    # are kept to fold from.
    newest: Applied | None = None

    def step(a: Applied) -> tuple[list[bytes], bool]:
        nonlocal last_seq, seen, newest
        if a.row.seq <= last_seq:
            return [], False
        last_seq = a.row.seq
        newest = a
        if after is not None and (a.row.partition, a.row.offset) <= after:
            seen = a
            return [], False
        seen = None
        texts = [sse.with_id(position_of(a), body_of(a))]
        if kind.finished(a.state):
            texts.append(done_message(a))
            return texts, True
        return texts, False

    def settle() -> tuple[list[bytes], bool]:
        if seen is not None and kind.finished(seen.state):
            return [done_message(seen)], True
        return [], False

    def closing() -> None:
        if newest is not None and newest is not resumed:
            states.keep(newest)

    return follow(ctx.deps, sub, [], backlog, step, settle, closing)


def object_stream(kind: Kind) -> Callable[[Request], Any]:
    async def stream(request: Request) -> Response:
        ctx = context(request, query_token=True)
        aggregate_id = request.path_params[f"{kind.noun}_id"]
        last = last_event_id(request)
        states = of_app(request.app.state)
        return await _limited(
            request, ctx, lambda: _object_body(ctx, kind, aggregate_id, last, states)
        )

    return stream


async def _account_body(ctx: Context, request: Request) -> AsyncIterator[bytes]:
    account = ctx.principal.account
    types, statuses = filters(request)
    match = matcher(account, types, statuses)
    last = last_event_id(request)
    given = sse.parse_cursor(last) if last else None
    if last and given is not None:
        check_partitions(ctx, given, last)
    broadcaster = ctx.deps.broadcaster
    sub = broadcaster.subscribe(match) if broadcaster is not None else None
    try:
        if given is None:
            # On the loop, right after subscribing: nothing can commit in between, so
            # every live event is past this cursor and nothing is missed.
            cursor = {p: o - 1 for p, o in ctx.deps.positions.applied().items()}
            backlog = items_of([])
        else:
            await reach(ctx, sorted(given.items()), last or "")
            cursor = dict(given)
            states = of_app(request.app.state)
            backlog = account_pages(
                ctx, dict(given), match, lambda c, rows: states_of(c, rows, states)
            )
    except BaseException:
        _unsubscribe(ctx, sub)
        raise

    def step(a: Applied) -> tuple[list[bytes], bool]:
        row = a.row
        if row.offset <= cursor.get(row.partition, -1):
            return [], False
        cursor[row.partition] = row.offset
        return [sse.with_id(sse.cursor_text(cursor), body_of(a))], False

    # A fresh stream's cursor comes first, as an id alone (EventSource keeps it and
    # dispatches nothing): a window with no event would otherwise leave the client no
    # id, and its reconnect would start "now", missing what happened in between.
    first = [sse.cursor_only(cursor)] if given is None and cursor else []
    return follow(ctx.deps, sub, first, backlog, step)


async def account_stream(request: Request) -> Response:
    ctx = context(request, query_token=True)
    return await _limited(request, ctx, lambda: _account_body(ctx, request))


routes = [
    Route("/stream", account_stream, methods=["GET"], name="stream"),
    *[
        Route(
            f"/{noun}/{{{noun}_id}}/stream",
            object_stream(kind),
            methods=["GET"],
            name=f"{noun}_stream",
        )
        for noun, kind in KINDS.items()
    ],
]
