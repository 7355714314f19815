"""Live updates over Server-Sent Events: one Process, FlowRun or CaseRun, or everything
the token's account may see (``GET /stream?type=&status=``).

Each stream subscribes to the node's broadcaster first, then reads its backlog from the
``events`` table (once the node has applied the client's Last-Event-ID, which may come
from a node further on), then follows live events, dropping what the backlog already
sent (by seq for one aggregate, by per-partition offset account-wide): no gap, no
duplicate. A fresh account-wide stream sends its starting cursor first, as an id alone.
A stream of an object the node has not projected yet waits once for the node to catch
up with the ledger before answering 404, so a client may open the stream of a run it
created a moment ago. A stream ends after the node's window (``RUNLEDGER_SSE_WINDOW_S``),
after ``done`` (the run reached a terminal status or was deleted), or when the client
goes away.

A live event's body (state and event as JSON) is rendered once, by the first stream
that sends it, and shared by every other (:attr:`Applied.body`); each stream adds only
its ``id:`` line.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from api import sse
from api.broadcaster import STREAMED, Applied, Subscription
from api.context import Context, context
from api.deps import ApiDeps, ReadModel
from api.errors import ApiError
from api.representations import process_json
from api.routes.process_reads import event_json
from api.run_representations import caserun_json, flowrun_json
from projections.rows import EventRow, event_of_row
from streams.domain import caserun, flowrun, process
from streams.domain.events import PAYLOAD_TYPES
from streams.domain.history import states_after

ALL = 1 << 62  # no page limit: a history is read whole
MISS_WAIT_S = 5.0  # at most this long for the node to catch up before a 404


@dataclass(frozen=True)
class Kind:
    """A streamable aggregate: how its state renders, which statuses end a stream, and
    how its current state is read (``current(reads, account, id)``)."""

    noun: str
    render: Callable[[Any], dict[str, Any]]
    terminal: frozenset[str]
    current: Callable[[ReadModel, str, str], Any]

    def finished(self, state: Any) -> bool:
        return bool(getattr(state, "deleted", False)) or state.status in self.terminal


KINDS = {
    process.AGGREGATE: Kind(
        process.AGGREGATE, process_json, process.TERMINAL, lambda r, a, i: r.get_process(a, i)
    ),
    flowrun.AGGREGATE: Kind(
        flowrun.AGGREGATE, flowrun_json, flowrun.RUN_TERMINAL, lambda r, a, i: r.get_flowrun(a, i)
    ),
    caserun.AGGREGATE: Kind(
        caserun.AGGREGATE, caserun_json, caserun.RUN_TERMINAL, lambda r, a, i: r.get_caserun(a, i)
    ),
}

Step = Callable[[Applied], tuple[list[bytes], bool]]


def history(ctx: Context, noun: str, aggregate_id: str) -> list[Applied]:
    """Every event of one aggregate of the caller's account with the state after it
    (blocking: call it from a worker thread)."""
    _, found = ctx.deps.reads.list_events(
        ctx.principal.account, aggregate_id, limit=ALL, offset=0, aggregate_type=noun
    )
    rows: list[EventRow] = list(found)
    folded = states_after(event_of_row(r) for r in rows)
    return [Applied(row, state) for row, (_, state) in zip(rows, folded, strict=True)]


def caught_up(
    ctx: Context, kind: Kind, aggregate_id: str, after: tuple[int, int]
) -> Applied | None:
    """The newest event with the current state, when the client has seen that event
    already (its position is at or before ``after``); None otherwise.

    A client that reconnects after the window has usually missed nothing: it then needs
    no backlog, and folding the whole history to find out would cost a read and a fold
    of every event the aggregate ever had. None also when the current state is not the
    one after the newest event (a commit in between, or a deleted aggregate, which reads
    hide): the caller then folds the history as for any other resume.
    """
    account = ctx.principal.account
    newest = ctx.deps.reads.last_event(account, aggregate_id, kind.noun)
    if newest is None or (newest.partition, newest.offset) > after:
        return None
    state = kind.current(ctx.deps.reads, account, aggregate_id)
    if state is None or state.seq != newest.seq:
        return None
    return Applied(newest, state)


def _data(a: Applied) -> dict[str, Any]:
    return {"state": KINDS[a.row.aggregate_type].render(a.state), "event": event_json(a.row)}


def _body(a: Applied) -> bytes:
    """``a``'s ``event:`` and ``data:`` lines, rendered on first use."""
    if a.body is None:
        a.body = sse.body(a.row.type, _data(a))
    return a.body


def _done(a: Applied) -> bytes:
    return sse.message("done", {"status": a.state.status, "position": _position(a)})


def _position(a: Applied) -> str:
    return sse.position_text(a.row.partition, a.row.offset)


async def _follow(
    deps: ApiDeps,
    sub: Subscription | None,
    first: Sequence[bytes],
    backlog: Sequence[Applied],
    step: Step,
) -> AsyncIterator[bytes]:
    """``first``, then the backlog, then live events until done, the window or the
    client's disconnect (Starlette cancels the iteration; ``finally`` unsubscribes)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deps.sse_window_s
    try:
        for text in first:
            yield text
        for a in backlog:
            texts, end = step(a)
            for text in texts:
                yield text
            if end:
                return
        if sub is None or (first and first[-1].startswith(b"event: done")):
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
        if sub is not None and deps.broadcaster is not None:
            deps.broadcaster.unsubscribe(sub)


def _last_event_id(request: Request) -> str | None:
    return request.headers.get("last-event-id") or request.query_params.get("last_event_id")


def _check_partitions(ctx: Context, partitions: Iterable[int], text: str) -> None:
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


async def _reach(ctx: Context, positions: Sequence[tuple[int, int]], text: str) -> None:
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


def _streaming(body: AsyncIterator[bytes]) -> Response:
    return StreamingResponse(body, media_type=sse.MEDIA_TYPE, headers=sse.HEADERS)


def object_stream(kind: Kind) -> Callable[[Request], Any]:
    async def stream(request: Request) -> Response:
        ctx = context(request, query_token=True)
        aggregate_id = request.path_params[f"{kind.noun}_id"]
        account = ctx.principal.account
        last = _last_event_id(request)
        after = sse.parse_position(last) if last else None
        if last and after is not None:
            _check_partitions(ctx, [after[0]], last)
        broadcaster = ctx.deps.broadcaster
        sub = None
        if broadcaster is not None:
            sub = broadcaster.subscribe(
                lambda a: a.row.account == account, aggregate=(kind.noun, aggregate_id)
            )
        try:
            resumed = None
            if last and after is not None:
                await _reach(ctx, [after], last)
                resumed = await run_in_threadpool(caught_up, ctx, kind, aggregate_id, after)
            if resumed is not None:
                backlog = [resumed]
            else:
                backlog = await run_in_threadpool(history, ctx, kind.noun, aggregate_id)
            if not backlog:
                # Created a moment ago, maybe not projected yet: catch up once, look again.
                await ctx.deps.positions.wait_for_end(min(MISS_WAIT_S, ctx.deps.wait_timeout_s))
                backlog = await run_in_threadpool(history, ctx, kind.noun, aggregate_id)
        except BaseException:
            if sub is not None and broadcaster is not None:
                broadcaster.unsubscribe(sub)
            raise
        if not backlog:
            if sub is not None and broadcaster is not None:
                broadcaster.unsubscribe(sub)
            raise ApiError(404, "not_found", f"{kind.noun} {aggregate_id} not found")
        home = backlog[0].row.partition
        if last and after is not None and after[0] != home:
            # Not an id of this stream: resuming from it would skip all or nothing.
            if sub is not None and broadcaster is not None:
                broadcaster.unsubscribe(sub)
            raise ApiError(
                400,
                "invalid_last_event_id",
                f"Last-Event-ID {last!r} is not a position of {kind.noun} {aggregate_id}, "
                f"whose events are on partition {home}",
            )
        # One aggregate lives on one partition: its offsets order its events.
        seen = 0
        if after is not None:
            seen = max(
                (a.row.seq for a in backlog if (a.row.partition, a.row.offset) <= after),
                default=0,
            )
        first: list[bytes] = []
        latest = backlog[-1]
        if seen >= latest.row.seq and kind.finished(latest.state):
            first.append(_done(latest))
        last_seq = seen

        def step(a: Applied) -> tuple[list[bytes], bool]:
            nonlocal last_seq
            if a.row.seq <= last_seq:
                return [], False
            last_seq = a.row.seq
            texts = [sse.with_id(_position(a), _body(a))]
            if kind.finished(a.state):
                texts.append(_done(a))
                return texts, True
            return texts, False

        return _streaming(_follow(ctx.deps, sub, first, backlog, step))

    return stream


STATUSES = frozenset((*process.STATUSES, *flowrun.RUN_STATUSES, *caserun.RUN_STATUSES))


def streamed_types() -> frozenset[str]:
    """What ``?type=`` may name: a streamed aggregate, or one of its event types."""
    events = (t for t in PAYLOAD_TYPES if t.split(".", 1)[0] in STREAMED)
    return frozenset((*STREAMED, *events))


def _filters(request: Request) -> tuple[frozenset[str], frozenset[str]]:
    """``?type=`` and ``?status=`` (each repeated or comma-separated); ApiError 400 for
    a value no streamed event can have, which would otherwise stream nothing, silently."""

    def values(name: str, known: frozenset[str]) -> frozenset[str]:
        found: set[str] = set()
        for raw in request.query_params.getlist(name):
            found.update(v.strip() for v in raw.split(",") if v.strip())
        unknown = sorted(found - known)
        if unknown:
            raise ApiError(
                400,
                "invalid_query",
                f"{name} {unknown[0]!r} is not one of {', '.join(sorted(known))}",
                name,
            )
        return frozenset(found)

    return values("type", streamed_types()), values("status", STATUSES)


def _matcher(account: str, types: frozenset[str], statuses: frozenset[str]) -> Any:
    def match(a: Applied) -> bool:
        row = a.row
        if row.account != account:
            return False
        if types and row.type not in types and row.aggregate_type not in types:
            return False
        return not statuses or row.status in statuses

    return match


def _states_of(ctx: Context, rows: Sequence[EventRow]) -> list[Applied]:
    """``rows`` with the state after each, folding each aggregate's history at most once.

    An aggregate with one row here whose current state is the one after that row (the
    common case when a client reconnects after the window) needs no fold at all.
    """
    keyed: dict[tuple[str, str], list[EventRow]] = {}
    for r in rows:
        keyed.setdefault((r.aggregate_type, r.aggregate_id), []).append(r)
    folded: dict[tuple[str, str], dict[int, Any]] = {}
    for key, mine in keyed.items():
        if len(mine) == 1:
            state = KINDS[key[0]].current(ctx.deps.reads, ctx.principal.account, key[1])
            if state is not None and state.seq == mine[0].seq:
                folded[key] = {state.seq: state}
                continue
        folded[key] = {a.row.seq: a.state for a in history(ctx, *key)}
    return [Applied(r, folded[(r.aggregate_type, r.aggregate_id)][r.seq]) for r in rows]


async def account_stream(request: Request) -> Response:
    ctx = context(request, query_token=True)
    account = ctx.principal.account
    types, statuses = _filters(request)
    match = _matcher(account, types, statuses)
    last = _last_event_id(request)
    given = sse.parse_cursor(last) if last else None
    if last and given is not None:
        _check_partitions(ctx, given, last)
    broadcaster = ctx.deps.broadcaster
    sub = broadcaster.subscribe(match) if broadcaster is not None else None
    try:
        if given is None:
            # On the loop, right after subscribing: nothing can commit in between, so
            # every live event is past this cursor and nothing is missed.
            cursor = {p: o - 1 for p, o in ctx.deps.positions.applied().items()}
            backlog: list[Applied] = []
        else:
            await _reach(ctx, sorted(given.items()), last or "")
            cursor = dict(given)
            rows = await run_in_threadpool(ctx.deps.reads.events_since, account, cursor, STREAMED)
            chosen = [r for r in rows if match(Applied(r, None))]
            backlog = await run_in_threadpool(_states_of, ctx, chosen)
    except BaseException:
        if sub is not None and broadcaster is not None:
            broadcaster.unsubscribe(sub)
        raise

    def step(a: Applied) -> tuple[list[bytes], bool]:
        row = a.row
        if row.offset <= cursor.get(row.partition, -1):
            return [], False
        cursor[row.partition] = row.offset
        return [sse.with_id(sse.cursor_text(cursor), _body(a))], False

    # A fresh stream's cursor comes first, as an id alone (EventSource keeps it and
    # dispatches nothing): a window with no event would otherwise leave the client no
    # id, and its reconnect would start "now", missing what happened in between.
    first = [sse.cursor_only(cursor)] if given is None and cursor else []
    return _streaming(_follow(ctx.deps, sub, first, backlog, step))


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
