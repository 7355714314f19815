"""A stream's backlog, read from the node's ``events`` table a page at a time.

A client far behind (a long history, or a reconnect after many events) would otherwise
have its whole backlog read into memory at once; here at most one page of
``RUNLEDGER_SSE_BACKLOG_PAGE`` events is held by each stream. No page skips or repeats
an event, also when events are committed while the pages are read: the stream
subscribed to live events before the first read and drops what a page already sent.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any

from starlette.concurrency import run_in_threadpool

from api.broadcaster import STREAMED, Applied
from api.context import Context
from projections.rows import EventRow, event_of_row
from streams.domain.history import states_after


def history_page(
    ctx: Context, noun: str, aggregate_id: str, after: int, size: int, state: Any
) -> list[Applied]:
    """At most ``size`` events of one aggregate after seq ``after``, with the state
    after each, folded onto ``state`` (the state at ``after``; None at 0) (blocking:
    call it from a worker thread). One read of only the rows returned, however long the
    history before them."""
    found = ctx.deps.reads.events_after(ctx.principal.account, aggregate_id, noun, after, size)
    rows: list[EventRow] = list(found)
    folded = states_after((event_of_row(r) for r in rows), state)
    return [Applied(row, after) for row, (_, after) in zip(rows, folded, strict=True)]


def history_tail(ctx: Context, base: Applied, to_seq: int) -> list[Applied] | None:
    """The events of ``base``'s aggregate after it up to seq ``to_seq``, with the state
    after each folded onto ``base``'s; None when the rows read are not the seqs that
    follow (the caller then folds the whole history) (blocking)."""
    page = history_page(
        ctx, base.row.aggregate_type, base.row.aggregate_id, base.row.seq,
        to_seq - base.row.seq, base.state,
    )  # fmt: skip
    if [a.row.seq for a in page] != list(range(base.row.seq + 1, to_seq + 1)):
        return None
    return page


async def history_pages(
    ctx: Context,
    noun: str,
    aggregate_id: str,
    first: list[Applied],
    keep: Callable[[Applied], None] | None = None,
) -> AsyncGenerator[Applied, None]:
    """The history from ``first`` (its first page) on, one page in memory at a time;
    ``keep`` is given each page's last event with its state (a point a later resume
    may fold from, see api/stream_states.py).

    An aggregate's events only ever join after its last one, so each page, read after
    the previous page's last seq, neither skips nor repeats one; the page that comes
    back short is the end of what the node had, and what it applies later comes from
    the subscription.
    """
    size = ctx.deps.sse_backlog_page
    page = first
    while True:
        if page and keep is not None:
            keep(page[-1])
        for a in page:
            yield a
        if len(page) < size:
            return
        last = page[-1]
        page = await run_in_threadpool(
            history_page, ctx, noun, aggregate_id, last.row.seq, size, last.state
        )


async def account_pages(
    ctx: Context,
    cursor: dict[int, int],
    match: Callable[[Applied], bool],
    states_of: Callable[[Context, list[EventRow]], list[Applied]],
) -> AsyncGenerator[Applied, None]:
    """The account's events past ``cursor`` that ``match`` takes, with their states,
    read a page at a time: each page starts past every row the previous ones read (a
    cursor of its own, moved over the rows the filter drops too). An event committed
    meanwhile on a partition already passed is read by the next page, in order.
    ``states_of`` gives the rows their states (blocking: run in a worker thread).

    A cursor at the end of every partition the node has applied (the common reconnect
    after the window) reads nothing: what commits later comes from the subscription,
    which the stream holds already."""
    size = ctx.deps.sse_backlog_page
    account = ctx.principal.account
    read = dict(cursor)
    applied = ctx.deps.positions.applied()  # the next offset to apply, per partition
    if applied and all(read.get(p, -1) >= o - 1 for p, o in applied.items()):
        return
    while True:
        rows = await run_in_threadpool(
            ctx.deps.reads.events_since, account, dict(read), STREAMED, size
        )
        for r in rows:
            read[r.partition] = max(read.get(r.partition, -1), r.offset)
        chosen = [r for r in rows if match(Applied(r, None))]
        for a in await run_in_threadpool(states_of, ctx, chosen):
            yield a
        if len(rows) < size:
            return


async def items_of(items: Sequence[Applied]) -> AsyncGenerator[Applied, None]:
    for a in items:
        yield a
