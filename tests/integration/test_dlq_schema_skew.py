"""A schema skew from the operator's side, on the real broker and real DuckDB files.

A node released before ``caserun.created`` version 2 (its projector's codec lacks that
schema, as an old ``schemas/`` folder does) meets a CaseRun written by the current
decider: the first event is dead-lettered as ``unknown_fingerprint``, every later one
of that CaseRun as ``sequence_gap``, and the CaseRun is missing from its read model
while other aggregates are whole. Then the recovery of docs/operations.md ("Dead
letters"), with the CLI of the upgraded release: ``dlq`` lists what happened,
``verify`` exits 1 on the difference, ``replay`` + ``swap`` restore the CaseRun and
``verify`` exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from projections.projector import Projector
from projections.store import Store
from runledger.node import DB_FILE
from streams.topics import Topics, ensure_topics
from tests.integration.test_dlq_tool import dlq, env_of, lines_of
from tests.integration.test_projector import (
    PARTITIONS,
    TIMEOUT,
    History,
    lifecycle,
    produce,
)
from tests.integration.test_projector import encoded as encoded_process
from tests.unit.test_dlq_skew_fold import caserun_events, encoded, old_codec

pytestmark = pytest.mark.integration


def old_node_projects(bootstrap: str, topics: Topics, path: Path) -> Projector:
    """The old node's projector, run until it has read the whole events topic."""

    async def run() -> Projector:
        with Store(path) as store:
            projector = Projector(
                store, bootstrap=bootstrap, topics=topics, codec=old_codec(), poll_timeout_ms=50
            )
            await projector.start()
            task = asyncio.create_task(projector.run())
            try:
                assert await projector.catch_up(TIMEOUT)
            finally:
                await projector.stop()
                await task
        return projector

    return asyncio.run(run())


def runledger(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runledger", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_an_old_node_freezes_the_aggregate_and_replay_and_swap_restore_it(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    topics = Topics(topic_prefix)
    data = tmp_path / "data"
    data.mkdir()
    live = data / DB_FILE
    asyncio.run(ensure_topics(kafka_bootstrap, topics, PARTITIONS))
    process = lifecycle(History(), "p-1")
    records = [*encoded(caserun_events("cr-1")), *encoded_process(process)]
    asyncio.run(produce(kafka_bootstrap, topics.events, records))

    with caplog.at_level(logging.WARNING, logger="projections.projector"):
        projector = old_node_projects(kafka_bootstrap, topics, live)
    assert projector.stats.dead_lettered == 4
    (advice,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "schemas/ are probably older than the writer's" in advice
    assert "`runledger replay --to NEW.duckdb` + `runledger swap --from NEW.duckdb`" in advice
    with Store(live) as store:
        assert store.load_caseruns(["cr-1"]) == {}  # frozen: not even created
        assert store.load_processes(["p-1"])["p-1"].seq == len(process)  # the rest is whole

    env = env_of(kafka_bootstrap, topic_prefix, tmp_path)
    letters = lines_of(dlq(env, "--source", "ledger.events"))
    assert [(x["reason"], x["decoded"]["seq"]) for x in letters] == [
        ("unknown_fingerprint", 1),
        ("sequence_gap", 2),
        ("sequence_gap", 3),
        ("sequence_gap", 4),
    ]
    first = letters[0]
    assert "no released schema has fingerprint" in first["error"]
    # The upgraded tool reads what the old node could not.
    assert first["decoded"]["schema"] == "caserun.created"
    assert first["decoded"]["aggregate_id"] == "cr-1"
    done = dlq(env, "--summary")
    assert done.returncode == 0, done.stderr
    rows = [line.split()[:4] for line in done.stdout.splitlines()[1:-1]]
    assert rows == [
        [topics.events, "sequence_gap", "3", "3"],
        [topics.events, "unknown_fingerprint", "1", "1"],
    ]

    # The recovery, with the upgraded release's tools.
    verified = runledger(env, "verify")
    assert verified.returncode == 1, verified.stderr
    assert "caseruns" in verified.stdout
    new = data / "new.duckdb"
    replayed = runledger(env, "replay", "--to", str(new))
    assert replayed.returncode == 0, replayed.stderr
    assert "4 dead letters" not in replayed.stderr and "0 dead letters" in replayed.stderr
    swapped = runledger(env, "swap", "--from", str(new))
    assert swapped.returncode == 0, swapped.stderr
    with Store(live) as store:
        state = store.load_caseruns(["cr-1"])["cr-1"]
        assert (state.seq, state.status) == (4, "passed")
    verified = runledger(env, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
