"""The consume pipeline of a node, assembled in one place.

    fetch (aiokafka, no group, every partition, read_committed)
      → fold (decode, drop duplicates, dead-letter the rest, evolve)   [worker thread]
      → publish dead letters (acks=all)
      → write rows and positions in one DuckDB transaction             [worker thread]
      → advance the watermark, count, tell listeners; then cache the states

Batch N+1 is fetched and folded while batch N is being written.

Positions live in the DuckDB file next to the rows, never in Kafka: on start every
partition is sought to its stored position, so a crash between the write and
anything after it loses nothing and applies nothing twice (the checks and seeks of a
start are in :mod:`projections.projector_clients`; telling listeners is in
:mod:`projections.listeners`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from projections.cache import Layered, StateCache
from projections.dead_letters import DeadLetterPublisher, log_dead_letters
from projections.errors import ProjectorError
from projections.fold import Batch, fold_batch
from projections.full_disk import HeldWrites
from projections.listeners import BatchListener, Listener, notify, notify_batch
from projections.metrics import ProjectorStats
from projections.projector_clients import check_ledger, open_clients
from projections.store import Store
from projections.watermark import Watermark
from schemas import Codec, default_codec
from streams.consumer_stop import stop_consumer
from streams.topics import Topics, describe_positions

__all__ = ["BatchListener", "Listener", "Projector", "ProjectorStats", "fold_batch"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Writing:
    """A batch whose transaction runs in a worker thread."""

    batch: Batch
    task: asyncio.Task[None]


class Projector:
    """Folds the events topic into ``store``; run it as a task of the node's event loop.

    ``run()`` consumes until ``stop()``; it raises ProjectorError (Kafka) or StoreError
    (DuckDB) and may then be run again: it resumes from the stored positions. A batch
    the disk has no room for is held and written again until it fits (full_disk).
    """

    def __init__(
        self,
        store: Store,
        *,
        bootstrap: str,
        topics: Topics,
        codec: Codec | None = None,
        max_records: int = 20_000,
        poll_timeout_ms: int = 100,
        cache_size: int = 50_000,
        client_id: str = "runledger-projector",
        start_timeout_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.topic = topics.events
        self.watermark = Watermark()
        self.listeners: list[Listener] = []
        self.batch_listeners: list[BatchListener] = []
        self._bootstrap = bootstrap
        self._dlq_topic = topics.dlq
        self._codec = codec or default_codec()
        self._max_records = max_records
        self._poll_timeout_ms = poll_timeout_ms
        self._client_id = client_id
        self._start_timeout_s = start_timeout_s
        self._clock = clock
        self._cache = StateCache(cache_size)
        self._stats = ProjectorStats()
        self._consumer: AIOKafkaConsumer | None = None
        self._offsets: AIOKafkaConsumer | None = None
        self._dead_letters: DeadLetterPublisher | None = None
        self._partitions: list[TopicPartition] = []
        self._consumed: dict[int, int] = {}
        self._stopping = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._started = asyncio.Event()
        self._writes = HeldWrites(store, self._stopping)

    # -- what the node reads -----------------------------------------------------------

    @property
    def applied(self) -> dict[int, int]:
        """The next offset to apply per partition (everything before it is in the store)."""
        known = self.watermark.snapshot()
        return {tp.partition: known.get(tp.partition, 0) for tp in self._partitions} or known

    @property
    def stats(self) -> ProjectorStats:
        return self._stats

    @property
    def held_s(self) -> float:
        """Seconds a batch has waited for room on the disk; 0 when none waits."""
        return self._writes.held_s

    def known_ends(self) -> dict[int, int]:
        """The end of each partition as the fetching consumer last heard it: the last
        stable offset (read_committed; the high watermark on a broker that does not say)
        that every fetch response carries, so no request is made. A partition no fetch
        has answered for yet, or any partition of a projector not running, is absent."""
        consumer = self._consumer
        if consumer is None:
            return {}
        ends = {}
        for tp in self._partitions:
            end = consumer.last_stable_offset(tp)
            if end is None or end < 0:
                end = consumer.highwater(tp)
            if end is not None:
                ends[tp.partition] = end
        return ends

    async def end_offsets(self) -> dict[int, int]:
        """The current end (last stable offset) of every partition of the events topic.

        Asked on a client of its own: the broker answers a connection's requests in
        order, so on the fetching consumer's connection the question waited behind the
        long-poll fetch in flight, up to ``fetch_max_wait_ms`` (500 ms) per ``?wait=true``
        read on an idle node."""
        consumer = self._offsets
        if consumer is None:
            raise ProjectorError("the projector is not running")
        try:
            ends = await consumer.end_offsets(self._partitions)
        except KafkaError as exc:
            raise ProjectorError(f"cannot read the end offsets of {self.topic}: {exc}") from exc
        return {tp.partition: offset for tp, offset in ends.items()}

    async def wait_for(self, partition: int, offset: int, timeout: float) -> bool:
        """True once the event at (partition, offset) is applied; False after ``timeout`` s."""
        return await self.watermark.wait_for(partition, offset, timeout)

    async def catch_up(self, timeout: float) -> bool:
        """Wait until everything in the topic right now is applied; False on timeout.

        A node answers HTTP while its projector is still connecting: wait for that too,
        within the same ``timeout``. Asking the broker for the ends counts too: with the
        broker away aiokafka retries that question for as long as it stays away.
        """
        began = time.monotonic()
        try:
            await asyncio.wait_for(self._started.wait(), timeout)
            left = max(0.0, timeout - (time.monotonic() - began))
            ends = await asyncio.wait_for(self.end_offsets(), left)
        except TimeoutError:
            return False
        left = max(0.0, timeout - (time.monotonic() - began))
        return await self.watermark.wait_for_end(ends, left)

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, assign every partition of the events topic and seek to the stored
        positions. ProjectorError when the broker or the topic is not there in time."""
        if self._consumer is not None:
            return
        await asyncio.to_thread(check_ledger, self.store, self.topic)
        clients = await open_clients(
            self.store,
            self.topic,
            bootstrap=self._bootstrap,
            dlq_topic=self._dlq_topic,
            client_id=self._client_id,
            start_timeout_s=self._start_timeout_s,
        )
        stored = clients.stored
        self.watermark.advance_all(stored)
        self._consumed = dict(stored)
        self._consumer, self._dead_letters = clients.consumer, clients.dead_letters
        self._partitions, self._offsets = clients.partitions, clients.offsets
        self._started.set()
        log.info(
            "projector: reading %s on %s from %s (%s)",
            self.topic,
            self._bootstrap,
            describe_positions(stored),
            f"positions stored in {self.store.path}" if stored else "a new read model",
        )

    async def run(self) -> None:
        """Consume until :meth:`stop`; closes the Kafka clients however it ends.

        Batch N+1 is fetched and folded while batch N is being written (over N's
        states, so it sees them); N is committed before N+1's write starts, and the
        watermark moves the moment a commit returns. On any error the state cache is
        dropped and the error raised; the next run seeks to the stored positions.
        """
        self._idle.clear()
        writing: _Writing | None = None
        try:
            await self.start()
            while not self._stopping.is_set():
                fetched = await self._fetch()
                if fetched is None:
                    if writing is not None and writing.task.done():
                        await self._settle(writing)
                        writing = None
                    continue
                began = time.monotonic()
                pending = writing.batch.states if writing is not None else {}
                batch = await self._fold(Layered(pending, self._cache), *fetched)
                if batch.dead_letters:
                    # Before its positions are committed: after a crash they are sent
                    # again, never skipped.
                    await self._publisher.publish(self.topic, batch.dead_letters)
                    log_dead_letters(self.topic, self._dlq_topic, batch.dead_letters)
                if writing is not None:
                    await self._settle(writing)
                writing = _Writing(batch, asyncio.create_task(self._write(batch, began)))
            if writing is not None:
                await self._settle(writing)
                writing = None
        except BaseException:
            # The store, not the cache, is the truth now. A write in flight commits or
            # rolls back as a whole; wait for it, so nothing writes after run() ends.
            self._cache.clear()
            if writing is not None:
                with contextlib.suppress(BaseException):
                    await writing.task
            raise
        finally:
            started = self._consumer is not None
            await self._close()
            self._stopping.clear()
            self._idle.set()
            if started:
                # What is in the store: the next start resumes exactly there.
                log.info(
                    "projector: stopped reading %s; the read model has applied up to %s "
                    "(%d events applied since start)",
                    self.topic,
                    describe_positions(self.applied),
                    self._stats.events_applied,
                )

    async def stop(self) -> None:
        """Ask :meth:`run` to finish after the batch in hand, and wait until it has.

        A run that has not begun yet ends as soon as it begins.
        """
        self._stopping.set()
        await self._idle.wait()
        await self._close()

    async def _close(self) -> None:
        consumer, offsets, dead_letters = self._consumer, self._offsets, self._dead_letters
        self._started.clear()
        self._consumer = self._offsets = self._dead_letters = None
        for client in (consumer, offsets):
            if client is not None:
                await stop_consumer(client)
        if dead_letters is not None:
            await dead_letters.stop()

    # -- the pipeline ------------------------------------------------------------------

    @property
    def _publisher(self) -> DeadLetterPublisher:
        if self._dead_letters is None:
            raise ProjectorError("the projector is not started")
        return self._dead_letters

    async def _fetch(self) -> tuple[list[ConsumerRecord[bytes, bytes]], dict[int, int]] | None:
        """The next records in offset order per partition, and the positions they reach;
        None when nothing moved."""
        consumer = self._consumer
        if consumer is None:
            raise ProjectorError("the projector is not started")
        try:
            fetched = await consumer.getmany(
                timeout_ms=self._poll_timeout_ms, max_records=self._max_records
            )
            # The position also passes transaction markers and aborted records, which
            # no record stands for: without it a read-your-writes wait would hang.
            consumed = {tp.partition: await consumer.position(tp) for tp in self._partitions}
        except KafkaError as exc:
            raise ProjectorError(f"consuming {self.topic} failed: {exc}") from exc
        moved = {p: o for p, o in consumed.items() if o > self._consumed.get(p, 0)}
        if not fetched and not moved:
            return None
        self._consumed.update(moved)
        return [record for tp in sorted(fetched) for record in fetched[tp]], moved

    async def _fold(
        self,
        states: Layered,
        messages: list[ConsumerRecord[bytes, bytes]],
        positions: dict[int, int],
    ) -> Batch:
        batch = await asyncio.to_thread(
            fold_batch,
            states,
            messages,
            topic=self.topic,
            load=self.store.load_states,
            codec=self._codec,
        )
        merged = {p: max(o, batch.positions.get(p, 0)) for p, o in positions.items()}
        return replace(batch, positions=merged)

    async def _write(self, batch: Batch, began: float) -> None:
        """Commit ``batch``; then readers may see it: advance, count and notify at once."""
        await self._writes.write(batch)
        self.watermark.advance_all(batch.positions)
        self._stats = self._stats.counted(batch, time.monotonic() - began, self._clock())
        if batch.events:
            notify(self.listeners, list(batch.events))
            notify_batch(self.batch_listeners, batch)

    async def _settle(self, writing: _Writing) -> None:
        """Wait for a write (raising its error), then cache its states.

        Called only between folds: a fold reads the cache from a worker thread.
        """
        await writing.task
        batch = writing.batch
        self._cache.remember({**batch.loaded, **batch.states})
