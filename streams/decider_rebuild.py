"""What the decider knows, and how it gets it back: an :class:`Aggregate` per stream key,
rebuilt on every start by folding ``ledger.events`` from offset 0 with the same
``evolve`` as the projector.

:func:`remember` is the fold, pure; :func:`read_ledger` reads the topic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from schemas import Codec
from streams import serde
from streams.domain import aggregates
from streams.domain.events import Event
from streams.topics import partitions_of


@dataclass
class Aggregate:
    """An aggregate's state and, per command it accepted, where its events landed."""

    state: Any = None
    commands: dict[str, tuple[serde.EventPosition, ...]] = field(default_factory=dict)


def remember(known: dict[str, Aggregate], event: Event, partition: int, offset: int) -> bool:
    """Fold ``event``, found at ``partition``/``offset``, into its aggregate in ``known``
    (by stream key); False when it was folded already."""
    key = aggregates.stream_key(event.aggregate_type, event.aggregate_id)
    agg = known.get(key)
    if agg is None:
        agg = known[key] = Aggregate()
    prior = agg.state.seq if agg.state is not None else 0
    if event.seq <= prior:
        return False  # a duplicate from before exactly-once; already folded
    agg.state = aggregates.evolve(agg.state, event)
    pos = serde.EventPosition(event.seq, event.type, partition, offset)
    agg.commands[event.command_id] = (*agg.commands.get(event.command_id, ()), pos)
    return True


async def read_ledger(
    bootstrap: str,
    topic: str,
    codec: Codec,
    on_event: Callable[[Event, int, int], None],
) -> None:
    """Pass every committed event of ``topic``, from offset 0 to the end each partition
    had when the read began, to ``on_event(event, partition, offset)``.

    Raises TopicError when the topic does not exist, aiokafka's errors when the broker
    cannot be read, and serde's when an event does not decode.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
        client_id="runledger-decider-rebuild",
    )
    await consumer.start()
    try:
        parts = await partitions_of(consumer, topic)
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if end[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=500, max_records=20_000)
            for tp, messages in batch.items():
                for msg in messages:
                    on_event(serde.decode_event(codec, msg.value), tp.partition, msg.offset)
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
