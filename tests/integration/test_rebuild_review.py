"""Review of ``replay_parallel`` against the real Projector, on a real broker.

The log holds committed transactions, an aborted one (its events must not count, and
the real events with the same seqs come after it), a duplicate, garbage, and a
partition with no record. The real Projector and the parallel replay (worker
processes, a tiny ``max_states`` so states go to the spill and back) must give the
same tables, positions included. Then the start of a partition is deleted, as
retention does: the replay must refuse and build nothing; and a replay up to offsets
past the log's end must refuse at once rather than wait for them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from projections.replay_parallel import ReplayError, replay_parallel, topic_ends
from projections.store import Store
from projections.verify import compare
from streams.consumer import partition_for
from streams.domain import commands as c
from streams.domain.aggregates import stream_key
from streams.domain.events import StepDefinition
from streams.topics import Topics, ensure_topics
from tests.integration.test_projector import History, encoded, produce, project_until_end

pytestmark = pytest.mark.integration

PARTITIONS = 4
STEPS = (StepDefinition("fetch", "Fetch", 1), StepDefinition("check", "Check", 2))


def _pids(count: int, avoid: int) -> list[str]:
    """Process ids whose events all land on partitions other than ``avoid``."""
    out, n = [], 0
    while len(out) < count:
        pid = f"p-{n}"
        if partition_for(f"process:{pid}".encode(), PARTITIONS) != avoid:
            out.append(pid)
        n += 1
    return out


async def _aborted(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", transactional_id=f"{topic}-abort"
    )
    await producer.start()
    try:
        await producer.begin_transaction()
        for key, value in records:
            await producer.send_and_wait(topic, value=value, key=key)
        await producer.abort_transaction()
    finally:
        await producer.stop()


async def _delete_start(bootstrap: str, topic: str, partition: int, before: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_records({TopicPartition(topic, partition): RecordsToDelete(before)})
    finally:
        await admin.close()


def test_parallel_replay_equals_the_projector_and_refuses_a_log_it_cannot_rebuild(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    topics = Topics(topic_prefix)
    empty = 3
    pids = _pids(8, avoid=empty)
    history = History()
    assert all(stream_key("process", pid) == f"process:{pid}" for pid in pids)

    async def write_log() -> None:
        await ensure_topics(kafka_bootstrap, topics, PARTITIONS)
        first = [
            e
            for pid in pids
            for e in history.decide(
                pid, c.CreateProcess("scan", "s", "{}", STEPS), c.StartStep("fetch")
            )
        ]
        await produce(
            kafka_bootstrap,
            topics.events,
            encoded(first),
            transactional_id=f"{topic_prefix}tx1",
            enable_idempotence=True,
        )
        # What an aborted decider transaction wrote: never part of the ledger. The
        # real events with those seqs come next.
        ghost = History()
        ghost.states = dict(history.states)
        ghost.clock = history.clock
        gone = [e for pid in pids for e in ghost.decide(pid, c.FailProcess("ghost"))]
        await _aborted(kafka_bootstrap, topics.events, encoded(gone))
        rest = [e for pid in pids for e in history.decide(pid, c.CompleteStep("fetch"))]
        rest += history.decide(pids[0], c.CancelProcess("enough"))
        garbage: list[tuple[bytes | None, bytes]] = [(b"process:p-0", b"\x00 junk")]
        await produce(
            kafka_bootstrap,
            topics.events,
            encoded(rest) + encoded(first[:2]) + garbage,
            transactional_id=f"{topic_prefix}tx2",
            enable_idempotence=True,
        )

    asyncio.run(write_log())
    ends = asyncio.run(topic_ends(kafka_bootstrap, topics.events))
    assert ends[empty] == 0 and all(ends[p] for p in ends if p != empty)

    live = tmp_path / "live.duckdb"
    with Store(live) as store:
        asyncio.run(project_until_end(store, kafka_bootstrap, topics))
    bulk = tmp_path / "bulk.duckdb"
    result = replay_parallel(
        bulk, kafka_bootstrap, topics.events, workers=2, max_states=1, chunk_events=2
    )
    assert result.duplicates == 2 and result.dead_letters == 1
    assert [chk.name for chk in compare(live, bulk) if not chk.equal] == []

    # Past the end: refused at once, nothing built.
    ahead = tmp_path / "ahead.duckdb"
    with pytest.raises(ReplayError, match="the log ends at"):
        replay_parallel(ahead, kafka_bootstrap, topics.events, until={0: ends[0] + 5})
    assert not list(tmp_path.glob("ahead*"))

    # Retention deleted the start of a partition: refused, nothing built.
    victim = next(p for p in ends if p != empty)
    asyncio.run(_delete_start(kafka_bootstrap, topics.events, victim, 2))
    cut = tmp_path / "cut.duckdb"
    with pytest.raises(ReplayError, match=f"partition {victim} of the log starts at offset 2"):
        replay_parallel(cut, kafka_bootstrap, topics.events, workers=2)
    assert not list(tmp_path.glob("cut*"))

    # The live projector refuses the same log for a new read model (it would miss the
    # deleted records); the complete model, whose positions are past the cut, goes on.
    from projections.errors import ProjectorError
    from projections.projector import Projector

    async def start(store: Store) -> None:
        projector = Projector(store, bootstrap=kafka_bootstrap, topics=topics)
        try:
            await projector.start()
        finally:
            await projector.stop()

    refused = pytest.raises(ProjectorError, match="retention")
    with Store(tmp_path / "fresh.duckdb") as fresh, refused:
        asyncio.run(start(fresh))
    with Store(live) as store:
        asyncio.run(start(store))
