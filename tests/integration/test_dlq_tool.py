"""``runledger dlq`` as an operator runs it, on the real broker, over dead letters made
by the real writers: two nodes' projectors that meet the same bad events on
ledger.events, and the decider that meets bad commands. Also: the summary, the
filters, ``--follow``, a pipe closed by its reader, a bad ``--from``, a missing topic
and a broker nobody runs."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from projections.dead_letters import DeadLetterPublisher
from projections.fold import DeadLetter, RawMessage
from projections.store import Store
from streams.decider import Decider
from streams.topics import Topics, ensure_topics
from tests.integration.conftest import free_port
from tests.integration.test_decider_bad_body import CODEC, NOT_JSON, OUT_OF_RANGE, run_decider
from tests.integration.test_projector import (
    PARTITIONS,
    History,
    encoded,
    lifecycle,
    produce,
    project_until_end,
)
from tests.integration.test_tail_drill import cli_env as env_of
from tests.integration.test_tail_drill import cli_into_head

pytestmark = pytest.mark.integration

GARBAGE = (b"process:p-9", b"\x00not an event")
ODD_KEY = (b"\xff\xfe", b"\xc3\x01short")  # a key that is not UTF-8, a truncated header


def dlq(env: dict[str, str], *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runledger", "dlq", *options],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def lines_of(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert done.returncode == 0, done.stderr
    return [json.loads(x) for x in done.stdout.splitlines()]


def two_nodes_meet_bad_events(bootstrap: str, prefix: str, tmp_path: Path) -> list[tuple[int, int]]:
    """A good lifecycle and two bad events on ledger.events, folded by two nodes' real
    Projectors (each with its own DuckDB file): each dead-letters both. Returns the
    bad events' (partition, offset)."""
    topics = Topics(prefix)

    async def scenario() -> list[tuple[int, int]]:
        await ensure_topics(bootstrap, topics, PARTITIONS)
        good = encoded(lifecycle(History(), "p-1"))
        where = await produce(bootstrap, topics.events, [*good, GARBAGE, ODD_KEY])
        for node in ("a", "b"):
            with Store(tmp_path / f"{node}.duckdb") as store:
                projector = await project_until_end(store, bootstrap, topics)
                assert projector.stats.dead_lettered == 2
        return where[-2:]

    return asyncio.run(scenario())


def test_dead_letters_of_two_nodes_are_listed_whole_and_summed_up(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    bad = two_nodes_meet_bad_events(kafka_bootstrap, topic_prefix, tmp_path)
    env = env_of(kafka_bootstrap, topic_prefix, tmp_path)
    events = f"{topic_prefix}ledger.events"
    started_ms = time.time() * 1000 - 120_000

    letters = lines_of(dlq(env))
    assert len(letters) == 4  # two bad events, dead-lettered by each of two nodes
    assert sorted((x["source_partition"], x["source_offset"]) for x in letters) == sorted(bad * 2)
    for x in letters:
        assert x["reason"] == "undecodable" and x["source_topic"] == events
        assert set(x["headers"]) == {
            "reason",
            "error",
            "source_topic",
            "source_partition",
            "source_offset",
        }
        assert x["headers"]["source_offset"] == str(x["source_offset"])
        assert x["time"].endswith("Z") and x["time"] > _iso_ms(started_ms)
        assert x["partition"] in range(PARTITIONS) and x["offset"] >= 0
        assert x["error"] == x["decode_error"]  # the node's reason is what the codec says
    garbage = [x for x in letters if x["key"] == "process:p-9"]
    odd = [x for x in letters if x.get("key_hex") == "fffe"]
    assert len(garbage) == len(odd) == 2
    assert garbage[0]["value_bytes"] == len(GARBAGE[1]) and "C3 01" in garbage[0]["decode_error"]
    assert odd[0]["key"] is None and "truncated header" in odd[0]["decode_error"]

    done = dlq(env, "--summary")
    assert done.returncode == 0, done.stderr
    head, row, total = done.stdout.splitlines()
    assert head.split()[:4] == ["SOURCE", "TOPIC", "REASON", "LETTERS"]
    assert row.split()[:4] == [events, "undecodable", "4", "2"]
    assert total.startswith("4 dead letters of 2 distinct source messages; 2 are the same")

    # Filters: a reason nobody wrote yet is allowed and matches nothing.
    assert lines_of(dlq(env, "--reason", "sequence_gap", "--reason", "not_yet")) == []
    assert len(lines_of(dlq(env, "--reason", "undecodable", "--source", "ledger.events"))) == 4
    assert lines_of(dlq(env, "--source", "ledger.commands")) == []
    assert len(lines_of(dlq(env, "--max", "3"))) == 3
    assert lines_of(dlq(env, "--from", "end")) == []
    assert lines_of(dlq(env, "--from", "2999-01-01T00:00:00Z")) == []
    assert len(lines_of(dlq(env, "--from", _iso_ms(started_ms)))) == 4


def _iso_ms(ms: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + "Z"


def test_the_deciders_dead_letters_read_like_the_projectors(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    topics = Topics(topic_prefix)
    asyncio.run(ensure_topics(kafka_bootstrap, topics, 1))
    run_decider(Decider(kafka_bootstrap, topics, CODEC), kafka_bootstrap, topics)
    env = env_of(kafka_bootstrap, topic_prefix, tmp_path)

    letters = lines_of(dlq(env, "--source", "ledger.commands"))
    assert [(x["source_offset"], x["reason"]) for x in letters] == [
        (1, "unusable_body"),
        (2, "undecodable"),
        (3, "unusable_body"),
    ]
    out_of_range, tombstone, not_json = letters
    assert out_of_range["error"].startswith("command bad-range: ")  # the sentence
    assert out_of_range["headers"]["exception"] == "UnusableBody"  # the raw header
    assert out_of_range["decoded"]["command_id"] == "bad-range"
    assert out_of_range["value_bytes"] == len(OUT_OF_RANGE)
    assert not_json["value_bytes"] == len(NOT_JSON)
    assert tombstone["value_bytes"] == 0 and tombstone["decode_error"] == "the value is empty"

    done = dlq(env, "--summary", "--reason", "unusable_body")
    assert done.returncode == 0, done.stderr
    _, row, total = done.stdout.splitlines()
    assert row.split()[:4] == [topics.commands, "unusable_body", "2", "2"]
    assert total == "2 dead letters of 2 distinct source messages"


def test_follow_prints_a_new_dead_letter_and_a_closed_pipe_ends_with_0(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    topics = Topics(topic_prefix)
    asyncio.run(ensure_topics(kafka_bootstrap, topics, PARTITIONS))
    env = env_of(kafka_bootstrap, topic_prefix, tmp_path)
    # From a time rather than ``end``: the letter is found however long the start takes.
    since = _iso_ms(time.time() * 1000 - 1000)
    follower = subprocess.Popen(
        [sys.executable, "-m", "runledger", "dlq", "--follow", "--max", "1", "--from", since],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(2)  # it waits at the end of the empty topic, following
        letter = DeadLetter(RawMessage(0, 41, b"\x00bad", b"process:p-7"), "rejected", "why")
        asyncio.run(_publish(kafka_bootstrap, topics, [letter]))
        out, err = follower.communicate(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.returncode == 0, err
    (line,) = [json.loads(x) for x in out.splitlines()]
    assert (line["reason"], line["error"], line["source_offset"]) == ("rejected", "why", 41)

    # ``runledger dlq --follow | head -1`` on a quiet topic: head exits, so does dlq, with 0.
    code, out, err_bytes, took = cli_into_head(env, 1, "dlq", "--follow")
    assert code == 0 and err_bytes == b"", err_bytes
    assert json.loads(out)["source_offset"] == 41
    assert took < 30


async def _publish(bootstrap: str, topics: Topics, letters: list[DeadLetter]) -> None:
    publisher = DeadLetterPublisher(bootstrap, topics.dlq, client_id="test-dlq")
    await publisher.start()
    try:
        await publisher.publish(topics.events, letters)
    finally:
        await publisher.stop()


def test_bad_input_a_missing_topic_and_a_dead_broker_fail_with_one_line(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    env = env_of(kafka_bootstrap, "nosuchprefix.", tmp_path)
    done = dlq(env, "--from", "yesterday")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        "runledger: --from takes beginning, end or an ISO 8601 time: 'yesterday' is not an "
        "ISO 8601 time (e.g. 2026-03-01T12:00:00Z)\n"
    )
    done = dlq(env, "--summary", "--follow")
    assert done.returncode == 2 and "cannot --follow" in done.stderr

    done = dlq(env)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("runledger: topic nosuchprefix.ledger.dlq does not exist")
    assert len(done.stderr.splitlines()) == 1

    started = time.monotonic()
    done = dlq(env_of(f"127.0.0.1:{free_port()}", "t.", tmp_path))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("runledger: cannot reach a Kafka broker at 127.0.0.1:")
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert time.monotonic() - started < 15

    bare = {k: v for k, v in os.environ.items() if not k.startswith("RUNLEDGER_")}
    done = subprocess.run(
        [sys.executable, "-m", "runledger", "dlq", "--data-dir", str(tmp_path / "none")],
        env=bare,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == "" and len(done.stderr.splitlines()) == 1
    assert "stack.json" in done.stderr
