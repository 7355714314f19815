"""The consumer helper (streams.consumer) as a service uses it, against the real broker
on a ledger of the test's own: a handler that raises mid-batch, restarts from the
stored position, and corrupt messages on the topic. What docs/consumers.md promises:
exactly-once effects when the position is stored with them, at-least-once when it is
stored after them, and never a skipped event."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from streams.consumer import (
    ConsumerError,
    Delivery,
    JsonFilePositions,
    LedgerConsumer,
    Undecodable,
)
from tests.integration.conftest import free_port
from tests.integration.drill_events import make_ledger, write_events

pytestmark = pytest.mark.integration

Key = tuple[str, int]


class HandlerFailed(Exception):
    pass


def _key(d: Delivery) -> Key:
    return d.event.aggregate_id, d.event.seq


async def _drain(consumer: LedgerConsumer, want: int, handle: Callable[[Delivery], None]) -> None:
    """``async for`` until ``want`` events were handled; TimeoutError after 20 s."""
    handled = 0
    async with asyncio.timeout(20):
        async for d in consumer:
            handle(d)
            handled += 1
            if handled == want:
                return


def test_async_for_storing_positions_after_each_event_resumes_at_the_failed_one(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """The at-least-once service: handle, then store ``consumer.positions``. Its handler
    raises at the 7th event of a 20-event batch; the restart must begin with that event.
    (``positions`` used to move past the whole batch at once: 13 events were lost.)"""
    topic = asyncio.run(make_ledger(kafka_bootstrap, topic_prefix))
    written = asyncio.run(write_events(kafka_bootstrap, topic, 20))
    store = JsonFilePositions(tmp_path / "positions.json")
    handled: list[Key] = []

    async def run(fail_at: int | None) -> None:
        async with LedgerConsumer(kafka_bootstrap, topic, positions=store.load()) as consumer:

            def handle(d: Delivery) -> None:
                if len(handled) == fail_at:
                    raise HandlerFailed
                handled.append(_key(d))
                store.save(consumer.positions)

            await _drain(consumer, 20 - len(handled), handle)

    with pytest.raises(HandlerFailed):
        asyncio.run(run(fail_at=6))
    assert len(handled) == 6
    asyncio.run(run(fail_at=None))
    assert sorted(handled) == sorted(written)  # none twice, none skipped
    assert sum(store.load().values()) == 20


def test_a_loop_left_by_an_exception_goes_on_after_the_last_event_it_was_given(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """In-process retry: the rest of the batch is not lost when ``async for`` is left
    and started again on the same consumer."""
    topic = asyncio.run(make_ledger(kafka_bootstrap, topic_prefix))
    written = asyncio.run(write_events(kafka_bootstrap, topic, 20))
    given: list[Key] = []

    async def run() -> None:
        async with LedgerConsumer(kafka_bootstrap, topic) as consumer:

            def handle(d: Delivery) -> None:
                given.append(_key(d))
                if len(given) == 3:
                    raise HandlerFailed

            with pytest.raises(HandlerFailed):
                await _drain(consumer, 20, handle)
            await _drain(consumer, 17, handle)

    asyncio.run(run())
    assert sorted(given) == sorted(written)


def test_exactly_once_with_the_position_in_the_same_transaction(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """docs/consumers.md's failure_counter pattern: one SQLite transaction per batch
    holds the effects and the position. A handler that raises mid-batch rolls both
    back; the restart redoes the batch, and every event counts once."""
    topic = asyncio.run(make_ledger(kafka_bootstrap, topic_prefix))
    written = asyncio.run(write_events(kafka_bootstrap, topic, 40))
    db = sqlite3.connect(tmp_path / "service.db")
    db.execute("CREATE TABLE seen (pid TEXT, seq INTEGER)")
    db.execute("CREATE TABLE position (partition INTEGER PRIMARY KEY, next INTEGER)")
    calls = 0

    async def run(fail_at: int | None) -> None:
        nonlocal calls
        stored = dict(db.execute("SELECT partition, next FROM position").fetchall())
        async with LedgerConsumer(kafka_bootstrap, topic, positions=stored) as consumer:
            deadline = time.monotonic() + 20
            while db.execute("SELECT count(*) FROM seen").fetchone()[0] < 40:
                assert time.monotonic() < deadline
                batch = await consumer.poll(0.5)
                with db:
                    for d in batch:
                        calls += 1
                        if calls == fail_at:
                            raise HandlerFailed
                        db.execute("INSERT INTO seen VALUES (?, ?)", _key(d))
                    db.executemany(
                        "INSERT OR REPLACE INTO position VALUES (?, ?)",
                        consumer.positions.items(),
                    )

    with pytest.raises(HandlerFailed):
        asyncio.run(run(fail_at=7))
    asyncio.run(run(fail_at=None))
    assert sorted(db.execute("SELECT pid, seq FROM seen").fetchall()) == sorted(written)
    db.close()


def test_a_corrupt_message_without_a_callback_is_logged_counted_and_passed(
    kafka_bootstrap: str, topic_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    topic = asyncio.run(make_ledger(kafka_bootstrap, topic_prefix))
    written = asyncio.run(write_events(kafka_bootstrap, topic, 10, garbage_after=2))
    got: list[Key] = []

    async def run() -> int:
        async with LedgerConsumer(kafka_bootstrap, topic) as consumer:
            await _drain(consumer, 10, lambda d: got.append(_key(d)))
            return consumer.skipped

    with caplog.at_level(logging.WARNING, logger="streams.consumer"):
        assert asyncio.run(run()) == 1
    assert sorted(got) == sorted(written)
    [record] = [r for r in caplog.records if r.name == "streams.consumer"]
    assert "skipped the undecodable message at partition" in record.getMessage()
    assert topic in record.getMessage() and "C3 01" in record.getMessage()


def test_a_callback_that_raises_stops_the_poll_and_loses_nothing(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """A service may refuse to go past a corrupt message (its callback raises): poll
    raises, and the events fetched with it are read again by the next poll rather
    than dropped (the client had already moved past them)."""
    topic = asyncio.run(make_ledger(kafka_bootstrap, topic_prefix))
    written = asyncio.run(write_events(kafka_bootstrap, topic, 10, garbage_after=2))
    refusals: list[Undecodable] = []

    def refuse_once(u: Undecodable) -> None:
        refusals.append(u)
        if len(refusals) == 1:
            raise HandlerFailed(u.error)

    async def run() -> list[Key]:
        async with LedgerConsumer(kafka_bootstrap, topic, on_undecodable=refuse_once) as consumer:
            with pytest.raises(HandlerFailed):
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    await consumer.poll(0.5)
            before = consumer.positions
            got: list[Key] = []
            deadline = time.monotonic() + 20
            while len(got) < 10 and time.monotonic() < deadline:
                got += [_key(d) for d in await consumer.poll(0.5)]
            assert all(consumer.positions[p] >= o for p, o in before.items())
            return got

    got = asyncio.run(run())
    assert sorted(got) == sorted(written)
    assert len(refusals) == 2 and refusals[0].offset == refusals[1].offset


def test_a_broker_nobody_runs_raises_consumer_error_at_once() -> None:
    async def start() -> None:
        async with LedgerConsumer(f"127.0.0.1:{free_port()}", "t.ledger.events"):
            pass

    started = time.monotonic()
    with pytest.raises(ConsumerError, match="cannot consume t.ledger.events"):
        asyncio.run(start())
    assert time.monotonic() - started < 15


@pytest.mark.parametrize(
    ("stored", "message"),
    [
        ({0: 99_999}, "stored position 99999 of partition 0 is outside"),
        ({0: 1, 5: 3}, "name partition 5, which"),
    ],
    ids=["past-the-end", "unknown-partition"],
)
def test_positions_that_cannot_be_of_this_topic_are_refused(
    kafka_bootstrap: str, topic_prefix: str, stored: dict[int, int], message: str
) -> None:
    """Positions kept from another ledger (or a topic made again): the client used to
    restart such a partition from offset 0 without a word, repeating every effect."""
    topic = asyncio.run(make_ledger(kafka_bootstrap, topic_prefix))
    asyncio.run(write_events(kafka_bootstrap, topic, 10))

    async def start() -> list[Delivery]:
        async with LedgerConsumer(kafka_bootstrap, topic, positions=stored) as consumer:
            return await consumer.poll(2.0)

    with pytest.raises(ConsumerError, match=message):
        asyncio.run(start())
