"""The projector's pure parts: fold_batch, the state cache and the watermark (no broker)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

import pytest

from projections.cache import Layered, StateCache
from projections.fold import (
    REJECTED,
    SEQUENCE_GAP,
    UNDECODABLE,
    RawMessage,
    State,
    StreamId,
    fold_batch,
)
from projections.watermark import Watermark
from schemas import default_codec
from streams.domain import commands as c
from streams.domain import process
from streams.domain.aggregates import evolve, stream_key
from streams.domain.events import Event, StepDefinition
from streams.serde import encode_event

T0 = 1_700_000_000_000_000
TOPIC = "test.ledger.events"


def decide_all(pid: str, bodies: Sequence[c.Body], account: str = "acme") -> list[Event]:
    """The events the decider emits for ``bodies`` sent in order to Process ``pid``."""
    state: process.ProcessState | None = None
    out: list[Event] = []
    for i, body in enumerate(bodies):
        cmd = c.Command(
            f"{pid}-{i}", "process", pid, T0 + i * 1000, account, "tester", "r", "r", body
        )
        for event in process.decide(state, cmd):
            state = process.evolve(state, event)
            out.append(event)
    return out


def lifecycle(pid: str, account: str = "acme") -> list[Event]:
    steps = (StepDefinition("fetch", "Fetch", 1), StepDefinition("parse", "Parse", 2))
    return decide_all(
        pid,
        [
            c.CreateProcess("scan", "site-1", '{"url":"https://example.org"}', steps),
            c.StartProcess(),
            c.StartStep("fetch"),
            c.ReportProgress(40.0, "fetching"),
            c.CompleteStep("fetch"),
            c.CompleteProcess("page-1", '{"pages":1}'),
        ],
        account,
    )


def messages(events: Sequence[Event], partition: int = 0, first: int = 0) -> list[RawMessage]:
    codec = default_codec()
    return [
        RawMessage(
            partition,
            first + i,
            encode_event(codec, ev),
            stream_key(ev.aggregate_type, ev.aggregate_id).encode(),
        )
        for i, ev in enumerate(events)
    ]


def folded(events: Sequence[Event]) -> State:
    state: State | None = None
    for event in events:
        state = evolve(state, event)
    assert state is not None
    return state


def test_fold_applies_events_with_the_deciders_evolve() -> None:
    events = lifecycle("p-1")
    batch = fold_batch({}, messages(events), topic=TOPIC)
    assert batch.events == tuple(events)
    assert batch.offsets == tuple(range(len(events)))
    assert batch.states == {("process", "p-1"): folded(events)}
    final = folded(events)
    assert isinstance(final, process.ProcessState)
    assert {step for _, step in batch.steps} == set(final.steps)
    assert batch.steps_replaced == frozenset()
    assert batch.positions == {0: len(events)}
    assert batch.dead_letters == () and batch.duplicates == 0


def test_a_duplicate_is_dropped_and_changes_nothing() -> None:
    events = lifecycle("p-1")
    twice = [*events[:3], events[2], *events[3:]]  # the decider re-published seq 3
    batch = fold_batch({}, messages(twice), topic=TOPIC)
    assert batch.duplicates == 1
    assert batch.events == tuple(events)
    assert batch.states == {("process", "p-1"): folded(events)}
    assert batch.positions == {0: len(twice)}

    again = fold_batch(dict(batch.states), messages(events), topic=TOPIC)
    assert again.duplicates == len(events)
    assert again.events == () and again.states == {} and again.steps == ()
    assert again.positions == {0: len(events)}


def test_gap_garbage_and_refused_events_go_to_the_dead_letters_and_the_batch_goes_on() -> None:
    one, two = lifecycle("p-1"), lifecycle("p-2")
    started = decide_all("p-3", [c.CreateProcess("scan"), c.StartProcess()])[1]
    orphan = replace(started, seq=1)  # a first event that is not "created"
    sequence = [one[0], one[1], one[3], orphan, *two]  # one[2] is missing: a gap
    msgs = messages(sequence)
    msgs.insert(2, RawMessage(0, 99, b"not avro at all", b"k"))
    msgs.append(RawMessage(0, 100, None, b"tombstone"))

    batch = fold_batch({}, msgs, topic=TOPIC)

    reasons = [(d.reason, d.message.offset) for d in batch.dead_letters]
    assert (UNDECODABLE, 99) in reasons and (UNDECODABLE, 100) in reasons
    assert (SEQUENCE_GAP, 2) in reasons
    assert (REJECTED, 3) in reasons
    assert len(reasons) == 4
    gap = next(d for d in batch.dead_letters if d.reason == SEQUENCE_GAP)
    assert "at seq 2; seq 4" in gap.error and gap.message.value == msgs[3].value
    assert batch.states[("process", "p-1")] == folded(one[:2])
    assert batch.states[("process", "p-2")] == folded(two)
    assert ("process", "p-3") not in batch.states
    assert batch.positions == {0: 101}


def test_states_missing_from_the_cache_are_loaded_once() -> None:
    events = lifecycle("p-1") + lifecycle("p-2")
    cached = {("process", "p-1"): folded(events[:2])}
    stored = {("process", "p-2"): folded(events[6:9])}
    asked: list[list[StreamId]] = []

    def load(keys: object) -> dict[StreamId, State]:
        asked.append(sorted(keys))  # type: ignore[call-overload]
        return stored

    batch = fold_batch(cached, messages(events), topic=TOPIC, load=load)
    assert asked == [[("process", "p-2")]]
    assert batch.duplicates == 2 + 3
    assert batch.states == {
        ("process", "p-1"): folded(events[:6]),
        ("process", "p-2"): folded(events[6:]),
    }
    assert batch.loaded == stored
    assert cached == {("process", "p-1"): folded(events[:2])}  # the cache is not touched


def test_partitions_keep_their_own_positions() -> None:
    a, b = lifecycle("p-1"), lifecycle("p-2")
    batch = fold_batch({}, messages(a, 0, 10) + messages(b, 1, 500), topic=TOPIC)
    assert batch.positions == {0: 10 + len(a), 1: 500 + len(b)}
    assert batch.partitions == (0,) * len(a) + (1,) * len(b)


def test_the_cache_evicts_the_least_recently_written() -> None:
    states = {("process", f"p-{i}"): folded(lifecycle(f"p-{i}")[:1]) for i in range(4)}
    keys = list(states)
    cache = StateCache(3)
    cache.remember({k: states[k] for k in keys[:3]})
    cache.remember({keys[0]: states[keys[0]]})  # written again: now the newest
    cache.remember({keys[3]: states[keys[3]]})
    assert set(cache) == {keys[0], keys[2], keys[3]}
    with pytest.raises(ValueError):
        StateCache(0)


def test_a_batch_being_written_shadows_the_cache() -> None:
    events = lifecycle("p-1")
    old, new, other = folded(events[:1]), folded(events[:3]), folded(lifecycle("p-2")[:1])
    key, key2 = ("process", "p-1"), ("process", "p-2")
    layered = Layered({key: new}, {key: old, key2: other})
    assert layered.get(key) is new and layered[key2] is other
    assert key in layered and ("process", "nope") not in layered
    assert layered.get(("process", "nope")) is None
    assert sorted(layered) == [key, key2] and len(layered) == 2
    batch = fold_batch(layered, messages(events), topic=TOPIC)
    assert batch.duplicates == 3 and len(batch.events) == len(events) - 3


def test_watermark_wakes_waiters_and_times_out() -> None:
    async def scenario() -> None:
        mark = Watermark({0: 5})
        assert mark.applied(0, 4) and not mark.applied(0, 5)
        assert await mark.wait_for(0, 4, timeout=0.01)
        assert not await mark.wait_for(0, 7, timeout=0.01)
        waiter = asyncio.ensure_future(mark.wait_for(0, 7, timeout=5))
        ends = asyncio.ensure_future(mark.wait_for_end({0: 8, 1: 2}, timeout=5))
        await asyncio.sleep(0)
        mark.advance(0, 8)
        assert await waiter
        assert not ends.done()
        mark.advance_all({1: 2, 0: 3})  # never moves back
        assert await ends
        assert mark.snapshot() == {0: 8, 1: 2}
        assert await mark.wait_for_end({}, timeout=0)

    asyncio.run(scenario())


def test_only_changed_steps_are_rewritten_unless_one_went_away() -> None:
    from projections.fold import _changed_steps

    events = lifecycle("p-1")
    before = folded(events[:3])  # created, started, fetch started
    after = evolve(evolve(before, events[3]), events[4])  # progress, fetch completed
    assert isinstance(before, process.ProcessState) and isinstance(after, process.ProcessState)
    replaced: set[str] = set()
    assert _changed_steps(after, before.steps, replaced) == [("p-1", after.steps[0])]
    assert _changed_steps(after, (), replaced) == [("p-1", s) for s in after.steps]
    assert replaced == set()
    fewer = replace(after, steps=after.steps[1:])
    assert _changed_steps(fewer, after.steps, replaced) == [("p-1", after.steps[1])]
    assert replaced == {"p-1"}
