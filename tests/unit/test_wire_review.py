"""Review of the write path and the wire format, without a broker: the codec on bad
input, every event type through bytes under hypothesis, the decider's batch against a
fake transactional publisher, and the decider's rebuild fold on events it must skip."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka.structs import TopicPartition
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import DecodeError, default_codec
from schemas.codec import EncodeError
from streams import serde
from streams.decider import Decider
from streams.decider_rebuild import Aggregate, remember
from streams.domain import aggregates
from streams.domain import commands as c
from streams.domain import events as e
from streams.domain.commands import Command
from streams.topics import Topics

CODEC = default_codec()
EXAMPLES = Path(__file__).parents[1] / "golden" / "schema_examples"
T = 1_767_261_600_000_000

LONG = (-(2**63), 2**63 - 1)
INT = (-(2**31), 2**31 - 1)


# -- the codec on bad input -------------------------------------------------------------


def test_a_message_without_a_value_is_a_decode_error() -> None:
    # A tombstone on ledger.commands or ledger.events has value None; anything but a
    # DecodeError escaping here stops the decider (it restarts and meets it again).
    with pytest.raises(DecodeError, match="no value"):
        CODEC.decode(None)  # type: ignore[arg-type]
    with pytest.raises(DecodeError):
        serde.decode_command(CODEC, None)  # type: ignore[arg-type]
    with pytest.raises(DecodeError):
        serde.decode_event(CODEC, None)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 2**80])
def test_a_long_beyond_64_bits_is_an_encode_error(value: int) -> None:
    record = json.loads((EXAMPLES / "process.retried.v1.json").read_text())
    with pytest.raises(EncodeError, match="process.retried"):
        CODEC.encode("process.retried", {**record, "seq": value})


def test_a_header_with_the_right_magic_and_garbage_is_a_decode_error() -> None:
    header = CODEC.registry.latest("process.log").header
    for body in (b"", b"\x00", b"\xff" * 40, b"\x01\x02\x03" * 20):
        with pytest.raises(DecodeError):
            serde.decode_event(CODEC, header + body)


# -- every event type through bytes, any values the schema allows -----------------------

_text = st.text(max_size=40)  # any unicode but lone surrogates (UTF-8 cannot carry them)


def _strategy(avro_type: Any) -> st.SearchStrategy[Any]:
    """Values of an Avro type of the released schemas (a small subset of Avro)."""
    if isinstance(avro_type, list):
        return st.one_of(*[_strategy(t) for t in avro_type])
    if isinstance(avro_type, dict):
        if avro_type["type"] == "array":
            return st.lists(_strategy(avro_type["items"]), max_size=3)
        if avro_type["type"] == "record":
            return st.fixed_dictionaries(
                {f["name"]: _strategy(f["type"]) for f in avro_type["fields"]}
            )
        return _strategy(avro_type["type"])  # a logical type over a primitive
    return {
        "null": st.none(),
        "string": _text,
        "long": st.integers(*LONG),
        "int": st.integers(*INT),
        "double": st.floats(allow_nan=True, allow_infinity=True),
        "boolean": st.booleans(),
    }[avro_type]


def _record_strategy(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    fields = CODEC.registry.latest(kind).raw["fields"]
    values = {f["name"]: _strategy(f["type"]) for f in fields}
    values["type"] = st.just(kind)
    values["aggregate_type"] = st.just(kind.partition(".")[0])
    return st.fixed_dictionaries(values)


def _same(a: Any, b: Any) -> bool:
    """Equality in which NaN equals NaN (a double may carry one)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if hasattr(a, "__dataclass_fields__") and type(a) is type(b):
        return all(_same(getattr(a, n), getattr(b, n)) for n in a.__dataclass_fields__)
    return bool(a == b)


@settings(max_examples=400, deadline=None)
@given(data=st.data(), kind=st.sampled_from(sorted(e.PAYLOAD_TYPES)))
def test_every_event_type_round_trips_any_values_its_schema_allows(
    data: st.DataObject, kind: str
) -> None:
    event = serde.event_from_record(data.draw(_record_strategy(kind)))
    encoded = serde.encode_event(CODEC, event)
    decoded = serde.decode_event(CODEC, encoded)
    assert _same(decoded, event), (decoded, event)
    assert serde.encode_event(CODEC, decoded) == encoded


# -- the decider's batch, against a fake transactional publisher ------------------------


@dataclass
class _Meta:
    partition: int
    offset: int


@dataclass
class FakePublisher:
    """Records what a transaction sent; partitions by the key like the real one."""

    partitions: int = 3
    sent: list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]] = field(
        default_factory=list
    )
    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    committed: int = 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[FakePublisher]:
        yield self
        self.committed += 1

    async def send(
        self, topic: str, key: bytes | None, value: bytes, headers: Any = ()
    ) -> asyncio.Future[_Meta]:
        self.sent.append((topic, key, value, list(headers)))
        future: asyncio.Future[_Meta] = asyncio.get_running_loop().create_future()
        future.set_result(_Meta(0, len(self.sent)))
        return future

    async def send_offsets(self, offsets: dict[TopicPartition, int], group_id: str) -> None:
        self.offsets.update(offsets)

    def to(self, topic: str) -> list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]]:
        return [(k, v, h) for t, k, v, h in self.sent if t == topic]


@dataclass
class _Msg:
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


TOPICS = Topics("review.")
TP = TopicPartition(TOPICS.commands, 0)


def _cmd(command_id: str, pid: str, body: c.Body) -> Command:
    return Command(command_id, "process", pid, T, "acme", "tester", "corr", "", body)


def _decider() -> tuple[Decider, FakePublisher]:
    decider = Decider("unused:9092", TOPICS, CODEC, clock=lambda: T)
    publisher = FakePublisher()
    decider._publisher = publisher  # type: ignore[assignment]  # noqa: SLF001
    return decider, publisher


def _key(pid: str) -> bytes:
    return aggregates.stream_key("process", pid).encode()


def test_a_command_without_a_value_is_dead_lettered_and_the_batch_goes_on() -> None:
    decider, publisher = _decider()
    create = serde.encode_command(CODEC, _cmd("c1", "p1", c.CreateProcess("scan")))
    batch = {TP: [_Msg(0, _key("p1"), None), _Msg(1, _key("p1"), create)]}
    asyncio.run(decider._process(batch))  # noqa: SLF001
    dead = publisher.to(TOPICS.dlq)
    assert len(dead) == 1
    assert dict(dead[0][2])["source_offset"] == b"0"
    assert len(publisher.to(TOPICS.events)) == 1
    assert publisher.offsets == {TP: 2}
    assert publisher.committed == 1


def test_events_are_keyed_by_their_aggregate_whatever_key_the_command_had() -> None:
    # docs/events.md: every event of one aggregate has the key <type>:<id>, so they sit
    # on one partition in order; a producer that keyed its command otherwise (or not at
    # all) must not scatter the aggregate's events.
    decider, publisher = _decider()
    batch = {
        TP: [
            _Msg(0, None, serde.encode_command(CODEC, _cmd("c1", "p1", c.CreateProcess("s")))),
            _Msg(1, b"p1", serde.encode_command(CODEC, _cmd("c2", "p1", c.StartProcess()))),
        ]
    }
    asyncio.run(decider._process(batch))  # noqa: SLF001
    keys = [k for k, _, _ in publisher.to(TOPICS.events)]
    assert keys == [_key("p1"), _key("p1")]


def test_a_duplicate_command_in_one_batch_gets_the_original_positions_and_no_event() -> None:
    decider, publisher = _decider()
    create = serde.encode_command(CODEC, _cmd("c1", "p1", c.CreateProcess("scan")))
    batch = {TP: [_Msg(0, _key("p1"), create), _Msg(1, _key("p1"), create)]}
    asyncio.run(decider._process(batch))  # noqa: SLF001
    assert len(publisher.to(TOPICS.events)) == 1
    outcomes = [serde.decode_outcome(CODEC, v) for _, v, _ in publisher.to(TOPICS.outcomes)]
    assert [o.duplicate for o in outcomes] == [False, True]
    assert outcomes[0].events == outcomes[1].events != ()


def test_a_rejection_reaches_the_caller_with_its_reason() -> None:
    decider, publisher = _decider()
    cmd = Command(
        "c9", "process", "ghost", T, "acme", "tester", "corr", "", c.StartProcess(), "node-1"
    )
    batch = {TP: [_Msg(0, _key("ghost"), serde.encode_command(CODEC, cmd))]}
    asyncio.run(decider._process(batch))  # noqa: SLF001
    [(_, value, headers)] = publisher.to(TOPICS.outcomes)
    outcome = serde.decode_outcome(CODEC, value)
    assert (outcome.accepted, outcome.reason_code) == (False, "not_found")
    assert outcome.reason and "ghost" in outcome.reason
    assert dict(headers)["reply_to"] == b"node-1"
    assert publisher.to(TOPICS.events) == []


# -- the rebuild fold -------------------------------------------------------------------


def _event(pid: str, seq: int, payload: e.Payload) -> e.Event:
    return e.Event(
        e.event_id_for("process", pid, seq),
        "process",
        pid,
        seq,
        payload.TYPE,
        T + seq,
        "acme",
        "tester",
        f"cmd-{seq}",
        "corr",
        "",
        payload,
    )


def test_rebuild_skips_an_event_that_leaves_a_seq_gap_as_the_projector_does() -> None:
    # The projector dead-letters an event whose seq leaves a gap; a decider that folded
    # it would number the aggregate's next events after it, and the projector would
    # refuse every one of them as a gap too.
    known: dict[str, Aggregate] = {}
    assert remember(known, _event("p1", 1, e.ProcessCreated("scan")), 0, 0)
    assert not remember(known, _event("p1", 3, e.ProcessStarted()), 0, 1)
    state = known["process:p1"].state
    assert state.seq == 1
    assert "cmd-3" not in known["process:p1"].commands


def test_rebuild_skips_an_event_evolve_refuses_instead_of_failing_the_start() -> None:
    known: dict[str, Aggregate] = {}
    assert not remember(known, _event("p2", 1, e.ProcessStarted()), 0, 0)  # no created
    assert known.get("process:p2") is None or known["process:p2"].state is None
    assert remember(known, _event("p3", 1, e.ProcessCreated("scan")), 0, 1)
    assert known["process:p3"].state.seq == 1


def test_outcomes_of_one_batch_keep_command_order_and_decision_times() -> None:
    # Audit lists an aggregate's commands by decided_at, outcomes in log order: a
    # rejection decided after an accepted command must not come out before it.
    ticks = iter(range(T, T + 1000))
    decider, publisher = _decider()
    decider.clock = lambda: next(ticks)
    batch = {
        TP: [
            _Msg(
                0, _key("p1"), serde.encode_command(CODEC, _cmd("c1", "p1", c.CreateProcess("s")))
            ),
            _Msg(1, _key("p1"), serde.encode_command(CODEC, _cmd("c2", "p1", c.Approve()))),
            _Msg(2, _key("p1"), serde.encode_command(CODEC, _cmd("c3", "p1", c.StartProcess()))),
        ]
    }
    asyncio.run(decider._process(batch))  # noqa: SLF001
    outcomes = [serde.decode_outcome(CODEC, v) for _, v, _ in publisher.to(TOPICS.outcomes)]
    assert [(o.command_id, o.accepted) for o in outcomes] == [
        ("c1", True),
        ("c2", False),
        ("c3", True),
    ]
    times = [o.decided_at for o in outcomes]
    assert times == sorted(times) and len(set(times)) == 3


def test_a_waiting_caller_gets_the_state_its_own_command_left() -> None:
    decider, publisher = _decider()
    create = Command(
        "c1", "process", "p1", T, "acme", "t", "corr", "", c.CreateProcess("s"), "node-1"
    )
    cancel = Command("c2", "process", "p1", T, "acme", "t", "corr", "", c.CancelProcess(), "n2")
    batch = {
        TP: [
            _Msg(0, _key("p1"), serde.encode_command(CODEC, create)),
            _Msg(1, _key("p1"), serde.encode_command(CODEC, cancel)),
        ]
    }
    asyncio.run(decider._process(batch))  # noqa: SLF001
    first, second = [serde.decode_outcome(CODEC, v) for _, v, _ in publisher.to(TOPICS.outcomes)]
    assert first.state_json is not None and second.state_json is not None
    assert json.loads(first.state_json)["status"] == "pending"
    assert json.loads(second.state_json)["status"] == "cancelled"
