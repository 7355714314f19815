"""The command bus behind a load balancer: a ``202`` answered by one node is followed at
``GET /command/{id}`` on another (streams/bus.py, docs/operations.md "Several nodes").

No broker: outcome records are handed to ``CommandBus._receive`` as the listener would
(a bus is made inside a running loop: its producer needs one).
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from schemas import default_codec
from streams import serde
from streams.bus import SHARED_MARK, CommandBus, outcome_headers
from streams.domain.commands import Command, parse_body
from streams.topics import Topics

CODEC = default_codec()


def _bus(node_id: str) -> CommandBus:
    return CommandBus("127.0.0.1:1", Topics("multi."), CODEC, node_id=node_id)


def _record(command_id: str, reply_to: str, *, accepted: bool = True, offset: int = 7) -> Any:
    events = (serde.EventPosition(2, "process.progress_reported", 0, offset),)
    outcome = serde.Outcome(
        command_id, "process", "p1", "process.progress", 1, "acct", "actor", accepted,
        reason_code=None if accepted else "invalid_state",
        reason=None if accepted else "cannot report progress: it is completed",
        events=events if accepted else (),
        reply_to=reply_to,
    )  # fmt: skip
    return SimpleNamespace(
        headers=outcome_headers(reply_to, command_id),
        value=serde.encode_outcome(CODEC, outcome),
        partition=0,
        offset=offset,
    )


def _command(command_id: str) -> Command:
    return Command(
        command_id, "process", "p1", 0, "acct", "actor", command_id, command_id,
        parse_body("process.progress", {"progress": 5}), reply_to="node-a",
    )  # fmt: skip


def _publishing(bus: CommandBus, sent: list[Command]) -> CommandBus:
    """``bus`` with Kafka replaced by a list that acknowledges every command."""

    async def published(cmd: Command, **_: Any) -> tuple[int, int]:
        sent.append(cmd)
        return 0, len(sent)

    bus.publish = published  # type: ignore[method-assign]
    return bus


def test_a_submitted_command_is_addressed_to_every_node() -> None:
    async def scenario() -> None:
        sent: list[Command] = []
        bus = _publishing(_bus("node-a"), sent)
        await bus.submit(_command("c1"))
        assert sent[0].reply_to == "node-a" + SHARED_MARK
        # Its own outcome still reaches it (the mark is its own).
        bus._receive(_record("c1", "node-a" + SHARED_MARK))
        entry = bus.status("c1")
        assert entry is not None and entry.outcome is not None and entry.outcome.accepted

    asyncio.run(scenario())


def test_another_nodes_submission_is_known_once_decided_and_a_waited_one_only() -> None:
    async def scenario() -> None:
        bus = _bus("node-b")
        assert bus.status("c1") is None  # pending on node A: node B cannot know it
        bus._receive(_record("c1", "node-a" + SHARED_MARK))
        bus._receive(_record("c2", "node-a"))  # a waited command of A: not B's business
        bus._receive(_record("c3", "node-a" + SHARED_MARK, accepted=False))
        accepted, rejected = bus.status("c1"), bus.status("c3")
        assert accepted is not None and accepted.outcome is not None
        assert (accepted.account, accepted.aggregate_id, accepted.command) == (
            "acct",
            "p1",
            "process.progress",
        )
        assert accepted.outcome.position == (0, 7) and accepted.outcome.state_json is None
        assert rejected is not None and rejected.outcome is not None
        assert rejected.outcome.reason_code == "invalid_state"
        assert bus.status("c2") is None
        assert bus.status("c1") is accepted  # decoded once

    asyncio.run(scenario())


def test_other_nodes_outcomes_are_bounded_newest_kept() -> None:
    async def scenario() -> list[bool]:
        bus = _bus("node-b")
        bus.max_tracked = 3
        for i in range(5):
            bus._receive(_record(f"c{i}", "node-a" + SHARED_MARK, offset=i))
        return [bus.status(f"c{i}") is not None for i in range(5)]

    assert asyncio.run(scenario()) == [False, False, True, True, True]


def test_decided_waits_for_the_outcome_and_gives_up_in_time() -> None:
    async def scenario() -> None:
        bus = _bus("node-b")
        waiting = asyncio.create_task(bus.decided("c1", 5))
        await asyncio.sleep(0.05)
        bus._receive(_record("c1", "node-a" + SHARED_MARK))
        found = await asyncio.wait_for(waiting, 1)
        assert found is not None and found.outcome is not None and found.outcome.accepted
        assert await bus.decided("nobody", 0.05) is None
        assert not bus._deciding  # no waiter left behind

    asyncio.run(scenario())


def test_decided_on_the_submitting_node_waits_for_its_pending_command() -> None:
    async def scenario() -> None:
        bus = _publishing(_bus("node-a"), [])
        await bus.submit(_command("c1"))
        pending = await bus.decided("c1", 0.05)
        assert pending is not None and pending.outcome is None  # pending, not unknown
        waiting = asyncio.create_task(bus.decided("c1", 5))
        await asyncio.sleep(0.05)
        bus._receive(_record("c1", "node-a" + SHARED_MARK))
        decided = await asyncio.wait_for(waiting, 1)
        assert decided is not None and decided.outcome is not None
        assert not bus._deciding

    asyncio.run(scenario())
