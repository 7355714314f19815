"""What a stream is of, and what its messages carry: the streamable aggregates
(:data:`KINDS`), the state after each of their events (a history folded, or from a
state the node kept), and the ``event:``/``data:`` lines of a message.

Split from ``api/routes/streams.py``, which keeps the routes and the life of a stream.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from api import sse
from api.broadcaster import Applied
from api.context import Context
from api.deps import ReadModel
from api.representations import process_json
from api.routes.process_reads import event_json
from api.run_representations import caserun_json, flowrun_json
from api.stream_backlog import history_tail
from api.stream_states import StreamStates
from projections.rows import EventRow, event_of_row
from streams.domain import caserun, flowrun, process
from streams.domain.history import states_after

ALL = 1 << 62  # no page limit: a history is read whole


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


def history(ctx: Context, noun: str, aggregate_id: str) -> list[Applied]:
    """Every event of one aggregate of the caller's account with the state after it
    (blocking: call it from a worker thread)."""
    found = ctx.deps.reads.events_after(ctx.principal.account, aggregate_id, noun, 0, ALL)
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


def states_of(
    ctx: Context, rows: Sequence[EventRow], states: StreamStates | None = None
) -> list[Applied]:
    """``rows`` with the state after each, folding each aggregate's history at most once.

    An aggregate with one row here whose current state is the one after that row (the
    common case when a client reconnects after the window) needs no fold at all. One
    with a state kept in ``states`` at or before its first row here folds from there,
    reading only the rows after it; the state after its last row is kept in turn
    (blocking: call it from a worker thread).
    """
    keyed: dict[tuple[str, str], list[EventRow]] = {}
    for r in rows:
        keyed.setdefault((r.aggregate_type, r.aggregate_id), []).append(r)
    account = ctx.principal.account
    folded: dict[tuple[str, str], dict[int, Any]] = {}
    for key, mine in keyed.items():
        if len(mine) == 1:
            state = KINDS[key[0]].current(ctx.deps.reads, account, key[1])
            if state is not None and state.seq == mine[0].seq:
                folded[key] = {state.seq: state}
                continue
        found = None
        if states is not None:
            base = states.at_or_before_seq((account, *key), mine[0].seq - 1)
            if base is not None:
                found = history_tail(ctx, base, mine[-1].seq)
        if found is None:
            found = history(ctx, *key)
        if states is not None and found:
            states.keep(found[-1])
        folded[key] = {a.row.seq: a.state for a in found}
    return [Applied(r, folded[(r.aggregate_type, r.aggregate_id)][r.seq]) for r in rows]


def data_of(a: Applied) -> dict[str, Any]:
    return {"state": KINDS[a.row.aggregate_type].render(a.state), "event": event_json(a.row)}


def body_of(a: Applied) -> bytes:
    """``a``'s ``event:`` and ``data:`` lines, rendered on first use."""
    if a.body is None:
        a.body = sse.body(a.row.type, data_of(a))
    return a.body


def done_message(a: Applied) -> bytes:
    return sse.message("done", {"status": a.state.status, "position": position_of(a)})


def position_of(a: Applied) -> str:
    return sse.position_text(a.row.partition, a.row.offset)
