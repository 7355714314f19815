"""The bulk path: rebuild a read model from offset 0 into a new DuckDB file.

The live projector upserts the states a batch changed, every batch, because readers
must see them at once. A replay has no readers until it ends, so:

- the messages are folded by :class:`~projections.replay_fold.PartitionFold` (the
  projector's ``fold_batch`` and row builders) onto states in memory; ``events`` rows
  go out in chunks of ``chunk_events``, states when they leave memory (the least
  recently changed, past ``max_states``) or at the end;
- :func:`projections.replay_parallel.replay_parallel` runs one fold per worker
  process over disjoint partitions (an aggregate lives in one partition), the main
  process only appends their chunks to DuckDB; :func:`replay` here folds batches it
  is given in this process;
- the positions are written last; the file is built under ``<name>.partial`` and
  renamed when complete, so a half-built file never carries the final name.

Dead letters are counted, not published again: the live projector already did.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from projections import tables
from projections.fold import Batch, Message
from projections.replay_fold import Chunk, PartitionFold
from projections.replay_worker import Done
from projections.spill import StateSpill
from projections.store import Store
from schemas import Codec
from streams.domain.process import ProcessState
from streams.progress import Progress

_TABLES = {table.name: table for table in tables.ALL}


@dataclass(frozen=True, slots=True)
class ReplayResult:
    events: int
    states: int
    duplicates: int
    dead_letters: int
    positions: dict[int, int]
    seconds: float
    workers: tuple[Done, ...] = ()  # what each worker process reported


class ChunkWriter:
    """Appends chunks to the new file: events rows as they are, states through
    ``Store.write`` (the live path's row builders and upserts). StoreError passes."""

    def __init__(self, store: Store, topic: str) -> None:
        self.store = store
        self.topic = topic
        self.events = 0
        self.states = 0
        self.rewritten = 0  # states written again (back from a spill, changed)
        self.positions: dict[int, int] = {}

    def write(self, chunk: Chunk) -> None:
        if chunk.events is not None and chunk.events.num_rows:
            self.store.append(tables.EVENTS, chunk.events)
            self.events += chunk.events.num_rows
        for name, data in chunk.rows:
            self.store.append(_TABLES[name], data)
        self.states += chunk.states
        if chunk.again:
            self.rewritten += len(chunk.again)
            processes = [s for s in chunk.again.values() if isinstance(s, ProcessState)]
            self.store.write(
                Batch(
                    topic=self.topic,
                    states=chunk.again,
                    steps=tuple((p.id, step) for p in processes for step in p.steps),
                    steps_replaced=frozenset(p.id for p in processes),
                )
            )
        for p, o in chunk.positions.items():
            if o > self.positions.get(p, 0):
                self.positions[p] = o

    def finish(self, ends: Mapping[int, int] | None = None) -> dict[int, int]:
        """Write the positions (``ends`` wins where further: it may pass transaction
        markers no record stands for) and return them. A partition with nothing read
        (empty, or ``ends`` at 0) gets no position, as with the live projector, which
        stores one only once its position moved."""
        final = dict(self.positions)
        for p, o in (ends or {}).items():
            if o > final.get(p, 0):
                final[p] = o
        self.store.write(Batch(topic=self.topic, positions=final))
        return final


class BulkReplay:
    """One fold and its writer in this process: :meth:`add` messages, then :meth:`finish`.

    ``max_states`` bounds the states kept in memory (the rest go to a spill).
    """

    def __init__(
        self,
        store: Store,
        topic: str,
        *,
        codec: Codec | None = None,
        chunk_events: int = 25_000,
        max_states: int = 20_000,
        spill: StateSpill | None = None,
    ) -> None:
        self._spill = spill or StateSpill()
        self._fold = PartitionFold(
            topic, self._spill, codec=codec, max_states=max_states, chunk_events=chunk_events
        )
        self._writer = ChunkWriter(store, topic)

    def add(self, messages: Sequence[Message]) -> int:
        """Fold ``messages``; returns how many events they applied."""
        before = self._fold.events
        chunk = self._fold.add(messages)
        if chunk is not None:
            self._writer.write(chunk)
        return self._fold.events - before

    def finish(self, positions: Mapping[int, int] | None = None) -> dict[int, int]:
        """Write what is left and the positions (see :meth:`ChunkWriter.finish`)."""
        self._writer.write(self._fold.finish())
        return self._writer.finish(positions)

    @property
    def written(self) -> int:
        return self._writer.events

    @property
    def events(self) -> int:
        return self._fold.events

    @property
    def duplicates(self) -> int:
        return self._fold.duplicates

    @property
    def dead_letters(self) -> int:
        return self._fold.dead_letters

    @property
    def states(self) -> int:
        return self._writer.states


@contextlib.contextmanager
def building(path: str | Path) -> Iterator[Path]:
    """The partial file to build ``path`` in; renamed to ``path`` when the block ends
    well, removed (with its scratch files) when it raises."""
    target = Path(path)
    if target.exists():
        raise FileExistsError(f"{target} exists; replay builds a new file")
    partial = target.with_name(target.name + ".partial")
    leftovers = (partial, partial.with_name(partial.name + ".wal"))
    for leftover in leftovers:
        leftover.unlink(missing_ok=True)
    try:
        yield partial
        os.replace(partial, target)
    except BaseException:
        for leftover in leftovers:
            leftover.unlink(missing_ok=True)
        raise


async def replay(
    path: str | Path,
    batches: AsyncIterator[Sequence[Message]],
    *,
    topic: str,
    progress: Progress | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    ends: Callable[[], dict[int, int]] | None = None,
    codec: Codec | None = None,
    chunk_events: int = 25_000,
    max_states: int = 20_000,
) -> ReplayResult:
    """Rebuild into ``path`` (which must not exist) from ``batches`` of raw messages,
    folding in this process.

    ``ends()`` gives the positions reached when ``batches`` is exhausted (the end
    offsets read up to). FileExistsError when ``path`` exists; the partial file is
    removed on any error.
    """
    progress = progress or Progress()
    began = time.monotonic()
    with building(path) as partial, Store(partial) as store:
        bulk = BulkReplay(
            store, topic, codec=codec, chunk_events=chunk_events, max_states=max_states
        )
        async for messages in batches:
            # In a worker thread: the consumer keeps fetching meanwhile.
            await asyncio.to_thread(bulk.add, messages)
            progress.advance(messages)
            progress.events = bulk.written
            if on_progress is not None:
                on_progress(progress)
        positions = await asyncio.to_thread(bulk.finish, ends() if ends else None)
        progress.events = bulk.written
    return ReplayResult(
        bulk.events,
        bulk.states,
        bulk.duplicates,
        bulk.dead_letters,
        positions,
        time.monotonic() - began,
    )
