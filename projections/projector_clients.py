"""The Kafka clients a projector reads through, and how they are opened.

Opening them is the resume half of "positions live next to the rows": check that the
read model belongs to this ledger's events topic, find every partition, check the log
holds everything the model has applied and still holds the next record it needs, and
seek each partition to its stored position. Apart from :mod:`projections.projector` so
that module reads as the pipeline that runs once the clients are open.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from projections.dead_letters import DeadLetterPublisher
from projections.errors import ProjectorError
from projections.store import Store
from streams.reader import read_committed_client


@dataclass(frozen=True, slots=True)
class ProjectorClients:
    """The clients of a started projector and the positions they were sought to."""

    consumer: AIOKafkaConsumer  # fetches: every partition assigned, no group
    offsets: AIOKafkaConsumer  # for end_offsets(): never assigned, never fetches
    dead_letters: DeadLetterPublisher
    partitions: list[TopicPartition]
    stored: dict[int, int]  # the next offset per partition, from the store


def check_retained(first: dict[TopicPartition, int], stored: dict[int, int]) -> None:
    """ProjectorError when a partition's log now starts after the next offset this read
    model needs (retention deleted records it never applied): starting anyway would
    build a model that silently misses them. The log must be kept whole."""
    for tp, offset in sorted(first.items()):
        needed = stored.get(tp.partition, 0)
        if offset > needed:
            raise ProjectorError(
                f"partition {tp.partition} of {tp.topic} starts at offset {offset}, but this "
                f"read model needs offset {needed} next: the records before it were "
                "deleted (retention), so it cannot be built from the log"
            )


def check_not_ahead(
    ends: dict[TopicPartition, int], stored: dict[int, int], topic: str, model: Path
) -> None:
    """ProjectorError when the read model at ``model`` has applied more of ``topic`` than
    the log holds: a stored position past its partition's end (``ends``: the high
    watermarks), or one of a partition the topic does not have. The log was wiped
    (``DIR/kafka`` deleted) or the topic re-created, and the model's rows are not this
    log's. Started anyway, the consumer sent a position past the end back to the
    beginning (``auto_offset_reset``), and the new log's events were folded in beside
    the old rows, with read-your-writes answering at once from the old positions.

    A position equal to the end is the normal resume; the high watermark, not the end a
    read_committed reader sees, so that an open transaction cannot cause a refusal."""
    by_partition = {tp.partition: end for tp, end in ends.items()}
    count = f"{len(by_partition)} partition{'' if len(by_partition) == 1 else 's'}"
    ahead = []
    for partition, position in sorted(stored.items()):
        end = by_partition.get(partition)
        if end is None:
            ahead.append(
                f"partition {partition} up to offset {position}, but {topic} has {count} now"
            )
        elif position > end:
            ahead.append(
                f"partition {partition} up to offset {position}, but that partition of the "
                f"log ends at offset {end}"
            )
    if ahead:
        raise ProjectorError(
            f"the read model {model} is ahead of its log: it has applied {topic} "
            f"{'; '.join(ahead)} (the log was wiped or the topic re-created; its rows are "
            f"not this log's). It was left as it was. To serve the log that exists, move "
            f"{model.name} away (the node rebuilds it from the log) or build one with "
            "`runledger replay --to NEW.duckdb`; to keep these rows, restore the log, or "
            "use another --data-dir for this ledger"
        )


async def log_ends(
    bootstrap: str, partitions: list[TopicPartition], *, client_id: str
) -> dict[TopicPartition, int]:
    """The high watermark of each of ``partitions``: the end offsets a read_uncommitted
    reader sees, past any transaction still open."""
    client = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id=f"{client_id}-ends",
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_uncommitted",
    )
    await client.start()
    try:
        return await client.end_offsets(partitions)
    finally:
        await client.stop()


def check_ledger(store: Store, topic: str) -> None:
    """ProjectorError when the store was built from another events topic (another
    topic prefix): its rows would be mixed with this ledger's, and this ledger's
    events dropped as duplicates of that one's (same ids, same seqs)."""
    others = [other for other in store.topics() if other != topic]
    if others:
        raise ProjectorError(
            f"the read model {store.path} was built from {', '.join(others)}, "
            f"not from {topic} (another RUNLEDGER_TOPIC_PREFIX?): use another "
            "--data-dir for this ledger, or the prefix it was built with"
        )


async def discover_partitions(
    bootstrap: str, topic: str, *, client_id: str, timeout_s: float
) -> list[TopicPartition]:
    """Every partition of ``topic``, from the cluster's metadata; ProjectorError when
    the topic is still missing after ``timeout_s``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id=f"{client_id}-admin")
    deadline = time.monotonic() + timeout_s
    try:
        await admin.start()
        while True:
            (described,) = await admin.describe_topics([topic])
            found = sorted(p["partition"] for p in described["partitions"])
            if described["error_code"] == 0 and found:
                return [TopicPartition(topic, p) for p in found]
            if time.monotonic() > deadline:
                raise ProjectorError(f"topic {topic} does not exist; create the topics first")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def open_clients(
    store: Store,
    topic: str,
    *,
    bootstrap: str,
    dlq_topic: str,
    client_id: str,
    start_timeout_s: float,
) -> ProjectorClients:
    """Connect, assign every partition of ``topic`` and seek to the positions in
    ``store``. ProjectorError when the broker or the topic is not there in time, or the
    log does not hold what the store has applied or still needs; nothing is left open
    and nothing is written to the store then."""
    consumer = read_committed_client(bootstrap, client_id)
    offsets = AIOKafkaConsumer(  # for end_offsets(): never assigned, never fetches
        bootstrap_servers=bootstrap,
        client_id=f"{client_id}-offsets",
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    # Made once the checks passed: a producer made and never started warns when collected.
    dead_letters: DeadLetterPublisher | None = None
    try:
        await consumer.start()
        await offsets.start()
        partitions = await discover_partitions(
            bootstrap, topic, client_id=client_id, timeout_s=start_timeout_s
        )
        consumer.assign(partitions)
        stored = await asyncio.to_thread(store.positions, topic)
        if stored:  # a new read model is behind any log
            ends = await log_ends(bootstrap, partitions, client_id=client_id)
            check_not_ahead(ends, stored, topic, store.path)
        # (on the offsets client: its first answer also loads its metadata)
        check_retained(await offsets.beginning_offsets(partitions), stored)
        for tp in partitions:
            if tp.partition in stored:
                consumer.seek(tp, stored[tp.partition])
            else:
                await consumer.seek_to_beginning(tp)
        dead_letters = DeadLetterPublisher(bootstrap, dlq_topic, client_id=f"{client_id}-dlq")
        await dead_letters.start()
    except BaseException as exc:
        await consumer.stop()
        await offsets.stop()
        if dead_letters is not None:
            await dead_letters.stop()
        if isinstance(exc, KafkaError):
            raise ProjectorError(f"cannot consume {topic}: {exc}") from exc
        raise
    return ProjectorClients(consumer, offsets, dead_letters, partitions, stored)
