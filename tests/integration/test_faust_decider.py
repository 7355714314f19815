"""The faust decider decides like the aiokafka decider: same events (types, seq, ids,
bytes) for the same commands, rejections with their reason, duplicates recognised, and
the Table's changelog brings the state back after a restart."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas import default_codec
from streams import serde
from streams.decider import Decider, DeciderStats
from streams.domain import aggregates
from streams.domain import commands as c
from streams.domain.commands import Command
from streams.domain.events import Event, StepDefinition
from streams.faust_decider import FaustDecider
from streams.topics import Topics, ensure_topics

pytestmark = pytest.mark.integration

PARTITIONS = 2
T0 = 1_767_225_600_000_000
CODEC = default_codec()


def command(command_id: str, pid: str, body: c.Body, at: int, account: str = "acme") -> Command:
    return Command(command_id, "process", pid, T0 + at, account, "tester", pid, "", body)


STEPS = (StepDefinition("fetch", "fetch", 1), StepDefinition("check", "check", 2))
COMMANDS = [
    command("a-create", "pa", c.CreateProcess("scan", steps=STEPS), 1),
    command("b-create", "pb", c.CreateProcess("case"), 2),
    command("a-s1", "pa", c.StartStep("fetch"), 3),
    command("b-progress", "pb", c.ReportProgress(40.0, "half"), 4),
    command("a-c1", "pa", c.CompleteStep("fetch", "ok"), 5),
    command("a-create", "pa", c.CreateProcess("scan", steps=STEPS), 1),  # redelivered
    command("b-fail", "pb", c.FailProcess("boom"), 6),
    command("a-done", "pa", c.CompleteProcess(object_id="r1"), 7),
    command("a-cancel", "pa", c.CancelProcess("too late"), 8),  # rejected: completed
    command("x-progress", "px", c.ReportProgress(5.0), 9),  # rejected: no such process
    command("b-retry", "pb", c.RetryProcess(), 10),
]


async def publish(bootstrap: str, topics: Topics, commands: list[Command]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for cmd in commands:
            key = aggregates.stream_key(cmd.aggregate_type, cmd.aggregate_id).encode()
            await producer.send_and_wait(topics.commands, serde.encode_command(CODEC, cmd), key=key)
    finally:
        await producer.stop()


async def read(bootstrap: str, topic: str, count: int, timeout: float = 60) -> list[bytes]:
    """The first ``count`` committed values of ``topic``, in partition order."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    values: dict[int, list[bytes]] = {}
    try:
        deadline = time.monotonic() + timeout
        while sum(map(len, values.values())) < count:
            assert time.monotonic() < deadline, f"only {values} of {count} in {topic}"
            for tp, records in (await consumer.getmany(timeout_ms=300)).items():
                values.setdefault(tp.partition, []).extend(r.value for r in records)
    finally:
        await consumer.stop()
    return [v for p in sorted(values) for v in values[p]]


Decided = tuple[list[Event], list[serde.Outcome]]


async def decide(
    decider: Decider | FaustDecider, bootstrap: str, topics: Topics, n: int
) -> Decided:
    """Run ``decider`` until ``n`` outcomes are committed; (events, outcomes) decoded."""
    task = asyncio.create_task(decider.run())
    try:
        outcomes = [
            serde.decode_outcome(CODEC, v) for v in await read(bootstrap, topics.outcomes, n)
        ]
    finally:
        decider.stop()
        await asyncio.wait_for(task, 60)
    accepted = sum(len(o.events) for o in outcomes if not o.duplicate)
    events = [serde.decode_event(CODEC, v) for v in await read(bootstrap, topics.events, accepted)]
    return events, outcomes


def by_aggregate(events: list[Event]) -> dict[str, list[tuple[int, str, str]]]:
    out: dict[str, list[tuple[int, str, str]]] = {}
    for e in events:
        out.setdefault(e.aggregate_id, []).append((e.seq, e.type, e.command_id))
    return out


Verdict = tuple[bool, str | None, list[tuple[int, str]]]


def verdicts(outcomes: list[serde.Outcome]) -> dict[tuple[str, bool], Verdict]:
    return {
        (o.command_id, o.duplicate): (
            o.accepted,
            o.reason_code,
            [(p.seq, p.type) for p in o.events],
        )
        for o in outcomes
    }


def test_faust_decider_writes_what_the_aiokafka_decider_writes(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    aio_topics, faust_topics = Topics(f"{topic_prefix}aio."), Topics(f"{topic_prefix}faust.")

    async def scenario() -> tuple[Decided, Decided, DeciderStats]:
        for topics in (aio_topics, faust_topics):
            await ensure_topics(kafka_bootstrap, topics, PARTITIONS)
            await publish(kafka_bootstrap, topics, COMMANDS)
        n = len(COMMANDS)
        aio = await decide(
            Decider(kafka_bootstrap, aio_topics, CODEC), kafka_bootstrap, aio_topics, n
        )
        faust = FaustDecider(
            kafka_bootstrap, faust_topics, CODEC, data_dir=tmp_path, partitions=PARTITIONS
        )
        return aio, await decide(faust, kafka_bootstrap, faust_topics, n), faust.stats

    (aio_events, aio_outcomes), (faust_events, faust_outcomes), stats = asyncio.run(scenario())

    assert by_aggregate(faust_events) == by_aggregate(aio_events)
    assert by_aggregate(faust_events)["pa"] == [
        (1, "process.created", "a-create"),
        (2, "process.started", "a-s1"),
        (3, "process.step_started", "a-s1"),
        (4, "process.step_completed", "a-c1"),
        (5, "process.completed", "a-done"),
    ]
    # Same decisions, down to the bytes: events are a pure function of state and command.
    key = lambda e: (e.aggregate_id, e.seq)  # noqa: E731
    assert sorted(faust_events, key=key) == sorted(aio_events, key=key)
    assert verdicts(faust_outcomes) == verdicts(aio_outcomes)
    rejected = {o.command_id: o for o in faust_outcomes if not o.accepted}
    assert rejected["a-cancel"].reason_code == "invalid_state"
    assert "completed" in (rejected["a-cancel"].reason or "")
    assert rejected["x-progress"].reason_code == "not_found"
    duplicate = next(o for o in faust_outcomes if o.duplicate)
    assert duplicate.command_id == "a-create" and duplicate.accepted
    assert duplicate.events == next(o for o in faust_outcomes if o.command_id == "a-create").events
    assert (stats.commands, stats.rejected, stats.duplicates) == (len(COMMANDS), 2, 1)


def test_faust_decider_recovers_its_table_from_the_changelog(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    topics = Topics(topic_prefix)
    first, second = COMMANDS[:5], [COMMANDS[0], command("a-s2", "pa", c.StartStep("check"), 11)]

    def start() -> FaustDecider:
        return FaustDecider(
            kafka_bootstrap, topics, CODEC, data_dir=tmp_path, partitions=PARTITIONS
        )

    async def scenario() -> Decided:
        await ensure_topics(kafka_bootstrap, topics, PARTITIONS)
        await publish(kafka_bootstrap, topics, first)
        await decide(start(), kafka_bootstrap, topics, len(first))
        # A new app: nothing in memory, the state comes back from the changelog.
        await publish(kafka_bootstrap, topics, second)
        return await decide(start(), kafka_bootstrap, topics, len(first) + len(second))

    events, outcomes = asyncio.run(scenario())

    [duplicate] = [o for o in outcomes if o.duplicate]
    assert duplicate.command_id == "a-create" and duplicate.events[0].seq == 1
    [started] = [o for o in outcomes if o.command_id == "a-s2"]
    assert [(p.seq, p.type) for p in started.events] == [(5, "process.step_started")]
    assert [e.seq for e in events if e.aggregate_id == "pa"] == [1, 2, 3, 4, 5]
