"""Where a reconnecting stream starts: its ``Last-Event-ID``, checked against the ledger
and waited for when the node is behind the one that issued it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from api.broadcaster import Applied
from api.context import Context
from api.errors import ApiError
from api.stream_backlog import history_page
from api.stream_states import StreamStates

MISS_WAIT_S = 5.0  # at most this long for the node to catch up


def last_event_id(request: Request) -> str | None:
    return request.headers.get("last-event-id") or request.query_params.get("last_event_id")


def check_partitions(ctx: Context, partitions: Iterable[int], text: str) -> None:
    """ApiError 400 when a Last-Event-ID names a partition the ledger does not have.

    The node issues ids only of partitions it has applied, so such an id is made up or
    from another ledger; resuming from it would skip nothing or everything, silently.
    (The node's applied partitions are empty while its projector starts: no check.)
    """
    known = ctx.deps.positions.applied()
    unknown = sorted(set(partitions) - set(known))
    if known and unknown:
        raise ApiError(
            400,
            "invalid_last_event_id",
            f"Last-Event-ID {text!r} names partition {unknown[0]}; the ledger has "
            f"partitions {', '.join(map(str, sorted(known)))}",
        )


async def reach(ctx: Context, positions: Sequence[tuple[int, int]], text: str) -> None:
    """Return once the node has applied every position of a Last-Event-ID.

    A reconnect may land on another node, behind the one that issued the id: read
    before it got there, the backlog would end before the client's last event, and the
    stream would send again (one aggregate, ordered by seq) or skip (account-wide, by
    offset) what it applies next. So the node first catches up with the ledger's end:
    ApiError 504 when it cannot within the wait, 400 when the id is still ahead (past
    the end of the ledger: no node issued it).
    """

    def ahead() -> bool:
        applied = ctx.deps.positions.applied()
        return any(offset >= applied.get(partition, 0) for partition, offset in positions)

    if not ahead():
        return
    timeout = min(MISS_WAIT_S, ctx.deps.wait_timeout_s)
    if not await ctx.deps.positions.wait_for_end(timeout):
        raise ApiError(
            504,
            "wait_timeout",
            f"the node did not catch up with Last-Event-ID {text!r} within {timeout:g} seconds",
        )
    if ahead():
        raise ApiError(
            400, "invalid_last_event_id", f"Last-Event-ID {text!r} is past the end of the ledger"
        )


async def from_kept(
    ctx: Context,
    states: StreamStates,
    noun: str,
    aggregate_id: str,
    after: tuple[int, int],
    current: Callable[[], Awaitable[Any]],
) -> tuple[list[Applied], bool] | None:
    """Where an object stream resumed after ``after`` starts, from a state kept in
    ``states``: its first backlog page and whether more pages may follow it (False:
    the page is the whole backlog); None when no kept state helps.

    With the newest kept state at or before ``after`` at seq ``s``: if the current
    state (``current()``, the node's cache or one read) is at ``s`` too, the client
    missed nothing and ``s`` is the page, with no history read at all; otherwise the
    page is the events after ``s`` folded onto its state, one read of only those rows.
    Rows that are not the seqs after ``s`` (never seen: seqs are gapless from 1) or a
    current state the rows do not reach give None: the caller folds the whole history.
    """
    base = states.at_or_before_position((ctx.principal.account, noun, aggregate_id), after)
    if base is None:
        return None
    seq = base.row.seq
    state = await current()
    if state is not None and state.seq == seq:
        return [base], False
    page = await run_in_threadpool(
        history_page, ctx, noun, aggregate_id, seq, ctx.deps.sse_backlog_page, base.state
    )
    if not page:
        # Nothing after it: a deleted aggregate (reads hide its state) ends at ``s``.
        return ([base], False) if state is None else None
    if page[0].row.seq != seq + 1:
        return None
    return page, True
