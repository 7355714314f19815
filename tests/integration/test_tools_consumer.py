"""streams.consumer against a real broker: typed events, exact resume from a stored
position, and an undecodable message skipped with a callback."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from streams.consumer import Delivery, JsonFilePositions, LedgerConsumer, Undecodable
from streams.domain.events import Event
from streams.publisher import Publisher
from streams.topics import Topics

pytestmark = pytest.mark.integration


def make_process(stack: Any, reports: int) -> str:
    client = stack.client("acme")
    deadline = time.monotonic() + 15
    while True:
        r = client.post("/process", json={"type": "consumer.test"}, params={"wait": "true"})
        if r.status_code != 401 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert r.status_code == 201, r.text
    pid = str(r.json()["id"])
    for i in range(reports):
        r = client.post(f"/process/{pid}/progress", json={"progress": i}, params={"wait": "true"})
        assert r.status_code == 200, r.text
    return pid


async def drain(consumer: LedgerConsumer, idle_s: float = 1.5) -> list[Delivery]:
    got: list[Delivery] = []
    last = time.monotonic()
    while time.monotonic() - last < idle_s:
        batch = await consumer.poll(0.3)
        if batch:
            got.extend(batch)
            last = time.monotonic()
    return got


def test_resume_from_a_stored_position_and_skip_undecodable(stack: Any, tmp_path: Path) -> None:
    topic = Topics(stack.prefix).events
    store = JsonFilePositions(tmp_path / "positions.json")
    first = make_process(stack, 3)

    async def first_run() -> list[Delivery]:
        async with LedgerConsumer(stack.bootstrap, topic, positions=store.load()) as consumer:
            got = await drain(consumer)
            store.save(consumer.positions)
            return got

    seen = asyncio.run(first_run())
    assert all(isinstance(d.event, Event) for d in seen)
    assert [d.event.type for d in seen if d.event.aggregate_id == first] == [
        "process.created",
        "process.started",  # the first report starts a pending process
        *["process.progress"] * 3,
    ]
    assert store.load() and all(isinstance(p, int) for p in store.load())

    async def junk() -> None:
        publisher = Publisher(stack.bootstrap, client_id="consumer-test")
        await publisher.start()
        try:
            await publisher.send_and_wait(topic, b"junk", b"\x00not an event")
        finally:
            await publisher.stop()

    asyncio.run(junk())
    second = make_process(stack, 1)
    skipped: list[Undecodable] = []

    async def second_run() -> list[Delivery]:
        async with LedgerConsumer(
            stack.bootstrap, topic, positions=store.load(), on_undecodable=skipped.append
        ) as consumer:
            got = await drain(consumer)
            store.save(consumer.positions)
            return got

    resumed = asyncio.run(second_run())
    ids = {d.event.event_id for d in resumed}
    assert not ids & {d.event.event_id for d in seen}, "an event was delivered twice"
    assert {d.event.aggregate_id for d in resumed} == {second}
    assert len(skipped) == 1 and skipped[0].value == b"\x00not an event"
    assert asyncio.run(second_run()) == []  # nothing new: nothing delivered
