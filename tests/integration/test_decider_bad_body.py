"""An outside producer's command whose record decodes but whose body does not parse
gets a rejected outcome (code ``invalid``, the offending field) in its place among the
batch's outcomes, and still goes to ``ledger.dlq`` with its original bytes; commands
after it are decided as usual. Bytes that are no command record get no outcome. Both
deciders (aiokafka and faust) behave the same."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from schemas import default_codec
from streams import serde
from streams.bus import COMMAND_ID, REPLY_TO
from streams.decider import Decider, DeciderStats
from streams.decider_rebuild import Aggregate, read_ledger, remember
from streams.domain import commands as c
from streams.domain.events import Event
from streams.faust_decider import FaustDecider
from streams.topics import Topics, ensure_topics
from tests.integration.test_wire_review import T0, command, key, produce, read_all

pytestmark = pytest.mark.integration

CODEC = default_codec()


def bad_record(command_id: str, payload_json: str, **changes: Any) -> bytes:
    record = {
        "command_id": command_id,
        "aggregate_type": "process",
        "aggregate_id": "p1",
        "name": "process.progress",
        "issued_at": T0,
        "account": "acme",
        "actor": "outside",
        "correlation_id": command_id,
        "causation_id": command_id,
        "payload_json": payload_json,
        "reply_to": "outside-node",
    }
    return CODEC.encode("command", {**record, **changes})


OUT_OF_RANGE = bad_record("bad-range", '{"progress": 250}')
NOT_JSON = bad_record("bad-json", "{progress: 5", reply_to=None)
MESSAGES: list[tuple[bytes | None, bytes | None]] = [
    (key("p1"), serde.encode_command(CODEC, command("ok-create", "p1", c.CreateProcess("s")))),
    (key("p1"), OUT_OF_RANGE),
    (key("p1"), None),  # a tombstone: no envelope, nobody to answer
    (key("p1"), NOT_JSON),
    (key("p1"), serde.encode_command(CODEC, command("ok-start", "p1", c.StartProcess()))),
]


def run_decider(
    decider: Decider | FaustDecider, bootstrap: str, topics: Topics
) -> tuple[list[Any], list[Any]]:
    async def scenario() -> tuple[list[Any], list[Any]]:
        await produce(bootstrap, topics.commands, MESSAGES)
        task = asyncio.create_task(decider.run())
        try:
            outcomes = await read_all(bootstrap, topics.outcomes, lambda r: len(r) >= 4)
            dead = await read_all(bootstrap, topics.dlq, lambda r: len(r) >= 3)
        finally:
            decider.stop()
            await asyncio.wait_for(task, 60)
        return outcomes, dead

    return asyncio.run(scenario())


def check(outcome_records: list[Any], dead: list[Any], stats: DeciderStats) -> None:
    outcomes = [serde.decode_outcome(CODEC, r.value) for r in outcome_records]
    # In command order: each rejection in its command's place.
    assert [(o.command_id, o.accepted) for o in outcomes] == [
        ("ok-create", True),
        ("bad-range", False),
        ("bad-json", False),
        ("ok-start", True),
    ]
    rejected = {o.command_id: o for o in outcomes if not o.accepted}
    range_, json_ = rejected["bad-range"], rejected["bad-json"]
    assert (range_.reason_code, range_.field) == ("invalid", "progress")
    assert "between 0 and 100" in (range_.reason or "")
    assert (range_.aggregate_id, range_.command, range_.actor) == (
        "p1",
        "process.progress",
        "outside",
    )
    assert (range_.reply_to, range_.events) == ("outside-node", ())
    assert (json_.reason_code, json_.field, json_.reply_to) == ("invalid", "payload_json", None)
    # A waiting producer finds its answer by the headers, without decoding.
    headers = dict(outcome_records[1].headers)
    assert (headers[REPLY_TO], headers[COMMAND_ID]) == (b"outside-node", b"bad-range")
    # The rejection wrote no event: the next command was decided on the created state.
    started = outcomes[3]
    assert [(p.seq, p.type) for p in started.events] == [(2, "process.started")]

    # Operators still get every message that did not decode, as it was sent.
    assert [r.value for r in dead] == [OUT_OF_RANGE, b"", NOT_JSON]
    assert [dict(r.headers)["source_offset"] for r in dead] == [b"1", b"2", b"3"]
    reasons = [dict(r.headers)["reason"].decode() for r in dead]
    errors = [dict(r.headers)["error"].decode() for r in dead]
    assert reasons == ["unusable_body", "undecodable", "unusable_body"]
    assert errors[0].startswith("command bad-range: ") and "no value" in errors[1]
    assert (stats.dead_lettered, stats.commands, stats.accepted) == (3, 2, 2)


def test_the_decider_rejects_a_bad_body_and_dead_letters_it(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topics = Topics(topic_prefix)
    asyncio.run(ensure_topics(kafka_bootstrap, topics, 1))
    decider = Decider(kafka_bootstrap, topics, CODEC)
    outcomes, dead = run_decider(decider, kafka_bootstrap, topics)
    check(outcomes, dead, decider.stats)

    # A rejection writes no event: the next start rebuilds only the accepted commands.
    known: dict[str, Aggregate] = {}

    def fold(event: Event, partition: int, offset: int) -> None:
        remember(known, event, partition, offset)

    asyncio.run(read_ledger(kafka_bootstrap, topics.events, CODEC, fold))
    assert list(known) == [key("p1").decode()]
    assert known[key("p1").decode()].state.seq == 2
    assert list(known[key("p1").decode()].commands) == ["ok-create", "ok-start"]


def test_the_faust_decider_rejects_a_bad_body_and_dead_letters_it(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    topics = Topics(topic_prefix)
    asyncio.run(ensure_topics(kafka_bootstrap, topics, 1))
    decider = FaustDecider(kafka_bootstrap, topics, CODEC, data_dir=tmp_path, partitions=1)
    outcomes, dead = run_decider(decider, kafka_bootstrap, topics)
    check(outcomes, dead, decider.stats)
