"""The node's projector says where it resumes and what it has applied when it stops,
against the real broker and a real DuckDB file (docs/operations.md, "Logs")."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from projections.projector import Projector
from projections.store import Store
from streams.topics import Topics, describe_positions, ensure_topics
from tests.integration.test_projector import (
    PARTITIONS,
    TIMEOUT,
    History,
    encoded,
    lifecycle,
    produce,
)

pytestmark = pytest.mark.integration


async def _project_once(store: Store, bootstrap: str, topics: Topics) -> dict[int, int]:
    projector = Projector(store, bootstrap=bootstrap, topics=topics, poll_timeout_ms=50)
    task = asyncio.create_task(projector.run())
    try:
        assert await projector.catch_up(TIMEOUT), "the projector did not reach the end"
    finally:
        await projector.stop()
        await task
    return projector.applied


def test_projector_lines_name_the_positions_it_resumes_from_and_stops_at(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    topics = Topics(topic_prefix)
    history = History()
    path = tmp_path / "read.duckdb"

    before = [*lifecycle(history, "p-1"), *lifecycle(history, "p-2")]
    after = lifecycle(history, "p-3")

    async def scenario() -> tuple[dict[int, int], dict[int, int]]:
        await ensure_topics(kafka_bootstrap, topics, PARTITIONS)
        await produce(kafka_bootstrap, topics.events, encoded(before))
        with Store(path) as store:
            first = await _project_once(store, kafka_bootstrap, topics)
        await produce(kafka_bootstrap, topics.events, encoded(after))
        with Store(path) as store:
            second = await _project_once(store, kafka_bootstrap, topics)
        return first, second

    with caplog.at_level(logging.INFO, logger="projections.projector"):
        first, second = asyncio.run(scenario())
    lines = [r.getMessage() for r in caplog.records if r.name == "projections.projector"]
    reading = [line for line in lines if line.startswith("projector: reading")]
    stopped = [line for line in lines if line.startswith("projector: stopped")]
    assert len(reading) == len(stopped) == 2, lines
    on = f"projector: reading {topics.events} on {kafka_bootstrap} from "
    assert reading[0] == on + "the beginning (a new read model)"
    stored = {p: o for p, o in first.items() if o}  # only partitions with records are stored
    assert reading[1] == on + f"{describe_positions(stored)} (positions stored in {path})"
    assert f"applied up to {describe_positions(first)} ({len(before)} events applied" in stopped[0]
    assert f"applied up to {describe_positions(second)} ({len(after)} events applied" in stopped[1]
