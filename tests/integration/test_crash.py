"""Crash test: SIGKILL the node (and once the decider) while 20,000 events stream in.

The read model the node ends with must equal a fresh rebuild from offset 0, row for
row, table by table: nothing lost, nothing applied twice.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
import uuid
from pathlib import Path

import duckdb
import pytest

from projections.projector import Projector
from projections.store import Store
from runledger.node import DB_FILE
from schemas import default_codec
from streams import serde
from streams.domain import aggregates
from streams.domain.commands import Command, parse_body
from streams.publisher import Publisher
from streams.topics import Topics
from tests.integration.conftest import Stack, start_stack

pytestmark = pytest.mark.integration

PROCESSES = 2_000
# create → 1 event; step start on a pending process → started + step_started;
# 5 progress → 5; step complete → 1; complete → 1: 10 events per Process.
EVENTS_PER_PROCESS = 10
CHUNK = 600  # commands per burst; bursts are paced so the kills land mid-stream
PAUSE_S = 0.25


def _commands(account: str) -> list[Command]:
    out = []
    for _ in range(PROCESSES):
        pid = str(uuid.uuid4())
        script = [
            ("process.create", {"type": "crash.test", "steps": [{"id": "s1"}]}),
            ("process.step_start", {"step_id": "s1"}),
            *[("process.progress", {"progress": p}) for p in (10, 30, 50, 70, 90)],
            ("process.step_complete", {"step_id": "s1"}),
            ("process.complete", {"object_id": pid}),
        ]
        for name, fields in script:
            cid = str(uuid.uuid4())
            body = parse_body(name, fields)
            out.append(
                Command(
                    cid, "process", pid, time.time_ns() // 1000, account, "crash", cid, cid, body
                )
            )
    return out


async def _produce(stack: Stack, commands: list[Command], done: threading.Event) -> None:
    codec = default_codec()
    publisher = Publisher(stack.bootstrap, client_id="crash-test")
    await publisher.start()
    try:
        topic = Topics(stack.prefix).commands
        for start in range(0, len(commands), CHUNK):
            futures = []
            for cmd in commands[start : start + CHUNK]:
                key = aggregates.stream_key(cmd.aggregate_type, cmd.aggregate_id).encode()
                futures.append(await publisher.send(topic, key, serde.encode_command(codec, cmd)))
            await asyncio.gather(*futures)
            await asyncio.sleep(PAUSE_S)
    finally:
        await publisher.stop()
        done.set()


async def _rebuild(stack: Stack, path: Path) -> None:
    store = Store(path).open()
    projector = Projector(store, bootstrap=stack.bootstrap, topics=Topics(stack.prefix))
    task = asyncio.create_task(projector.run())
    try:
        deadline = time.monotonic() + 120
        while not projector.applied:
            assert time.monotonic() < deadline, "the rebuild never started"
            await asyncio.sleep(0.1)
        assert await projector.catch_up(120), "the rebuild did not reach the end of the log"
    finally:
        await projector.stop()
        await task
        store.close()


def _tables(path: Path) -> dict[str, list[tuple[object, ...]]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        names = [
            r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        ]
        return {
            n: con.execute(f'SELECT * FROM "{n}" ORDER BY ALL').fetchall() for n in sorted(names)
        }
    finally:
        con.close()


def test_sigkilled_node_ends_equal_to_a_fresh_rebuild(kafka_bootstrap: str, tmp_path: Path) -> None:
    stack = start_stack(kafka_bootstrap, tmp_path / "stack")
    try:
        client = stack.client("crash")
        account = "crash"
        done = threading.Event()
        producer = threading.Thread(
            target=lambda: asyncio.run(_produce(stack, _commands(account), done)), daemon=True
        )
        producer.start()
        kills = 0
        while not done.is_set() or kills < 3:
            time.sleep(1.5)
            stack.kill("node", signal.SIGKILL)
            kills += 1
            if kills == 2:
                stack.kill("decider", signal.SIGKILL)
                stack.start("decider")
            stack.start("node")
            if kills >= 6:
                break
        producer.join(120)
        assert done.is_set(), "the producer did not finish"
        assert kills >= 3

        # Let the node catch up with everything the decider will write.
        deadline = time.monotonic() + 180
        expected = PROCESSES * EVENTS_PER_PROCESS
        while True:
            page = client.get(
                "/process", params={"type": "crash.test", "status": "completed", "wait": "true"}
            )
            assert page.status_code == 200, page.text
            if page.json()["count"] == PROCESSES:
                break
            assert time.monotonic() < deadline, (
                f"only {page.json()['count']} of {PROCESSES} completed"
            )
            time.sleep(1)
        stack.kill("node", signal.SIGTERM)

        live = _tables(stack.data_dir / DB_FILE)
        fresh_path = tmp_path / "fresh.duckdb"
        asyncio.run(_rebuild(stack, fresh_path))
        fresh = _tables(fresh_path)

        crash_events = [r for r in fresh["events"] if r[0] == "process"]
        assert len(crash_events) == expected
        assert set(live) == set(fresh)
        for table in fresh:
            assert live[table] == fresh[table], f"table {table} differs from a fresh rebuild"
    finally:
        stack.stop()
