"""A command whose outcome arrives in the same loop step as its wait's timeout: the
outcome is kept for GET /command (it stayed 'pending' for ever)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from schemas import default_codec
from streams import serde
from streams.bus import CommandBus, outcome_headers
from streams.domain.commands import Command, parse_body
from streams.topics import Topics


def test_an_outcome_read_right_after_the_timeout_is_kept_for_the_status() -> None:
    codec = default_codec()
    cmd = Command(
        "c1", "process", "p1", 0, "acct", "actor", "c1", "c1",
        parse_body("process.progress", {"progress": 5}), reply_to="node-a",
    )  # fmt: skip
    outcome = serde.Outcome(
        "c1", "process", "p1", "process.progress", 1, "acct", "actor", True,
        events=(serde.EventPosition(2, "process.progress_reported", 0, 7),),
        reply_to="node-a",
    )  # fmt: skip
    record = SimpleNamespace(
        headers=outcome_headers("node-a", "c1"),
        value=serde.encode_outcome(codec, outcome),
        offset=3,
    )

    async def published(command: Command, **_: Any) -> tuple[int, int]:
        return 0, 0  # Kafka acknowledged it

    async def scenario() -> tuple[serde.Outcome | None, CommandBus]:
        bus = CommandBus("127.0.0.1:1", Topics("race."), codec, node_id="node-a")
        give_up = bus._give_up

        def timeout_then_outcome(*args: Any) -> None:
            give_up(*args)  # the wait times out ...
            bus._receive(record)  # ... and the outcome is read before execute resumes

        bus.publish = published  # type: ignore[method-assign,assignment]
        bus._give_up = timeout_then_outcome  # type: ignore[method-assign,assignment]
        return await bus.execute(cmd, 0.01), bus

    answer, bus = asyncio.run(scenario())
    assert answer is None  # the caller got its 202
    entry = bus.status("c1")
    assert entry is not None and entry.outcome is not None, "the command stayed pending"
    assert entry.outcome.accepted and entry.outcome.position == (0, 7)
