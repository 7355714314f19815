"""Where a :class:`~streams.consumer.LedgerConsumer` starts reading: the stored
positions, checked against the topic, else ``beginning``, ``end`` or a time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.reader import ConsumerError

# Where to start a partition that has no stored position: its first offset, its end,
# or the first record whose Kafka timestamp is at or after a time (ms since the epoch).
Start = Literal["beginning", "end"] | int


async def check_stored(
    consumer: AIOKafkaConsumer, topic: str, parts: list[int], positions: Mapping[int, int]
) -> None:
    """ConsumerError when ``positions`` cannot be positions in ``topic``: a partition
    it lacks, an offset past a partition's end or before its first record. The
    client would otherwise restart such a partition from its first offset without a
    word (``auto_offset_reset``), repeating every effect: positions kept from another
    ledger or prefix, or from a topic deleted and made again."""
    foreign = sorted(set(positions) - set(parts))
    if foreign:
        raise ConsumerError(
            f"the stored positions name partition {foreign[0]}, which {topic} does not "
            f"have ({len(parts)} partitions): positions of another ledger?"
        )
    tps = [TopicPartition(topic, p) for p in sorted(positions)]
    if not tps:
        return
    firsts = await consumer.beginning_offsets(tps)
    ends = await consumer.end_offsets(tps)
    for tp in tps:
        at = positions[tp.partition]
        if not firsts[tp] <= at <= ends[tp]:
            raise ConsumerError(
                f"the stored position {at} of partition {tp.partition} is outside "
                f"{topic}'s offsets {firsts[tp]}..{ends[tp]}: positions of another ledger "
                "or prefix, or a topic made again? Resuming there would skip or repeat events"
            )


async def seek_start(
    consumer: AIOKafkaConsumer,
    tps: list[TopicPartition],
    positions: Mapping[int, int],
    start: Start,
) -> None:
    """Seek each partition to its stored position, else to ``start``."""
    fresh = [tp for tp in tps if tp.partition not in positions]
    for tp in tps:
        if tp.partition in positions:
            consumer.seek(tp, positions[tp.partition])
    if not fresh:
        return
    if start == "beginning":
        await consumer.seek_to_beginning(*fresh)
    elif start == "end":
        await consumer.seek_to_end(*fresh)
    else:
        found = await consumer.offsets_for_times({tp: int(start) for tp in fresh})
        ends = await consumer.end_offsets(fresh)
        for tp in fresh:
            hit = found.get(tp)
            consumer.seek(tp, hit.offset if hit is not None else ends[tp])
