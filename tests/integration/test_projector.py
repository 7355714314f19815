"""The Projector against the real broker and a real DuckDB file.

Events are made by the decider's own ``decide`` and encoded by ``streams.serde``;
the projector folds them, resumes from the positions in the file, drops a duplicate
and sends garbage to the dead-letter topic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from projections.errors import StoreError
from projections.fold import Batch
from projections.projector import Projector
from projections.queries import Queries
from projections.store import Store
from schemas import default_codec
from streams.domain import commands as c
from streams.domain import process
from streams.domain.aggregates import stream_key
from streams.domain.events import Event, StepDefinition
from streams.serde import encode_event
from streams.topics import Topics, ensure_topics

pytestmark = pytest.mark.integration

T0 = 1_767_225_600_000_000
PARTITIONS = 2
TIMEOUT = 30.0


class History:
    """Processes decided command by command, as the decider would."""

    def __init__(self) -> None:
        self.states: dict[str, process.ProcessState | None] = {}
        self.clock = T0

    def decide(self, pid: str, *bodies: c.Body, account: str = "acme") -> list[Event]:
        out: list[Event] = []
        for body in bodies:
            self.clock += 1_000
            cmd = c.Command(
                f"cmd-{self.clock}", "process", pid, self.clock, account, "tester", "r", "r", body
            )
            for event in process.decide(self.states.get(pid), cmd):
                self.states[pid] = process.evolve(self.states.get(pid), event)
                out.append(event)
        return out


def lifecycle(history: History, pid: str, account: str = "acme") -> list[Event]:
    steps = (StepDefinition("fetch", "Fetch", 1), StepDefinition("check", "Check", 2))
    return history.decide(
        pid,
        c.CreateProcess("scan", "site-1", '{"url":"https://example.org"}', steps),
        c.StartStep("fetch"),
        c.ReportProgress(50.0, "half way"),
        c.CompleteStep("fetch"),
        c.CompleteProcess("report-1", '{"pages":2}'),
        account=account,
    )


def key_of(event: Event) -> bytes:
    return stream_key(event.aggregate_type, event.aggregate_id).encode()


async def produce(
    bootstrap: str, topic: str, records: Sequence[tuple[bytes | None, bytes]], **options: object
) -> list[tuple[int, int]]:
    """Send ``(key, value)`` records in order; their (partition, offset)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **options)
    await producer.start()
    try:
        if "transactional_id" in options:
            async with producer.transaction():
                sent = [await producer.send(topic, value=v, key=k) for k, v in records]
        else:
            sent = [await producer.send(topic, value=v, key=k) for k, v in records]
        done = await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return [(m.partition, m.offset) for m in done]


def encoded(events: Sequence[Event]) -> list[tuple[bytes | None, bytes]]:
    codec = default_codec()
    return [(key_of(e), encode_event(codec, e)) for e in events]


async def project_until_end(store: Store, bootstrap: str, topics: Topics) -> Projector:
    """Run a projector until it has applied the whole events topic, then stop it."""
    projector = Projector(store, bootstrap=bootstrap, topics=topics, poll_timeout_ms=50)
    await projector.start()
    task = asyncio.create_task(projector.run())
    try:
        assert await projector.catch_up(TIMEOUT), "the projector did not reach the end"
    finally:
        await projector.stop()
        await task
    return projector


async def dead_letters(bootstrap: str, topic: str, expected: int) -> list[dict[str, bytes]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: list[dict[str, bytes]] = []
    try:
        async with asyncio.timeout(TIMEOUT):
            while len(found) < expected:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for r in records:
                        found.append({**dict(r.headers), "value": r.value or b""})
    finally:
        await consumer.stop()
    return found


def nonzero(positions: dict[int, int]) -> dict[int, int]:
    """Positions of the partitions that had records (only those are stored)."""
    return {p: o for p, o in positions.items() if o}


def stored_state(store: Store, pid: str) -> process.ProcessState:
    return store.load_processes([pid])[pid]


def test_projects_resumes_drops_duplicates_and_dead_letters_garbage(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    topics = Topics(topic_prefix)
    path = tmp_path / "read.duckdb"
    history = History()

    async def scenario() -> None:
        await ensure_topics(kafka_bootstrap, topics, PARTITIONS)
        first = [
            *lifecycle(history, "p-1"),
            *lifecycle(history, "p-2"),
            *lifecycle(history, "p-4"),
            *lifecycle(history, "p-5"),
            *lifecycle(history, "o-1", "other"),
        ]
        await produce(kafka_bootstrap, topics.events, encoded(first))

        with Store(path) as store:
            seen: list[Event] = []
            projector = Projector(store, bootstrap=kafka_bootstrap, topics=topics)
            projector.listeners.append(seen.extend)
            await projector.start()
            task = asyncio.create_task(projector.run())
            assert await projector.catch_up(TIMEOUT)
            assert projector.applied == await projector.end_offsets()
            await projector.stop()
            await task
            assert sorted(seen, key=lambda e: (e.aggregate_id, e.seq)) == sorted(
                first, key=lambda e: (e.aggregate_id, e.seq)
            )
            assert projector.stats.events_applied == len(first)
            assert all(projector.applied.values()), "the keys should use every partition"
            for pid in ("p-1", "p-2", "p-4", "p-5", "o-1"):
                assert stored_state(store, pid) == history.states[pid]
            assert store.positions(topics.events) == nonzero(projector.applied)
            assert store.query("SELECT count(*) FROM events") == [(len(first),)]
            first_positions = store.positions(topics.events)

        # More events, one re-published duplicate, garbage, and a transaction.
        more = history.decide("p-2", c.DeleteProcess()) + lifecycle(history, "p-3")
        duplicate = encoded(first[:1])
        garbage: list[tuple[bytes | None, bytes]] = [(b"process:p-9", b"\xc3\x01 not a record")]
        await produce(kafka_bootstrap, topics.events, encoded(more[:2]) + duplicate + garbage)
        await produce(
            kafka_bootstrap,
            topics.events,
            encoded(more[2:]),
            transactional_id=f"{topic_prefix}tx",
            enable_idempotence=True,
        )

        with Store(path) as store:  # reopened: only the file remembers
            assert store.positions(topics.events) == first_positions
            projector = await project_until_end(store, kafka_bootstrap, topics)
            stats = projector.stats
            assert stats.events_applied == len(more)
            assert stats.duplicates_dropped == 1
            assert stats.dead_lettered == 1
            assert store.query(
                "SELECT count(*), count(DISTINCT (aggregate_type, aggregate_id, seq)) FROM events"
            ) == [(len(first) + len(more), len(first) + len(more))]
            assert stored_state(store, "p-2") == history.states["p-2"]
            assert stored_state(store, "p-3") == history.states["p-3"]
            queries = Queries(store)
            assert queries.get_process("acme", "p-2") is None  # deleted
            assert queries.get_process("acme", "p-3") is not None
            assert queries.get_process("acme", "o-1") is None  # another account's
            # The transaction's commit marker is passed too, or this would hang.
            assert nonzero(projector.applied) == store.positions(topics.events)

        (letter,) = await dead_letters(kafka_bootstrap, topics.dlq, 1)
        # Framed as Avro (C3 01): the next 8 bytes read as a fingerprint no schema has.
        assert letter["reason"] == b"unknown_fingerprint"
        assert letter["source_topic"] == topics.events.encode()
        assert letter["value"] == garbage[0][1]
        assert int(letter["source_partition"]) in range(PARTITIONS)
        assert int(letter["source_offset"]) >= 0
        assert letter["error"]

    asyncio.run(scenario())


def test_a_reader_can_wait_for_its_own_write(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    topics = Topics(topic_prefix)
    history = History()

    async def scenario() -> None:
        await ensure_topics(kafka_bootstrap, topics, PARTITIONS)
        with Store(tmp_path / "read.duckdb") as store:
            projector = Projector(store, bootstrap=kafka_bootstrap, topics=topics)
            await projector.start()
            task = asyncio.create_task(projector.run())
            try:
                queries = Queries(store)
                for n in range(5):
                    created = history.decide(f"p-{n}", c.CreateProcess("scan"))
                    ((partition, offset),) = await produce(
                        kafka_bootstrap, topics.events, encoded(created)
                    )
                    assert await projector.wait_for(partition, offset, TIMEOUT)
                    found = await asyncio.to_thread(queries.get_process, "acme", f"p-{n}")
                    assert found == history.states[f"p-{n}"]
                assert not await projector.wait_for(0, 10_000, timeout=0.05)
            finally:
                await projector.stop()
                await task

    asyncio.run(scenario())


class FailingStore(Store):
    """A store whose ``fail_at``-th write fails (after rolling back, as a real one does)."""

    def __init__(self, path: Path, fail_at: int) -> None:
        super().__init__(path)
        self.writes = 0
        self.fail_at = fail_at

    def write(self, batch: Batch) -> bool:
        self.writes += 1
        if self.writes == self.fail_at:
            raise StoreError("disk full (simulated)")
        return super().write(batch)


def test_a_failed_write_stops_the_run_and_the_next_run_resumes(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    topics = Topics(topic_prefix)
    history = History()
    path = tmp_path / "read.duckdb"

    async def scenario() -> None:
        await ensure_topics(kafka_bootstrap, topics, PARTITIONS)
        events = [e for n in range(30) for e in lifecycle(history, f"p-{n}")]
        # Small batches: the first commits, the second fails, later ones never start.
        store = FailingStore(path, fail_at=2)
        with store:
            projector = Projector(store, bootstrap=kafka_bootstrap, topics=topics, max_records=20)
            await produce(kafka_bootstrap, topics.events, encoded(events))
            with pytest.raises(StoreError):
                await asyncio.wait_for(projector.run(), TIMEOUT)
            assert len(projector._cache) == 0  # only committed state may be cached
            applied_once = store.query("SELECT count(*) FROM events")[0][0]
            assert 0 < applied_once < len(events)

            await projector.start()  # the same projector, again
            task = asyncio.create_task(projector.run())
            assert await projector.catch_up(TIMEOUT)
            await projector.stop()
            await task
            assert store.query(
                "SELECT count(*), count(DISTINCT (aggregate_id, seq)) FROM events"
            ) == [(len(events), len(events))]
            for n in range(30):
                assert stored_state(store, f"p-{n}") == history.states[f"p-{n}"]
            assert projector.stats.duplicates_dropped == 0

    asyncio.run(scenario())
