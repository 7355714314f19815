"""Review of the write path on the real broker: the decider through bad commands, a
crash between sending events and committing, a rebuild over events it must skip, and
the worked example of docs/consumers.md run as written."""

from __future__ import annotations

import asyncio
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from schemas import default_codec
from streams import serde
from streams.decider import Decider
from streams.domain import aggregates
from streams.domain import commands as c
from streams.domain import events as e
from streams.domain.commands import Command
from streams.publisher import Publisher
from streams.topics import Topics, ensure_topics

pytestmark = pytest.mark.integration

CODEC = default_codec()
T0 = 1_767_225_600_000_000
ROOT = Path(__file__).parents[2]


def command(cid: str, pid: str, body: c.Body) -> Command:
    return Command(cid, "process", pid, T0, "acme", "tester", pid, "", body)


def key(pid: str) -> bytes:
    return aggregates.stream_key("process", pid).encode()


async def produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for k, value in messages:
            await producer.send_and_wait(topic, value, key=k)
    finally:
        await producer.stop()


async def read_all(
    bootstrap: str, topic: str, until: Callable[[list[Any]], bool], committed: bool = True
) -> list[Any]:
    """Records of ``topic`` from the start until ``until(records)`` (60 s at most)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        isolation_level="read_committed" if committed else "read_uncommitted",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    got: list[Any] = []
    try:
        deadline = time.monotonic() + 60
        while not until(got):
            assert time.monotonic() < deadline, f"{topic}: only {len(got)} records"
            for records in (await consumer.getmany(timeout_ms=300)).values():
                got.extend(records)
    finally:
        await consumer.stop()
    return got


async def committed_offsets(bootstrap: str, topics: Topics, group: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topics.commands) or set()
        if not parts:
            await consumer._client.force_metadata_update()  # noqa: SLF001
            parts = consumer.partitions_for_topic(topics.commands) or set()
        total = 0
        for p in parts:
            total += await consumer.committed(TopicPartition(topics.commands, p)) or 0
        return total
    finally:
        await consumer.stop()


def test_bad_commands_go_to_the_dlq_and_the_decider_goes_on(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topics = Topics(topic_prefix)
    bad_body = CODEC.encode(
        "command",
        {
            "command_id": "bad-body",
            "aggregate_type": "process",
            "aggregate_id": "p1",
            "name": "process.progress",
            "issued_at": T0,
            "account": "acme",
            "actor": "x",
            "correlation_id": "c",
            "causation_id": "c",
            "payload_json": "{not json",
            "reply_to": None,
        },
    )
    unknown = CODEC.encode(
        "command",
        {**CODEC.decode(bad_body)[1], "command_id": "unknown", "name": "process.fly",
         "payload_json": "{}"},
    )  # fmt: skip
    garbage = CODEC.registry.latest("command").header + b"\xff" * 30
    messages: list[tuple[bytes | None, Any]] = [
        (key("p1"), None),  # a tombstone
        (key("p1"), bad_body),
        (key("p1"), unknown),
        (key("p1"), garbage),
        (key("p1"), serde.encode_command(CODEC, command("ok-1", "p1", c.CreateProcess("s")))),
    ]

    async def scenario() -> tuple[list[Any], list[Any], int]:
        await ensure_topics(kafka_bootstrap, topics, 1)
        await produce(kafka_bootstrap, topics.commands, messages)
        decider = Decider(kafka_bootstrap, topics, CODEC)
        task = asyncio.create_task(decider.run())
        try:
            outcomes = await read_all(kafka_bootstrap, topics.outcomes, lambda r: len(r) >= 3)
            dead = await read_all(kafka_bootstrap, topics.dlq, lambda r: len(r) >= 4)
        finally:
            decider.stop()
            await asyncio.wait_for(task, 60)
        done = await committed_offsets(kafka_bootstrap, topics, decider.group_id)
        return outcomes, dead, done

    outcomes, dead, done = asyncio.run(scenario())
    # A record that decodes but whose body does not is rejected too (its sender may
    # wait: tests/integration/test_decider_bad_body.py); the rest only dead-lettered.
    decoded = [serde.decode_outcome(CODEC, r.value) for r in outcomes]
    assert [(o.command_id, o.accepted) for o in decoded] == [
        ("bad-body", False),
        ("unknown", False),
        ("ok-1", True),
    ]
    assert [dict(r.headers)["source_offset"] for r in dead] == [b"0", b"1", b"2", b"3"]
    reasons = [dict(r.headers)["reason"].decode() for r in dead]
    errors = [dict(r.headers)["error"].decode() for r in dead]
    assert reasons == ["undecodable", "unusable_body", "unusable_body", "undecodable"]
    assert "no value" in errors[0] and "unknown command 'process.fly'" in errors[2]
    assert done == len(messages)


def test_a_crash_before_the_commit_leaves_no_duplicate_for_read_committed(
    kafka_bootstrap: str, topic_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first batch's events reach the broker, then sending the offsets fails: the
    transaction aborts, the decider rebuilds and decides again; read_committed readers
    see each event once, with gapless seqs, while the aborted copies exist."""
    topics = Topics(topic_prefix)
    commands = [command("a", "p1", c.CreateProcess("s")), command("b", "p1", c.StartProcess())]
    commands += [command(f"p{i}", "p1", c.ReportProgress(float(i))) for i in range(5)]
    real = Publisher.send_offsets
    failures = iter([True])

    async def crash_once(self: Publisher, offsets: Any, group_id: str) -> None:
        if next(failures, False):
            raise RuntimeError("crash between the events and the commit")
        await real(self, offsets, group_id)

    monkeypatch.setattr(Publisher, "send_offsets", crash_once)

    async def scenario() -> tuple[list[Any], list[Any]]:
        await ensure_topics(kafka_bootstrap, topics, 1)
        await produce(
            kafka_bootstrap,
            topics.commands,
            [(key("p1"), serde.encode_command(CODEC, cmd)) for cmd in commands],
        )
        decider = Decider(kafka_bootstrap, topics, CODEC)
        task = asyncio.create_task(decider.run())
        try:
            await read_all(kafka_bootstrap, topics.outcomes, lambda r: len(r) >= len(commands))
            committed = await read_all(kafka_bootstrap, topics.events, lambda r: len(r) >= 7)
            raw = await read_all(
                kafka_bootstrap, topics.events, lambda r: len(r) >= 8, committed=False
            )
        finally:
            decider.stop()
            await asyncio.wait_for(task, 60)
        return committed, raw

    committed, raw = asyncio.run(scenario())
    events = [serde.decode_event(CODEC, r.value) for r in committed]
    assert [ev.seq for ev in events] == list(range(1, 8))
    assert len({ev.event_id for ev in events}) == 7
    written = [serde.decode_event(CODEC, r.value).event_id for r in raw]
    assert len(written) > len(set(written)), "the aborted batch's events were written"
    assert set(written) <= {ev.event_id for ev in events}  # same ids: deterministic


def test_a_rebuild_skips_events_it_cannot_fold_and_the_decider_starts(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topics = Topics(topic_prefix)

    def event(pid: str, seq: int, data: e.Payload) -> bytes:
        ev = e.Event(
            e.event_id_for("process", pid, seq), "process", pid, seq, data.TYPE, T0,
            "acme", "x", f"old-{pid}-{seq}", "c", "", data,
        )  # fmt: skip
        return serde.encode_event(CODEC, ev)

    ledger: list[tuple[bytes | None, Any]] = [
        (key("p1"), event("p1", 1, e.ProcessCreated("s"))),
        (key("p1"), b"\xc3\x01garbage!"),  # undecodable
        (key("p1"), None),  # a tombstone
        (key("p2"), event("p2", 1, e.ProcessStarted())),  # evolve refuses: no created
        (key("p1"), event("p1", 3, e.ProcessStarted())),  # leaves a gap after seq 1
    ]

    async def scenario() -> list[serde.Outcome]:
        await ensure_topics(kafka_bootstrap, topics, 1)
        await produce(kafka_bootstrap, topics.events, ledger)
        await produce(
            kafka_bootstrap,
            topics.commands,
            [(key("p1"), serde.encode_command(CODEC, command("new", "p1", c.StartProcess())))],
        )
        decider = Decider(kafka_bootstrap, topics, CODEC)
        task = asyncio.create_task(decider.run())
        try:
            found = await read_all(kafka_bootstrap, topics.outcomes, lambda r: len(r) >= 1)
        finally:
            decider.stop()
            await asyncio.wait_for(task, 60)
        return [serde.decode_outcome(CODEC, r.value) for r in found]

    [outcome] = asyncio.run(scenario())
    assert outcome.accepted, outcome
    assert [p.seq for p in outcome.events] == [2]  # after the folded seq 1, not the gap


def _worked_example(bootstrap: str, prefix: str) -> str:
    text = (ROOT / "docs" / "consumers.md").read_text()
    match = re.search(r"```python\n(\"\"\"failure_counter\.py.*?)```", text, re.S)
    assert match, "docs/consumers.md lost its worked example"
    code = match.group(1)
    assert '"127.0.0.1:9092"' in code and 'Topics(prefix="")' in code
    return code.replace('"127.0.0.1:9092"', repr(bootstrap)).replace(
        'Topics(prefix="")', f"Topics(prefix={prefix!r})"
    )


def test_the_worked_example_of_the_consumer_docs_counts_and_resumes(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    topics = Topics(topic_prefix)
    script = tmp_path / "failure_counter.py"
    script.write_text(_worked_example(kafka_bootstrap, topic_prefix))
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}

    def fail(accounts: list[str], tag: str) -> list[tuple[bytes | None, Any]]:
        out: list[tuple[bytes | None, Any]] = []
        for i, account in enumerate(accounts):
            pid = f"{tag}{i}"
            for cid, body in ((f"{pid}-c", c.CreateProcess("s")), (f"{pid}-f", c.FailProcess("x"))):
                cmd = Command(cid, "process", pid, T0, account, "t", pid, "", body)
                out.append((key(pid), serde.encode_command(CODEC, cmd)))
        return out

    def counts() -> dict[str, int]:
        db = sqlite3.connect(tmp_path / "failures.db")
        try:
            return dict(db.execute("SELECT account, n FROM failures").fetchall())
        except sqlite3.OperationalError:
            return {}
        finally:
            db.close()

    def run_until(expected: dict[str, int]) -> None:
        proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=env)
        try:
            deadline = time.monotonic() + 60
            while counts() != expected:
                assert proc.poll() is None, f"the example exited with {proc.returncode}"
                assert time.monotonic() < deadline, f"counts {counts()} != {expected}"
                time.sleep(0.2)
            time.sleep(1.0)  # polls past the last event without counting anything twice
            assert counts() == expected
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)

    async def feed(messages: list[tuple[bytes | None, Any]], outcomes: int) -> None:
        await ensure_topics(kafka_bootstrap, topics, 2)
        await produce(kafka_bootstrap, topics.commands, messages)
        decider = Decider(kafka_bootstrap, topics, CODEC)
        task = asyncio.create_task(decider.run())
        try:
            await read_all(kafka_bootstrap, topics.outcomes, lambda r: len(r) >= outcomes)
        finally:
            decider.stop()
            await asyncio.wait_for(task, 60)

    asyncio.run(feed(fail(["acme", "acme", "beta"], "a"), 6))
    run_until({"acme": 2, "beta": 1})
    asyncio.run(feed(fail(["beta", "gamma"], "b"), 10))
    run_until({"acme": 2, "beta": 2, "gamma": 1})  # resumed: nothing counted twice
