"""Reading raw records of the ledger's topics from a start to an end: :func:`read_to_end`.

The bounded counterpart of :class:`streams.consumer.LedgerConsumer` (which follows a
topic live), for audit, replay and export. Both read through the same kind of client,
made here, and raise the same :class:`ConsumerError`; ``streams.consumer`` re-exports
all of them, so callers keep importing from there.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from streams.topics import partitions_of

Record: TypeAlias = ConsumerRecord[bytes, bytes]


class ConsumerError(Exception):
    """The broker could not be read (connection, topic, metadata); the message says why."""


def read_committed_client(bootstrap: str, client_id: str) -> AIOKafkaConsumer:
    """A consumer without a group that commits nothing and sees only committed records."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )


async def read_to_end(
    bootstrap: str,
    topic: str,
    *,
    partitions: Collection[int] | None = None,
    start: Mapping[int, int] | None = None,
    until: Mapping[int, int] | None = None,
    on_ends: Callable[[dict[int, int], dict[int, int]], None] | None = None,
    client_id: str = "runledger-reader",
    max_records: int = 50_000,
) -> AsyncIterator[list[Record]]:
    """Raw records of ``topic`` in batches, from ``start`` (default: each partition's
    first offset) up to ``until`` or else the end each partition had at the call.

    ``on_ends(first, ends)`` is called once with the first and end offset of every
    partition read (for a progress bar). Records at or past ``until`` are not yielded.
    Raises ConsumerError when the broker or the topic cannot be read.
    """
    consumer = read_committed_client(bootstrap, client_id)
    try:
        await consumer.start()
        parts = await partitions_of(consumer, topic)
        tps = [TopicPartition(topic, p) for p in parts if partitions is None or p in partitions]
        consumer.assign(tps)
        firsts = {tp.partition: o for tp, o in (await consumer.beginning_offsets(tps)).items()}
        if until is None:
            ends = {tp.partition: o for tp, o in (await consumer.end_offsets(tps)).items()}
        else:
            ends = {tp.partition: until.get(tp.partition, 0) for tp in tps}
        origin = {p: max(firsts[p], (start or {}).get(p, 0)) for p in firsts}
        for tp in tps:
            consumer.seek(tp, origin[tp.partition])
        if on_ends is not None:
            on_ends(origin, ends)
        remaining = [tp for tp in tps if origin[tp.partition] < ends[tp.partition]]
        if remaining != tps:
            consumer.pause(*[tp for tp in tps if tp not in remaining])
        while remaining:
            fetched = await consumer.getmany(*remaining, timeout_ms=500, max_records=max_records)
            batch = [
                r for tp in sorted(fetched) for r in fetched[tp] if r.offset < ends[tp.partition]
            ]
            if batch:
                yield batch
            done = []
            for tp in remaining:
                if await consumer.position(tp) >= ends[tp.partition]:
                    done.append(tp)
            for tp in done:
                consumer.pause(tp)
                remaining.remove(tp)
    except KafkaError as exc:
        raise ConsumerError(f"cannot read {topic}: {exc}") from exc
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
