"""What an SSE stream may hold of a node: a capped slot per account, freed however the
stream ends; a backlog read in bounded pages with no gap and no duplicate, also while
events are committed; a write that stalls past its bound ends the stream.

The node is the fake of tests/unit/test_streams_review2.py (a ledger in memory behind
the read model and the broadcaster), served in-process over ASGI.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from api.broadcaster import Applied, Broadcaster
from api.stream_limits import LimitedStream, SendTimedOut, StreamSlots, TimedSend
from projections.rows import EventRow
from runledger.settings import Settings, SettingsError
from streams.domain.events import Event
from tests.unit.test_streams_review2 import (
    OTHER_TOKEN,
    TOKEN,
    Ledger,
    Positions,
    Reads,
    asgi_node,
    last_id,
    messages,
    process_events,
)

WINDOW_S = 0.6
PAGE = 7


class PagedReads(Reads):
    """Reads that record how many rows each backlog read asked for and returned (the
    account-wide ones in ``since``), and may run ``during`` (a commit on the node)
    before answering the n-th read."""

    def __init__(self, ledger: Ledger) -> None:
        super().__init__(ledger)
        self.reads: list[tuple[int | None, int]] = []
        self.since: list[tuple[int | None, int]] = []
        self.during: dict[int, Any] = {}

    def _note(self, limit: int | None, found: Sequence[EventRow]) -> None:
        self.reads.append((limit, len(found)))

    def _before(self) -> None:
        action = self.during.pop(len(self.reads), None)
        if action is not None:
            action()

    def list_events(
        self, account: str, aggregate_id: str, *, limit: int, offset: int, aggregate_type: str
    ) -> tuple[int, list[EventRow]]:
        self._before()
        count, found = super().list_events(
            account, aggregate_id, limit=limit, offset=offset, aggregate_type=aggregate_type
        )
        self._note(limit, found)
        return count, found

    def events_after(
        self, account: str, aggregate_id: str, aggregate_type: str, seq: int, limit: int
    ) -> list[EventRow]:
        self._before()
        found = super().events_after(account, aggregate_id, aggregate_type, seq, limit)
        self._note(limit, found)
        return found

    def events_since(
        self,
        account: str,
        cursor: dict[int, int],
        aggregate_types: Sequence[str],
        limit: int | None = None,
    ) -> list[EventRow]:
        self._before()
        found = super().events_since(account, cursor, aggregate_types, limit)
        self._note(limit, found)
        self.since.append((limit, len(found)))
        return found


@dataclass
class Node:
    ledger: Ledger
    reads: PagedReads
    broadcaster: Broadcaster
    app: Starlette
    client: httpx.AsyncClient

    @property
    def slots(self) -> StreamSlots:
        slots: StreamSlots = self.app.state.stream_slots
        return slots


def node(cap: int = 100, window_s: float = WINDOW_S, token: str = TOKEN) -> Node:
    ledger = Ledger()
    reads, broadcaster = PagedReads(ledger), Broadcaster()
    app, client = asgi_node(
        reads,
        Positions(ledger),
        broadcaster,
        token=token,
        window_s=window_s,
        sse_max_streams_per_account=cap,
        sse_backlog_page=PAGE,
    )
    return Node(ledger, reads, broadcaster, app, client)


def other_client(n: Node) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=n.app),
        base_url="http://node",
        headers={"Authorization": f"Bearer {OTHER_TOKEN}"},
        timeout=10.0,
    )


async def until(check: Any, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition did not hold in time")


# -- the cap --------------------------------------------------------------------------


def test_slots_count_per_account_and_free_once() -> None:
    slots = StreamSlots(2)
    a, b = slots.take("acme"), slots.take("acme")
    assert a is not None and b is not None and slots.take("acme") is None
    assert slots.take("globex") is not None  # another account has its own slots
    a.release()
    a.release()  # twice frees once
    assert slots.open("acme") == 1
    assert slots.take("acme") is not None and slots.take("acme") is None


def test_over_the_cap_is_a_429_with_retry_after_and_other_accounts_are_not_blocked() -> None:
    async def scenario() -> None:
        n = node(cap=2)
        n.ledger.apply(process_events("p-1", 1, complete=False), 0)
        held = [asyncio.ensure_future(n.client.get("/process/p-1/stream")) for _ in range(2)]
        await until(lambda: n.slots.open("acme") == 2)
        refused = await n.client.get("/stream")
        assert refused.status_code == 429
        error = refused.json()["error"]
        assert error["code"] == "too_many_streams"
        assert "2 open streams" in error["message"]
        assert "RUNLEDGER_SSE_MAX_STREAMS_PER_ACCOUNT" in error["message"]
        assert int(refused.headers["Retry-After"]) >= 1
        async with other_client(n) as globex:
            assert (await globex.get("/stream")).status_code == 200
        for done in await asyncio.gather(*held):  # the window ends them: slots freed
            assert done.status_code == 200
        assert n.slots.open("acme") == 0
        assert (await n.client.get("/stream")).status_code == 200

    asyncio.run(scenario())


def test_every_way_a_stream_ends_frees_its_slot() -> None:
    async def scenario() -> None:
        n = node(cap=1, window_s=5.0)
        n.ledger.apply(process_events("p-done", 2), 0)
        n.ledger.apply(process_events("p-live", 1, complete=False), 1)
        # done: a finished Process's stream ends at once.
        assert "event: done" in (await n.client.get("/process/p-done/stream")).text
        assert n.slots.open("acme") == 0
        # errors before the stream starts: 404, bad Last-Event-ID.
        assert (await n.client.get("/process/nope/stream")).status_code == 404
        bad = await n.client.get("/process/p-live/stream", headers={"Last-Event-ID": "x"})
        assert bad.status_code == 400 and n.slots.open("acme") == 0
        # the client goes away mid-stream.
        gone = asyncio.ensure_future(n.client.get("/process/p-live/stream"))
        await until(lambda: n.slots.open("acme") == 1 and n.broadcaster.subscribers == 1)
        gone.cancel()
        await until(lambda: n.slots.open("acme") == 0 and n.broadcaster.subscribers == 0)
        # dropped: the subscription overflowed (the client fell too far behind).
        dropped = asyncio.ensure_future(n.client.get("/process/p-live/stream"))
        await until(lambda: n.broadcaster.subscribers == 1)
        for sub in list(n.broadcaster._by_aggregate[("process", "p-live")]):
            sub.end()
        assert ": dropped" in (await dropped).text
        assert n.slots.open("acme") == 0 and n.broadcaster.subscribers == 0

    asyncio.run(scenario())


def test_a_stream_whose_backlog_read_fails_frees_its_slot() -> None:
    async def scenario() -> None:
        n = node(cap=1)
        n.ledger.apply(process_events("p-1", 3 * PAGE), 0)

        def fail() -> None:
            raise RuntimeError("the store went away")

        n.reads.during[1] = fail  # the second page
        with pytest.raises(RuntimeError):
            await n.client.get("/process/p-1/stream")
        assert n.slots.open("acme") == 0 and n.broadcaster.subscribers == 0

    asyncio.run(scenario())


# -- the backlog in pages -------------------------------------------------------------


def positions(applied: Sequence[Applied]) -> list[str]:
    return [f"{a.row.partition}:{a.row.offset}" for a in applied]


def commit(n: Node, loop: asyncio.AbstractEventLoop, events: list[Event], partition: int) -> Any:
    """A commit on the node while a page is read (on a worker thread): the row is in
    the store at once, the broadcaster hears of it on the loop, as the projector does."""

    def run() -> None:
        added = n.ledger.apply(events, partition)
        loop.call_soon_threadsafe(n.broadcaster.publish, added)

    return run


def test_a_long_history_is_read_in_pages_and_sent_whole_while_events_arrive() -> None:
    async def scenario() -> None:
        n = node(window_s=2.0)
        events = process_events("p-1", 6 * PAGE + 3)  # about seven pages, then complete
        first, later = events[: 5 * PAGE], events[5 * PAGE :]
        n.ledger.apply(first, 0)
        loop = asyncio.get_running_loop()
        # Between the second and third page, and as the last page is read.
        n.reads.during[2] = commit(n, loop, later[:4], 0)
        n.reads.during[5] = commit(n, loop, later[4:], 0)
        found = messages((await n.client.get("/process/p-1/stream")).text)
        ids = [m.id for m in found if m.id is not None]
        assert ids == positions(n.ledger.applied)
        assert found[-1].event == "done"
        assert all(limit == PAGE and got <= PAGE for limit, got in n.reads.reads)
        assert len(n.reads.reads) >= 6
        # Every state is the fold up to its event (a page starts from the one before).
        for m in found:
            data = json.loads(m.data)
            if m.id is not None and data["event"]["type"] == "process.progress":
                assert data["state"]["progress"] == data["event"]["data"]["progress"]
                assert data["state"]["time_updated"] == data["event"]["created_at"]

    asyncio.run(scenario())


def test_a_resume_far_behind_pages_its_backlog_without_gap_or_duplicate() -> None:
    async def scenario() -> None:
        n = node(window_s=2.0)
        n.ledger.apply(process_events("p-1", 5 * PAGE, complete=False), 1)
        resume = positions(n.ledger.applied)[3]
        loop = asyncio.get_running_loop()
        more = process_events("p-1", 5 * PAGE + 4)[5 * PAGE + 2 :]  # 2 progress, complete
        n.reads.during[3] = commit(n, loop, more, 1)
        text = (await n.client.get("/process/p-1/stream", headers={"Last-Event-ID": resume})).text
        ids = [m.id for m in messages(text) if m.id is not None]
        assert ids == positions(n.ledger.applied)[4:]
        assert max(got for _, got in n.reads.reads) <= PAGE

    asyncio.run(scenario())


def test_the_account_stream_pages_its_backlog_across_partitions_while_events_arrive() -> None:
    async def scenario() -> None:
        n = node(window_s=1.5)
        n.ledger.apply(process_events("p-old", 1), 0)
        cursor = last_id(messages((await n.client.get("/stream")).text))
        assert cursor is not None
        for i in range(3):
            n.ledger.apply(process_events(f"p-a{i}", PAGE), 0)
            n.ledger.apply(process_events(f"p-b{i}", PAGE), 1)
        before = len(n.ledger.applied)
        loop = asyncio.get_running_loop()
        # Partition 0 is read first: these land behind pages already read, and on 1.
        n.reads.during[len(n.reads.reads) + 3] = commit(n, loop, process_events("p-x", 2), 0)
        n.reads.during[len(n.reads.reads) + 5] = commit(n, loop, process_events("p-y", 2), 1)
        n.reads.reads.clear()
        text = (await n.client.get("/stream", headers={"Last-Event-ID": cursor})).text
        got = [json.loads(m.data)["event"]["position"] for m in messages(text) if m.data]
        expected = positions([a for a in n.ledger.applied if a.row.aggregate_id != "p-old"])
        assert len(n.ledger.applied) > before
        assert sorted(got) == sorted(expected) and len(got) == len(set(got))
        for partition in (0, 1):  # in order on each partition
            mine = [int(p.split(":")[1]) for p in got if p.startswith(f"{partition}:")]
            assert mine == sorted(mine)
        assert len(n.reads.since) >= 6
        assert all(limit == PAGE and got <= PAGE for limit, got in n.reads.since)

    asyncio.run(scenario())


# -- the write bound --------------------------------------------------------------------


def test_a_write_that_does_not_complete_within_the_bound_raises() -> None:
    async def scenario() -> None:
        called: list[str] = []
        blocked: list[bool] = []

        async def send(message: Any) -> None:
            if message["body"] == b"stall":
                blocked.append(True)
                await asyncio.sleep(3600)

        loop = asyncio.get_running_loop()
        timed = TimedSend(send, 0.1, lambda: called.append("abort"))
        await timed({"type": "http.response.body", "body": b"ok"})
        await asyncio.sleep(0.25)  # idle past the bound: no write to cut
        await timed({"type": "http.response.body", "body": b"ok"})
        assert not timed.timed_out and called == []
        started = loop.time()
        with pytest.raises(SendTimedOut):
            await timed({"type": "http.response.body", "body": b"stall"})
        took = loop.time() - started
        timed.close()
        assert blocked == [True] and 0.09 <= took < 0.5, took
        assert timed.timed_out and called == ["abort"]
        # The task that wrote is not left cancelled: it can go on (and clean up).
        await asyncio.sleep(0)

    asyncio.run(scenario())


def test_a_stalled_stream_ends_within_the_bound_and_frees_its_slot_and_body() -> None:
    async def scenario() -> None:
        slots = StreamSlots(1)
        slot = slots.take("acme")
        assert slot is not None
        closed: list[bool] = []

        async def body() -> Any:
            try:
                while True:
                    yield b": heartbeat\n\n"
                    await asyncio.sleep(0)
            finally:
                closed.append(True)

        sent: list[Any] = []

        async def send(message: Any) -> None:
            sent.append(message)
            if len(sent) > 3:  # the client's buffers are full from here on
                await asyncio.sleep(3600)

        async def receive() -> Any:
            await asyncio.sleep(3600)

        response = LimitedStream(body(), slot, 0.2)
        scope = {"type": "http", "asgi": {"spec_version": "2.3"}}
        await asyncio.wait_for(response(scope, receive, send), 2.0)
        assert slots.open("acme") == 0 and closed == [True]

    asyncio.run(scenario())


# -- the settings ----------------------------------------------------------------------


def test_the_limits_are_read_from_the_environment_with_defaults() -> None:
    defaults = Settings.from_env({})
    assert (
        defaults.sse_max_streams_per_account,
        defaults.sse_send_timeout_s,
        defaults.sse_backlog_page,
    ) == (100, 10.0, 500)
    env = {
        "RUNLEDGER_SSE_MAX_STREAMS_PER_ACCOUNT": "3",
        "RUNLEDGER_SSE_SEND_TIMEOUT_S": "2.5",
        "RUNLEDGER_SSE_BACKLOG_PAGE": "50",
    }
    read = Settings.from_env(env)
    assert (read.sse_max_streams_per_account, read.sse_send_timeout_s, read.sse_backlog_page) == (
        3,
        2.5,
        50,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SSE_MAX_STREAMS_PER_ACCOUNT", "0"),
        ("SSE_MAX_STREAMS_PER_ACCOUNT", "many"),
        ("SSE_SEND_TIMEOUT_S", "0"),
        ("SSE_SEND_TIMEOUT_S", "inf"),
        ("SSE_BACKLOG_PAGE", "0"),
    ],
)
def test_an_unusable_limit_is_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"RUNLEDGER_{name}"):
        Settings.from_env({f"RUNLEDGER_{name}": value})
