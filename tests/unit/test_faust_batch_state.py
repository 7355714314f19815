"""The faust decider's batch, with fakes for its topics and Table: what a caller who
waits is told. Each accepted command's outcome carries the state its own command left,
as the aiokafka decider's does, not the aggregate's state after the whole batch."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from schemas import default_codec
from streams import serde
from streams.decider import DeciderStats
from streams.domain import commands as c
from streams.domain.commands import Command
from streams.faust_batch import BatchDecider
from streams.topics import Topics

CODEC = default_codec()
T = 1_700_000_000_000


@dataclass
class _Meta:
    partition: int
    offset: int


@dataclass
class _Topic:
    """A topic's ``send``: records the message, answers a future of its position."""

    sent: list[tuple[bytes | None, bytes]] = field(default_factory=list)

    async def send(self, *, key: bytes | None, value: bytes, headers: Any = None) -> Any:
        self.sent.append((key, value))
        future = asyncio.get_running_loop().create_future()
        future.set_result(_Meta(0, len(self.sent) - 1))
        return future


@dataclass
class _Table:
    data: dict[bytes, Any] = field(default_factory=dict)
    changelog_topic: _Topic = field(default_factory=_Topic)

    def get(self, key: bytes) -> Any:
        return self.data.get(key)


@dataclass
class _Message:
    value: bytes
    offset: int
    key: bytes = b"p1"
    topic: str = "t.ledger.commands"
    partition: int = 0
    tp: str = "t.ledger.commands/0"


@dataclass
class _FaustEvent:
    message: _Message


def _command(command_id: str, body: c.Body) -> Command:
    return Command(command_id, "process", "p1", T, "acme", "t", "corr", "", body, "node-1")


def test_each_outcome_carries_the_state_its_own_command_left() -> None:
    outcomes = _Topic()
    decider = BatchDecider(
        Topics("t"),
        CODEC,
        _Table(),
        _Topic(),
        outcomes,
        _Topic(),
        clock=lambda: T,
        stats=DeciderStats(),
    )
    commands = [
        _command("c1", c.CreateProcess("scan")),
        _command("c2", c.StartProcess()),
        _command("c1", c.CreateProcess("scan")),  # a duplicate, after the start
        _command("c3", c.CancelProcess()),
    ]
    batch = [
        _FaustEvent(_Message(serde.encode_command(CODEC, cmd), i)) for i, cmd in enumerate(commands)
    ]
    asyncio.run(decider(batch))
    got = [serde.decode_outcome(CODEC, value) for _, value in outcomes.sent]
    assert [o.command_id for o in got] == ["c1", "c2", "c1", "c3"]
    assert [o.duplicate for o in got] == [False, False, True, False]
    states = [json.loads(o.state_json or "null")["status"] for o in got]
    # The duplicate is answered with the state when it came, as a later read would.
    assert states == ["pending", "running", "running", "cancelled"]
