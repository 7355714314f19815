"""Reading the ledger from outside the node: typed events, positions the caller keeps.

Two tools, both without a consumer group (every partition is assigned, nothing is
committed to Kafka) and both ``read_committed``, so aborted decider transactions are
never seen:

- :class:`LedgerConsumer` follows a topic live for a service. It yields
  :class:`Delivery` values (a decoded :class:`~streams.domain.events.Event` and where it
  was read) and exposes :attr:`LedgerConsumer.positions` (``{partition: next_offset}``).
  The caller stores that wherever it keeps its own state (a :class:`JsonFilePositions`
  file is provided) and passes it back on the next start: resuming is exact, and it is
  exactly-once when the caller writes its effects and the position together.
  A message that does not decode is skipped, counted in ``skipped`` and reported to
  ``on_undecodable`` (a warning is logged when there is none): never silently, and
  never stopping the consumer, as DESIGN.md's failure model says.
- :func:`read_to_end` reads raw records of some partitions from a start to the end the
  topic had when it was called: for audit, replay and export. It lives in
  :mod:`streams.reader` with the client and the error both share, and is re-exported.

See ``docs/consumers.md`` for a worked example.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2

from schemas import Codec, DecodeError, default_codec
from streams.consumer_start import Start, check_stored, seek_start
from streams.domain.events import ENVELOPE_FIELDS, Event
from streams.positions import JsonFilePositions
from streams.reader import ConsumerError, Record, read_committed_client, read_to_end
from streams.serde import decode_event, event_to_record
from streams.topics import TopicError, partitions_of

log = logging.getLogger(__name__)

__all__ = [
    "ConsumerError",
    "Delivery",
    "JsonFilePositions",
    "LedgerConsumer",
    "Record",
    "Start",
    "Undecodable",
    "event_document",
    "partition_for",
    "read_to_end",
]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One decoded event and where it was read; ``next_offset`` is what to store."""

    partition: int
    offset: int
    timestamp_ms: int
    event: Event

    @property
    def next_offset(self) -> int:
        return self.offset + 1


@dataclass(frozen=True, slots=True)
class Undecodable:
    """A message skipped because it is not a valid event (``error`` says why)."""

    partition: int
    offset: int
    value: bytes | None
    error: str


def partition_for(key: bytes, partitions: int) -> int:
    """The partition the producers' default partitioner gives ``key`` (murmur2, like the
    Java client): where every command, event and outcome of one aggregate lands."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def event_document(event: Event) -> dict[str, Any]:
    """An event as a JSON-ready dict: the envelope fields, then ``data`` (the payload)."""
    record = event_to_record(event)
    doc = {name: record[name] for name in ENVELOPE_FIELDS}
    doc["data"] = {k: v for k, v in record.items() if k not in doc}
    return doc


class LedgerConsumer:
    """Follows ``topic`` (the events topic) from stored positions; use ``async with``.

    ``positions`` wins over ``start`` for the partitions it names. Iterate to get
    :class:`Delivery` values forever, or call :meth:`poll` for one batch. Raises
    ConsumerError when the broker or the topic cannot be read.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        positions: Mapping[int, int] | None = None,
        start: Start = "beginning",
        partitions: Collection[int] | None = None,
        on_undecodable: Callable[[Undecodable], None] | None = None,
        codec: Codec | None = None,
        client_id: str = "runledger-consumer",
        max_records: int = 5_000,
    ) -> None:
        self.topic = topic
        self._bootstrap = bootstrap
        self._start_positions = dict(positions or {})
        self._start = start
        self._only = set(partitions) if partitions is not None else None
        self._on_undecodable = on_undecodable
        self._codec = codec or default_codec()
        self._client_id = client_id
        self._max_records = max_records
        self._consumer: AIOKafkaConsumer | None = None
        self._tps: list[TopicPartition] = []
        self._positions: dict[int, int] = {}
        # Fetched but not yet handed out (``async for`` hands out one at a time), and
        # where every partition stands once they all were.
        self._pending: deque[Delivery] = deque()
        self._after_pending: dict[int, int] = {}
        self.skipped = 0
        """How many undecodable messages were skipped since the start."""

    async def start(self) -> None:
        consumer = read_committed_client(self._bootstrap, self._client_id)
        try:
            await consumer.start()
            parts = await partitions_of(consumer, self.topic)
            tps = [
                TopicPartition(self.topic, p)
                for p in parts
                if self._only is None or p in self._only
            ]
            consumer.assign(tps)
            await check_stored(consumer, self.topic, parts, self._start_positions)
            await seek_start(consumer, tps, self._start_positions, self._start)
            self._positions = {tp.partition: await consumer.position(tp) for tp in tps}
        except BaseException as exc:
            await consumer.stop()
            if isinstance(exc, KafkaError | TopicError):  # TopicError: no such topic
                raise ConsumerError(f"cannot consume {self.topic}: {exc}") from exc
            raise
        self._consumer, self._tps = consumer, tps

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def __aenter__(self) -> LedgerConsumer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def positions(self) -> dict[int, int]:
        """``{partition: next_offset}`` past every event handed out so far: after
        :meth:`poll`, past its whole batch; in ``async for``, past the event the loop
        body is handling (never past one it has not been given yet)."""
        return dict(self._positions)

    async def poll(self, timeout_s: float = 0.5) -> list[Delivery]:
        """The next decoded events (possibly none), in offset order per partition.

        Undecodable messages are skipped (``on_undecodable`` is told, else a warning is
        logged); positions move past them and past transaction markers too. When
        ``on_undecodable`` raises, so does this, and nothing of the batch is lost: the
        next poll reads it again from :attr:`positions`.
        """
        if not self._pending:
            await self._fetch(timeout_s)
        out = list(self._pending)
        self._pending.clear()
        self._positions.update(self._after_pending)
        return out

    async def __aiter__(self) -> AsyncIterator[Delivery]:
        """Every event, one at a time, forever; :attr:`positions` moves past each as it
        is handed out. A loop left by an exception or ``break`` and started again goes
        on after the last event it was given."""
        while True:
            if not self._pending:
                await self._fetch(0.5)
                continue
            delivered = self._pending.popleft()
            self._positions[delivered.partition] = delivered.next_offset
            if not self._pending:
                self._positions.update(self._after_pending)
            yield delivered

    async def _fetch(self, timeout_s: float) -> None:
        """Fetch and decode one batch into ``_pending``. Partitions that brought no
        event move their position at once (past skipped messages and markers)."""
        consumer = self._consumer
        if consumer is None:
            raise ConsumerError("the consumer is not started")
        try:
            fetched = await consumer.getmany(
                timeout_ms=int(timeout_s * 1000), max_records=self._max_records
            )
            moved = {tp.partition: await consumer.position(tp) for tp in self._tps}
        except KafkaError as exc:
            raise ConsumerError(f"consuming {self.topic} failed: {exc}") from exc
        decoded: list[Delivery] = []
        try:
            for tp in sorted(fetched):
                for record in fetched[tp]:
                    delivered = self._decode(record)
                    if delivered is not None:
                        decoded.append(delivered)
        except BaseException:
            # on_undecodable raised: the client has moved past records nobody was
            # given; seek back so that a later poll reads them again.
            for tp in self._tps:
                consumer.seek(tp, self._positions[tp.partition])
            raise
        with_events = {d.partition for d in decoded}
        self._positions.update((p, o) for p, o in moved.items() if p not in with_events)
        self._pending.extend(decoded)
        self._after_pending = moved

    def _decode(self, record: Record) -> Delivery | None:
        try:
            if record.value is None:
                raise DecodeError("the message has no value")
            event = decode_event(self._codec, record.value)
        except (DecodeError, KeyError, TypeError, ValueError) as exc:
            self.skipped += 1
            skipped = Undecodable(
                record.partition, record.offset, record.value, str(exc) or type(exc).__name__
            )
            if self._on_undecodable is not None:
                self._on_undecodable(skipped)
            else:  # never silently: DESIGN.md's failure model says the skip is seen
                log.warning(
                    "skipped the undecodable message at partition %d offset %d of %s: %s",
                    skipped.partition,
                    skipped.offset,
                    self.topic,
                    skipped.error,
                )
            return None
        return Delivery(record.partition, record.offset, record.timestamp, event)

    async def end_offsets(self) -> dict[int, int]:
        """The current end (last stable offset) of every assigned partition."""
        consumer = self._consumer
        if consumer is None:
            raise ConsumerError("the consumer is not started")
        try:
            ends = await consumer.end_offsets(self._tps)
        except KafkaError as exc:
            raise ConsumerError(f"cannot read the end offsets of {self.topic}: {exc}") from exc
        return {tp.partition: o for tp, o in ends.items()}
