"""What the decider knows, and how it gets it back: an :class:`Aggregate` per stream key,
rebuilt on every start by folding ``ledger.events`` from offset 0 with the same
``evolve`` as the projector.

:func:`remember` is the fold, pure; :func:`read_ledger` reads the topic.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from schemas import Codec, DecodeError
from streams import serde
from streams.domain import aggregates
from streams.domain.events import Event
from streams.topics import partitions_of

log = logging.getLogger(__name__)


@dataclass
class Aggregate:
    """An aggregate's state and, per command it accepted, where its events landed."""

    state: Any = None
    commands: dict[str, tuple[serde.EventPosition, ...]] = field(default_factory=dict)


def remember(known: dict[str, Aggregate], event: Event, partition: int, offset: int) -> bool:
    """Fold ``event``, found at ``partition``/``offset``, into its aggregate in ``known``
    (by stream key); False when it was not folded.

    The rules are the projector's (``projections.fold.fold_batch``), so the decider
    numbers an aggregate's next events where the read model expects them: an event
    whose seq the aggregate has is a duplicate, and one that leaves a seq gap or that
    ``evolve`` refuses is skipped (the projector dead-letters it) rather than stopping
    every start of the decider.
    """
    key = aggregates.stream_key(event.aggregate_type, event.aggregate_id)
    agg = known.get(key)
    prior = agg.state.seq if agg is not None and agg.state is not None else 0
    if event.seq <= prior:
        return False  # a duplicate from before exactly-once; already folded
    if event.seq != prior + 1:
        log.warning(
            "rebuild skips %s seq %d at %d/%d: it leaves a gap after seq %d",
            key,
            event.seq,
            partition,
            offset,
            prior,
        )
        return False
    try:
        state = aggregates.evolve(agg.state if agg is not None else None, event)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        log.warning(
            "rebuild skips %s seq %d at %d/%d: evolve refuses it: %s",
            key,
            event.seq,
            partition,
            offset,
            exc,
        )
        return False
    if agg is None:
        agg = known[key] = Aggregate()
    agg.state = state
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

    A message that does not decode is skipped with a warning (the projector
    dead-letters it). Raises TopicError when the topic does not exist and aiokafka's
    errors when the broker cannot be read.
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
                    try:
                        event = serde.decode_event(codec, msg.value)
                    except (DecodeError, KeyError, TypeError, ValueError) as exc:
                        # as the projector: dead-lettered there, skipped here
                        log.warning(
                            "rebuild skips %s/%d offset %d: %s",
                            topic,
                            tp.partition,
                            msg.offset,
                            exc,
                        )
                        continue
                    on_event(event, tp.partition, msg.offset)
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
