"""The projector's watermark over transactions on the real broker (read_committed):
aborted records and transaction markers have no record that stands for them, yet the
watermark and the stored positions must pass them, or read-your-writes waits hang."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from projections.projector import Projector
from projections.store import Store
from streams.topics import Topics, ensure_topics
from tests.integration.test_projector import TIMEOUT, History, encoded, lifecycle, stored_state

pytestmark = pytest.mark.integration


def test_aborted_transactions_are_skipped_and_the_watermark_passes_their_markers(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    topics = Topics(topic_prefix)
    history = History()
    events = lifecycle(history, "p-1")
    # What a crashed decider had written before its transaction was aborted: the same
    # seqs with other content. read_committed must never show them.
    ghost = [replace(e, event_id=f"ghost-{e.seq}", actor="ghost") for e in events[1:3]]

    async def scenario() -> None:
        await ensure_topics(kafka_bootstrap, topics, 1)
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka_bootstrap,
            acks="all",
            enable_idempotence=True,
            transactional_id=f"{topic_prefix}tx",
        )
        await producer.start()
        try:

            async def send(records: list[tuple[bytes | None, bytes]], commit: bool) -> None:
                await producer.begin_transaction()
                for k, v in records:
                    await producer.send_and_wait(topics.events, value=v, key=k)
                if commit:
                    await producer.commit_transaction()
                else:
                    await producer.abort_transaction()

            await send(encoded(events[:1]), commit=True)
            await send(encoded(ghost), commit=False)
            await send(encoded(events[1:]), commit=True)
            await send(encoded(ghost), commit=False)  # the log ends with an abort marker
        finally:
            await producer.stop()

        with Store(tmp_path / "node.duckdb") as store:
            projector = Projector(
                store, bootstrap=kafka_bootstrap, topics=topics, poll_timeout_ms=50
            )
            await projector.start()
            ends = await projector.end_offsets()
            # 1 + 2 + 1 + (n-1) + 1 + 2 + 1 records and markers.
            assert ends == {0: len(events) + 8}
            task = asyncio.create_task(projector.run())
            try:
                assert await projector.catch_up(TIMEOUT), "the watermark stopped at a marker"
                last = len(events) + 3  # the last committed event's offset
                assert await projector.wait_for(0, last, 1.0)
            finally:
                await projector.stop()
                await task
            assert store.positions(topics.events) == ends
            stats = projector.stats
            assert (stats.events_applied, stats.duplicates_dropped) == (len(events), 0)
            assert stats.dead_lettered == 0
            assert stored_state(store, "p-1") == history.states["p-1"]
            (actors,) = store.query("SELECT count(*) FROM events WHERE actor = 'ghost'")
            assert actors == (0,)

    asyncio.run(scenario())
