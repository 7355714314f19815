"""What an SSE reconnect reads: a client that missed nothing needs no history, and one a
few events behind reads only the rows after a state a stream kept
(api/stream_states.py), while every message still carries the fold of the history up
to its event.

The node's app over the fake ledger of ``test_streams_review2`` (real Broadcaster, the
app driven through httpx's ASGI transport; a stream ends after its window), with a read
model that records every call.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from api.broadcaster import Applied, Broadcaster
from api.process_cache import ProcessCache
from api.representations import process_json
from api.stream_resume import from_kept
from api.stream_states import StreamStates
from projections.event_rows import event_row
from projections.rows import EventRow
from streams.domain.events import Event
from tests.unit.test_streams_review2 import (
    Ledger,
    Node,
    Positions,
    Reads,
    asgi_node,
    messages,
    process_events,
)

WINDOW_S = 0.3


class CountingReads(Reads):
    """:class:`Reads` that records each call: its name and, for the history reads, the
    page asked for (``list_events``: offset, limit; ``events_after``: seq, limit)."""

    def __init__(self, ledger: Ledger) -> None:
        super().__init__(ledger)
        self.calls: list[tuple[Any, ...]] = []

    def list_events(
        self, account: str, aggregate_id: str, *, limit: int, offset: int, aggregate_type: str
    ) -> Any:
        self.calls.append(("list_events", offset, limit))
        return super().list_events(
            account, aggregate_id, limit=limit, offset=offset, aggregate_type=aggregate_type
        )

    def events_after(
        self, account: str, aggregate_id: str, aggregate_type: str, seq: int, limit: int
    ) -> Any:
        self.calls.append(("events_after", seq, limit))
        return super().events_after(account, aggregate_id, aggregate_type, seq, limit)

    def last_event(self, account: str, aggregate_id: str, aggregate_type: str) -> Any:
        self.calls.append(("last_event",))
        return super().last_event(account, aggregate_id, aggregate_type)

    def get_process(self, account: str, aggregate_id: str) -> Any:
        self.calls.append(("get_process",))
        return super().get_process(account, aggregate_id)

    def events_since(
        self, account: str, cursor: Any, aggregate_types: Any, limit: Any = None
    ) -> Any:
        self.calls.append(("events_since",))
        return super().events_since(account, cursor, aggregate_types, limit)

    def history_calls(self) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] in ("list_events", "events_after", "last_event")]


class CachedLedger(Ledger):
    """A :class:`Ledger` whose commits drop what they touch from the node's process
    cache, as the projector's listener does."""

    cache: ProcessCache | None = None

    def apply(self, events: Sequence[Event], partition: int) -> list[Applied]:
        added = super().apply(events, partition)
        if self.cache is not None:
            self.cache.forget(events)
        return added


def counting_node(cache: bool) -> tuple[Node, CountingReads]:
    ledger = CachedLedger()
    ledger.cache = ProcessCache() if cache else None
    reads, positions, broadcaster = CountingReads(ledger), Positions(ledger), Broadcaster()
    _, client = asgi_node(
        reads, positions, broadcaster, window_s=WINDOW_S, process_cache=ledger.cache
    )
    return Node(ledger, reads, positions, broadcaster, client), reads


async def stream(n: Node, path: str, last: str | None = None) -> list[Any]:
    headers = {"Last-Event-ID": last} if last else {}
    r = await n.client.get(path, headers=headers)
    assert r.status_code == 200, r.text
    return messages(r.text)


def position(a: Applied) -> str:
    return f"{a.row.partition}:{a.row.offset}"


def assert_exact(n: Node, found: list[Any]) -> None:
    """Every data message's state is the fold of the history up to its event (the
    ledger's states come from one fold of it all)."""
    folded = {position(a): a.state for a in n.ledger.applied}
    for m in found:
        if m.data and m.event != "done":
            state = json.loads(m.data)["state"]
            assert state == json.loads(json.dumps(process_json(folded[m.id])))


@pytest.mark.parametrize("cache", [True, False])
def test_a_reconnect_that_missed_nothing_reads_no_history(cache: bool) -> None:
    async def scenario() -> None:
        n, reads = counting_node(cache)
        n.ledger.apply(process_events("p-1", 40, complete=False), 1)
        first = await stream(n, "/process/p-1/stream")
        assert [m.id for m in first if m.data] == [position(a) for a in n.ledger.applied]
        for _ in range(3):  # the reconnects at the end of each window
            reads.calls.clear()
            again = await stream(n, "/process/p-1/stream", position(n.ledger.applied[-1]))
            assert [m for m in again if m.data] == []
            assert reads.history_calls() == []
        # At most the current state is read, and with the node's cache, nothing at all.
        assert reads.calls == ([] if cache else [("get_process",)])

    asyncio.run(scenario())


def test_a_fresh_nodes_reconnect_that_missed_nothing_reads_only_the_newest_event() -> None:
    async def scenario() -> None:
        n, reads = counting_node(cache=False)
        n.ledger.apply(process_events("p-1", 40, complete=False), 1)
        found = await stream(n, "/process/p-1/stream", position(n.ledger.applied[-1]))
        assert [m for m in found if m.data] == []
        assert reads.history_calls() == [("last_event",)]

    asyncio.run(scenario())


def test_a_reconnect_a_few_events_behind_reads_only_the_rows_after_its_id() -> None:
    async def scenario() -> None:
        n, reads = counting_node(cache=True)
        events = process_events("p-1", 40)
        n.ledger.apply(events[:30], 1)
        await stream(n, "/process/p-1/stream")  # follows to the newest event: seq 30
        seen = position(n.ledger.applied[-1])
        n.ledger.apply(events[30:35], 1)  # committed while the client was away
        reads.calls.clear()
        found = await stream(n, "/process/p-1/stream", seen)
        assert [m.id for m in found if m.data] == [position(a) for a in n.ledger.applied[30:]]
        assert_exact(n, found)
        assert reads.history_calls() == [("events_after", 30, 500)]  # seqs 31 on only
        # And to the end: the rest, then done, again from where the last one stopped.
        seen = position(n.ledger.applied[-1])
        n.ledger.apply(events[35:], 1)
        reads.calls.clear()
        found = await stream(n, "/process/p-1/stream", seen)
        assert [m.id for m in found if m.data and m.event != "done"] == [
            position(a) for a in n.ledger.applied[35:]
        ]
        assert found[-1].event == "done"
        assert_exact(n, found)
        assert reads.history_calls() == [("events_after", 35, 500)]

    asyncio.run(scenario())


def test_a_reconnect_between_kept_states_folds_from_the_one_before_its_id() -> None:
    async def scenario() -> None:
        n, reads = counting_node(cache=True)
        events = process_events("p-1", 50, complete=False)
        n.ledger.apply(events[:42], 1)
        await stream(n, "/process/p-1/stream")  # keeps seq 42, the newest
        n.ledger.apply(events[42:45], 1)
        await stream(n, "/process/p-1/stream", position(n.ledger.applied[41]))  # keeps 45
        n.ledger.apply(events[45:48], 1)
        reads.calls.clear()
        # Seen up to seq 44: folds from 42 (the newest kept before it), sends 45 to 48.
        found = await stream(n, "/process/p-1/stream", position(n.ledger.applied[43]))
        assert [m.id for m in found if m.data] == [position(a) for a in n.ledger.applied[44:]]
        assert_exact(n, found)
        assert reads.history_calls() == [("events_after", 42, 500)]

    asyncio.run(scenario())


def test_the_account_stream_folds_a_few_missed_events_from_a_kept_state() -> None:
    async def scenario() -> None:
        n, reads = counting_node(cache=True)
        events = process_events("p-1", 40, complete=False)
        n.ledger.apply(events[:30], 1)
        await stream(n, "/process/p-1/stream")  # keeps seq 30
        cursor = f"0:-1,1:{n.ledger.applied[-1].row.offset}"
        n.ledger.apply(events[30:], 1)
        reads.calls.clear()
        found = await stream(n, "/stream", cursor)
        assert [m.id for m in found if m.data] == [
            f"0:-1,1:{a.row.offset}" for a in n.ledger.applied[30:]
        ]
        folded = {a.row.offset: a.state for a in n.ledger.applied}
        for m in found:
            if m.data:
                offset = int(m.id.rsplit(":", 1)[1])
                expected = json.loads(json.dumps(process_json(folded[offset])))
                assert json.loads(m.data)["state"] == expected
        assert reads.history_calls() == [("events_after", 30, 12)]

    asyncio.run(scenario())


def test_the_account_streams_reconnect_at_the_end_reads_nothing_and_misses_nothing() -> None:
    async def scenario() -> None:
        n, reads = counting_node(cache=True)
        events = process_events("p-1", 10, complete=False)
        n.ledger.apply(events[:6], 1)
        end = f"0:-1,1:{n.ledger.applied[-1].row.offset}"
        reads.calls.clear()
        found = await stream(n, "/stream", end)
        assert [m for m in found if m.data] == [] and reads.calls == []
        # Behind on one partition only: read as before, from the cursor on.
        before = f"0:-1,1:{n.ledger.applied[-2].row.offset}"
        found = await stream(n, "/stream", before)
        assert [m.id for m in found if m.data] == [end]
        assert ("events_since",) in reads.calls

        async def commit_soon() -> None:  # live, once the stream is open
            await asyncio.sleep(WINDOW_S / 3)
            n.publish(n.ledger.apply(events[6:], 1))

        task = asyncio.create_task(commit_soon())
        found = await stream(n, "/stream", end)
        await task
        assert [m.id for m in found if m.data] == [
            f"0:-1,1:{a.row.offset}" for a in n.ledger.applied[6:]
        ]

    asyncio.run(scenario())


# -- the kept states themselves ----------------------------------------------------------


def applied(seq: int, offset: int | None = None, partition: int = 1) -> Applied:
    """Process p-1's event ``seq`` (at offset ``seq * 10``) with a stand-in state."""
    row = EventRow(
        "process", "p-1", seq, f"e{seq}", "process.progress", seq, "acme", "me",
        f"c{seq}", "corr", "cause", "{}", partition, seq * 10 if offset is None else offset,
        "running",
    )  # fmt: skip
    return Applied(row, seq)


def test_kept_states_stay_spread_with_the_oldest_and_newest_and_bounded() -> None:
    states = StreamStates(aggregates=2, per_aggregate=4)
    for seq in (2, 3, 4, 5, 6, 9, 20):
        states.keep(applied(seq))
    key = ("acme", "process", "p-1")
    kept = [
        seq for seq in range(1, 25) if (a := states.at_or_before_seq(key, seq)) and a.row.seq == seq
    ]
    assert len(kept) == 4 and kept[0] == 2 and kept[-1] == 20
    found = states.at_or_before_position(key, (1, 85))
    assert found is not None and found.row.seq <= 8
    assert states.at_or_before_position(key, (0, 10_000)) is None  # another partition
    assert states.at_or_before_seq(key, 1) is None


def test_the_states_near_the_newest_stay_where_clients_resume() -> None:
    # Each page's last state of a long history, then streams ending at the newest
    # events: the state a client resumes from (the one its stream sent last) stays,
    # and older ones thin out.
    states = StreamStates(per_aggregate=16)
    key = ("acme", "process", "p-1")
    for seq in [*range(500, 10_001, 500), 10_005, 10_009, 10_010]:
        states.keep(applied(seq))
        assert states.at_or_before_seq(key, seq) == applied(seq)  # just kept: there
    for seq in (10_000, 10_005, 10_009, 10_010):
        found = states.at_or_before_seq(key, seq)
        assert found is not None and found.row.seq == seq
    found = states.at_or_before_seq(key, 4_321)
    assert found is not None and found.row.seq in range(500, 4_322)


def test_the_least_recently_used_aggregate_is_dropped_first() -> None:
    states = StreamStates(aggregates=2, per_aggregate=3)
    a, b, c = (
        Applied(event_row(process_events(pid, 1, complete=False)[0], 0, 0, ""), pid)
        for pid in ("p-a", "p-b", "p-c")
    )
    states.keep(a)
    states.keep(b)
    assert states.at_or_before_seq(("acme", "process", "p-a"), 1) is a  # a is used again
    states.keep(c)
    assert states.at_or_before_seq(("acme", "process", "p-b"), 1) is None
    assert states.at_or_before_seq(("acme", "process", "p-a"), 1) is a
    assert len(states) == 2


def test_rows_that_do_not_follow_the_kept_state_fall_back_to_the_whole_fold() -> None:
    ledger = Ledger()
    ledger.apply(process_events("p-1", 10, complete=False), 1)

    class Shifted:
        """A read model whose rows after a seq are not the seqs after the kept one."""

        def events_after(self, *args: Any) -> Any:
            seq, _ = args[-2:]
            return [a.row for a in ledger.applied[seq + 2 : seq + 4]]

    async def current() -> None:
        return None

    states = StreamStates()
    base = ledger.applied[4]  # seq 5
    states.keep(base)
    ctx: Any = SimpleNamespace(
        deps=SimpleNamespace(reads=Shifted(), sse_backlog_page=500),
        principal=SimpleNamespace(account="acme"),
    )
    after = (1, base.row.offset + 1)
    assert asyncio.run(from_kept(ctx, states, "process", "p-1", after, current)) is None
