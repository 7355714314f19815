"""The bulk path: rebuild a read model from offset 0 into a new DuckDB file.

The live projector upserts the states a batch changed, every batch, because readers
must see them at once. A replay has no readers until it ends, so it:

- folds every event onto states kept in memory (the same ``fold_batch``, so the same
  decode, duplicate and dead-letter rules and the same ``evolve``),
- appends the ``events`` rows in large chunks (one transaction per chunk),
- writes every final state (processes, steps, accounts, tokens, definitions) and the
  positions once, at the end, in one transaction.

Dead letters are counted, not published again: the live projector already did.
The file is built under ``<name>.partial`` and renamed when complete, so a half-built
file never carries the final name.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from projections.fold import Batch, Message, State, StreamId, fold_batch
from projections.store import Store
from schemas import Codec, default_codec
from streams.domain.process import ProcessState, StepState


@dataclass
class Progress:
    """Where a replay is: offsets read of ``total`` (from the end offsets; transaction
    markers take offsets too, so offsets, not events, measure the way), events applied."""

    origin: dict[int, int] = field(default_factory=dict)
    ends: dict[int, int] = field(default_factory=dict)
    reached: dict[int, int] = field(default_factory=dict)
    events: int = 0
    started: float = field(default_factory=time.monotonic)

    def set_range(self, origin: dict[int, int], ends: dict[int, int]) -> None:
        """The first offset to read and the end, per partition (``read_to_end``'s on_ends)."""
        self.origin, self.ends = dict(origin), dict(ends)
        self.reached = dict(origin)
        self.started = time.monotonic()

    def advance(self, messages: Sequence[Message]) -> None:
        for m in messages:
            if m.offset >= self.reached.get(m.partition, 0):
                self.reached[m.partition] = m.offset + 1

    @property
    def total(self) -> int:
        return sum(max(0, e - self.origin.get(p, 0)) for p, e in self.ends.items())

    @property
    def read(self) -> int:
        return sum(max(0, o - self.origin.get(p, 0)) for p, o in self.reached.items())

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        return self.events / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def left_s(self) -> float | None:
        """Seconds left at the rate so far; None before anything was read."""
        if not self.read or self.elapsed <= 0:
            return None
        return max(0.0, (self.total - self.read) * self.elapsed / self.read)


@dataclass(frozen=True, slots=True)
class ReplayResult:
    events: int
    states: int
    duplicates: int
    dead_letters: int
    positions: dict[int, int]
    seconds: float


class BulkReplay:
    """Feed it messages in offset order per partition with :meth:`add`; :meth:`finish`
    writes the states. Not thread-safe; StoreError from the store passes through."""

    def __init__(
        self,
        store: Store,
        topic: str,
        *,
        codec: Codec | None = None,
        chunk_events: int = 200_000,
    ) -> None:
        self.store = store
        self.topic = topic
        self._codec = codec or default_codec()
        self._chunk = chunk_events
        self._states: dict[StreamId, State] = {}
        self._pending: list[Batch] = []
        self._pending_events = 0
        self._positions: dict[int, int] = {}
        self.events = 0
        self.duplicates = 0
        self.dead_letters = 0

    def add(self, messages: Sequence[Message]) -> int:
        """Fold ``messages``; returns how many events they applied."""
        batch = fold_batch(self._states, messages, topic=self.topic, codec=self._codec)
        self._states.update(batch.states)
        for p, o in batch.positions.items():
            self._positions[p] = max(o, self._positions.get(p, 0))
        self.duplicates += batch.duplicates
        self.dead_letters += len(batch.dead_letters)
        self.events += len(batch.events)
        if batch.events:
            self._pending.append(batch)
            self._pending_events += len(batch.events)
            if self._pending_events >= self._chunk:
                self._flush()
        return len(batch.events)

    def _flush(self) -> None:
        if not self._pending:
            return
        chunk = Batch(
            topic=self.topic,
            events=tuple(ev for b in self._pending for ev in b.events),
            partitions=tuple(p for b in self._pending for p in b.partitions),
            offsets=tuple(o for b in self._pending for o in b.offsets),
            statuses=tuple(s for b in self._pending for s in b.statuses),
        )
        self._pending, self._pending_events = [], 0
        self.store.write(chunk)  # events only: no states, no positions yet

    def finish(self, positions: dict[int, int] | None = None) -> dict[int, int]:
        """Write the remaining events, every final state and the positions (``positions``
        wins: it may pass transaction markers no record stands for). Returns them."""
        self._flush()
        final = dict(self._positions)
        for p, o in (positions or {}).items():
            final[p] = max(o, final.get(p, 0))
        steps: list[tuple[str, StepState]] = [
            (s.id, step)
            for s in self._states.values()
            if isinstance(s, ProcessState)
            for step in s.steps
        ]
        self.store.write(
            Batch(topic=self.topic, states=self._states, steps=tuple(steps), positions=final)
        )
        return final

    @property
    def states(self) -> int:
        return len(self._states)


async def replay(
    path: str | Path,
    batches: AsyncIterator[Sequence[Message]],
    *,
    topic: str,
    progress: Progress | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    ends: Callable[[], dict[int, int]] | None = None,
    codec: Codec | None = None,
    chunk_events: int = 200_000,
) -> ReplayResult:
    """Rebuild into ``path`` (which must not exist) from ``batches`` of raw messages.

    ``ends()`` gives the positions reached when ``batches`` is exhausted (the end
    offsets read up to). FileExistsError when ``path`` exists; the partial file is
    removed on any error.
    """
    target = Path(path)
    if target.exists():
        raise FileExistsError(f"{target} exists; replay builds a new file")
    partial = target.with_name(target.name + ".partial")
    for leftover in (partial, partial.with_name(partial.name + ".wal")):
        leftover.unlink(missing_ok=True)
    progress = progress or Progress()
    began = time.monotonic()
    try:
        with Store(partial) as store:
            bulk = BulkReplay(store, topic, codec=codec, chunk_events=chunk_events)
            async for messages in batches:
                # In a worker thread: the consumer keeps fetching meanwhile.
                await asyncio.to_thread(bulk.add, messages)
                progress.advance(messages)
                progress.events = bulk.events
                if on_progress is not None:
                    on_progress(progress)
            positions = await asyncio.to_thread(bulk.finish, ends() if ends else None)
        os.replace(partial, target)
    except BaseException:
        for leftover in (partial, partial.with_name(partial.name + ".wal")):
            leftover.unlink(missing_ok=True)
        raise
    return ReplayResult(
        bulk.events,
        bulk.states,
        bulk.duplicates,
        bulk.dead_letters,
        positions,
        time.monotonic() - began,
    )
