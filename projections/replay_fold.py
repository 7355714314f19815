"""The transform of a bulk replay: raw messages in, chunks of rows to append out.

One ``PartitionFold`` folds the messages of some partitions (all of them in one
process, or its share in a replay worker) with the live projector's ``fold_batch``
and row builders, so decode, duplicate, dead-letter and ``evolve`` rules are the
projector's by construction. It keeps the states of the aggregates touched lately in
memory; when there are more than ``max_states`` the least recently touched move to a
:class:`~projections.spill.StateSpill` and into the next chunk, so their rows are
written during the replay rather than all at its end, and memory stays bounded.

An aggregate lives in one partition (its events share a key), so folds over disjoint
partitions never see the same aggregate and their chunks can be written in any order
between folds (in order within one fold).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import pyarrow as pa

from projections import rows, tables
from projections.fold import Message, State, StreamId, fold_batch
from projections.spill import StateSpill
from schemas import Codec, default_codec
from streams.domain.account import AccountState
from streams.domain.caserun import CaseRunState
from streams.domain.flowrun import FlowRunState
from streams.domain.process import ProcessState


@dataclass(frozen=True, slots=True)
class Chunk:
    """Rows for the writer, picklable (it crosses from a worker process).

    ``events`` holds ``events`` rows or None; ``rows`` are rows of states written for
    the first time, per table name (plain inserts); ``again`` are states whose rows
    were written before (the state came back from the spill and changed), to be
    replaced through the live path's upsert; ``positions`` is the next offset per
    partition past all the messages this chunk accounts for.
    """

    events: pa.Table | None
    rows: tuple[tuple[str, pa.Table], ...] = ()
    again: dict[StreamId, State] = field(default_factory=dict)
    positions: dict[int, int] = field(default_factory=dict)
    states: int = 0  # states written for the first time

    @property
    def count(self) -> int:
        """Events rows in the chunk."""
        return 0 if self.events is None else self.events.num_rows


def state_rows(states: Iterable[State]) -> list[tuple[tables.Table, pa.Table]]:
    """The rows of ``states`` (whole: a Process with all its steps, an account with
    all its tokens) per table, with the live path's row builders."""
    by_type: dict[type, list[Any]] = defaultdict(list)
    for state in states:
        by_type[type(state)].append(state)
    out: list[tuple[tables.Table, rows.Columns]] = []
    processes = by_type.pop(ProcessState, [])
    if processes:
        out.append((tables.PROCESSES, rows.process_columns(processes)))
        steps = [(p.id, step) for p in processes for step in p.steps]
        out.append((tables.STEPS, rows.step_columns(steps)))
    accounts = by_type.pop(AccountState, [])
    if accounts:
        out.append((tables.ACCOUNTS, rows.account_columns(accounts)))
        out.append((tables.TOKENS, rows.token_columns(accounts)))
    for cls, table in rows.DEFINITION_TABLES.items():
        definitions = by_type.pop(cls, [])
        if definitions:
            out.append((table, rows.definition_columns(table, definitions)))
    flowruns = by_type.pop(FlowRunState, [])
    if flowruns:
        out.append((tables.FLOWRUNS, rows.flowrun_columns(flowruns)))
    caseruns = by_type.pop(CaseRunState, [])
    if caseruns:
        out.append((tables.CASERUNS, rows.caserun_columns(caseruns)))
    if by_type:
        raise TypeError(f"no table for states of type {', '.join(map(str, by_type))}")
    return [
        (table, pa.Table.from_pydict(columns, schema=table.schema))
        for table, columns in out
        if columns[table.columns[0].name]
    ]


class PartitionFold:
    """Feed :meth:`add` messages in offset order per partition; :meth:`finish` once.

    Not thread-safe. StoreError from the spill passes through.
    """

    def __init__(
        self,
        topic: str,
        spill: StateSpill,
        *,
        codec: Codec | None = None,
        max_states: int = 20_000,
        chunk_events: int = 25_000,
    ) -> None:
        if max_states < 1 or chunk_events < 1:
            raise ValueError("max_states and chunk_events must be at least 1")
        self.topic = topic
        self._spill = spill
        self._codec = codec or default_codec()
        self._max_states = max_states
        self._chunk_events = chunk_events
        # Least recently changed first: dict order, re-inserted on every change.
        self._states: dict[StreamId, State] = {}
        self._revived: set[StreamId] = set()
        self._events: list[pa.Table] = []
        self._pending = 0
        self._out: dict[StreamId, State] = {}
        self.positions: dict[int, int] = {}
        self.events = 0
        self.duplicates = 0
        self.dead_letters = 0
        self.evicted = 0

    def add(self, messages: Sequence[Message]) -> Chunk | None:
        """Fold ``messages``; a chunk when ``chunk_events`` events are waiting, else None."""
        batch = fold_batch(
            self._states, messages, topic=self.topic, load=self._spill.load, codec=self._codec
        )
        states = self._states
        for key, state in batch.states.items():
            states.pop(key, None)
            states[key] = state
            # Back from the spill and changed: if its evicted version was handed out,
            # its rows are written and must be replaced; if not, it never will be.
            if key in batch.loaded and self._out.pop(key, None) is None:
                self._revived.add(key)
        for p, o in batch.positions.items():
            if o > self.positions.get(p, 0):
                self.positions[p] = o
        self.duplicates += batch.duplicates
        self.dead_letters += len(batch.dead_letters)
        if batch.events:
            columns = rows.event_columns(
                batch.events, batch.partitions, batch.offsets, batch.statuses, batch.data or None
            )
            self._events.append(pa.Table.from_pydict(columns, schema=tables.EVENTS.schema))
            self._pending += len(batch.events)
            self.events += len(batch.events)
        self._evict()
        return self._take() if self._pending >= self._chunk_events else None

    def finish(self) -> Chunk:
        """Every event not handed out yet and every state still in memory."""
        self._out.update(self._states)
        self._states.clear()
        return self._take()

    def _evict(self) -> None:
        excess = len(self._states) - self._max_states
        if excess <= 0:
            return
        gone = {key: self._states.pop(key) for key in list(islice(self._states, excess))}
        self._spill.put(gone)
        self._out.update(gone)
        self.evicted += len(gone)

    def _take(self) -> Chunk:
        events = pa.concat_tables(self._events) if self._events else None
        out, self._out = self._out, {}
        again = {key: out.pop(key) for key in self._revived.intersection(out)}
        self._revived.difference_update(again)
        self._events, self._pending = [], 0
        first = tuple((table.name, data) for table, data in state_rows(out.values()))
        return Chunk(events, first, again, dict(self.positions), len(out))
