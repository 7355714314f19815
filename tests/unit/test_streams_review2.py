"""Found in a second review of the SSE streams: how they resume.

The node's app over a fake read model, positions and a real Broadcaster, driven in
one event loop through httpx's ASGI transport (a stream ends by itself after its
window, so the whole body can be read). Each test is a resume a client can hit:

- the account-wide stream must hand out a cursor before its first event, or a client
  whose first window had no event reconnects "from now on" and misses what happened
  while it was away;
- a Last-Event-ID of another partition than the aggregate's names nothing this stream
  sent: resuming from it skipped the whole history, silently;
- a Last-Event-ID past what the node has applied (a reconnect that lands on another
  node, behind the first) repeated events on a single-object stream and skipped them
  on the account-wide one; the node now catches up with the ledger first, and an id
  past the ledger's end is a 400 rather than a stream that stays silent.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from api import ApiDeps, create_app
from api.auth import token_hash
from api.broadcaster import Applied, Broadcaster
from projections.event_rows import event_row
from projections.rows import EventRow
from streams.domain import commands as c
from streams.domain.events import Event
from streams.domain.history import states_after
from tests.unit.test_projections_fold import decide_all

TOKEN = "rl_streams_review2"
AUTH_MEMORY_S = 2.1  # api.auth.Authenticator remembers a token for 2 s
OTHER_TOKEN = "rl_streams_review2_globex"
WINDOW_S = 0.4
TIMEOUT_S = 10.0


def process_events(
    pid: str, progresses: int, complete: bool = True, account: str = "acme"
) -> list[Event]:
    bodies: list[c.Body] = [c.CreateProcess("scan", "site-1", "{}", ()), c.StartProcess()]
    bodies += [c.ReportProgress(float(i), f"p{i}") for i in range(progresses)]
    if complete:
        bodies.append(c.CompleteProcess("done", "{}"))
    return decide_all(pid, bodies, account)


@dataclass
class Ledger:
    """What a node has applied: event rows with the state after each, by position."""

    applied: list[Applied] = field(default_factory=list)
    next: dict[int, int] = field(default_factory=lambda: {0: 0, 1: 0})

    def apply(self, events: Sequence[Event], partition: int) -> list[Applied]:
        """Append ``events`` (of one aggregate) to ``partition``; returns them applied."""
        mine = [a.state for a in self.applied if a.row.aggregate_id == events[0].aggregate_id]
        folded = states_after(events, mine[-1] if mine else None)
        added = []
        for ev, state in folded:
            offset = self.next[partition]
            self.next[partition] = offset + 1
            added.append(Applied(event_row(ev, partition, offset, state.status), state))
        self.applied.extend(added)
        return added


class Reads:
    """The read model calls the streams make, over a :class:`Ledger`."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.history_reads = 0
        self.revoked: set[str] = set()

    def token_account(self, digest: str) -> tuple[str, str] | None:
        accounts = {token_hash(TOKEN): "acme", token_hash(OTHER_TOKEN): "globex"}
        if digest in self.revoked:
            return None
        found = accounts.get(digest)
        return (found, "review") if found else None

    def _rows(self, account: str, aggregate_id: str, aggregate_type: str) -> list[EventRow]:
        return [
            a.row
            for a in self.ledger.applied
            if (a.row.account, a.row.aggregate_id, a.row.aggregate_type)
            == (account, aggregate_id, aggregate_type)
        ]

    def list_events(
        self, account: str, aggregate_id: str, *, limit: int, offset: int, aggregate_type: str
    ) -> tuple[int, list[EventRow]]:
        self.history_reads += 1
        found = self._rows(account, aggregate_id, aggregate_type)
        return len(found), found[offset : offset + limit]

    def events_after(
        self, account: str, aggregate_id: str, aggregate_type: str, seq: int, limit: int
    ) -> list[EventRow]:
        self.history_reads += 1
        found = self._rows(account, aggregate_id, aggregate_type)
        return [r for r in found if r.seq > seq][:limit]

    def last_event(self, account: str, aggregate_id: str, aggregate_type: str) -> EventRow | None:
        self.history_reads += 1
        found = self._rows(account, aggregate_id, aggregate_type)
        return found[-1] if found else None

    def get_process(self, account: str, aggregate_id: str) -> Any:
        rows = self._rows(account, aggregate_id, "process")
        found = [a.state for a in self.ledger.applied if a.row in rows]
        return found[-1] if found and not found[-1].deleted else None

    def events_since(
        self,
        account: str,
        cursor: dict[int, int],
        aggregate_types: Sequence[str],
        limit: int | None = None,
    ) -> list[EventRow]:
        rows = [
            a.row
            for a in self.ledger.applied
            if a.row.account == account
            and a.row.aggregate_type in aggregate_types
            and a.row.offset > cursor.get(a.row.partition, -1)
        ]
        return sorted(rows, key=lambda r: (r.partition, r.offset))[:limit]


class Positions:
    """The node's positions over a :class:`Ledger`. A wait for the ledger's end runs
    ``catch_up`` first (the node applying what it lacked), and fails when ``lagging``."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.waits = 0
        self.catch_up: Any = None
        self.lagging = False

    def applied(self) -> dict[int, int]:
        return dict(self.ledger.next)

    async def wait_for(self, partition: int, offset: int, timeout: float) -> bool:
        return self.ledger.next.get(partition, 0) > offset

    async def wait_for_end(self, timeout: float) -> bool:
        self.waits += 1
        if self.lagging:
            return False
        if self.catch_up is not None:
            self.catch_up()
            self.catch_up = None
        return True


@dataclass
class Node:
    ledger: Ledger
    reads: Reads
    positions: Positions
    broadcaster: Broadcaster
    client: httpx.AsyncClient

    def publish(self, applied: Sequence[Applied]) -> None:
        self.broadcaster.publish(applied)


def asgi_node(
    reads: Reads,
    positions: Positions,
    broadcaster: Broadcaster,
    *,
    token: str = TOKEN,
    window_s: float = WINDOW_S,
    **settings: Any,
) -> tuple[Any, httpx.AsyncClient]:
    """The node's app over the fake ledger's reads, and a client of it with ``token``;
    ``settings`` are further :class:`ApiDeps` fields."""
    deps = ApiDeps(
        reads=reads,  # type: ignore[arg-type]
        commands=None,  # type: ignore[arg-type]
        positions=positions,
        broadcaster=broadcaster,
        sse_window_s=window_s,
        sse_heartbeat_s=0.1,
        **settings,
    )
    app = create_app(deps)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://node",
        headers={"Authorization": f"Bearer {token}"},
        timeout=TIMEOUT_S,
    )
    return app, client


def node() -> Node:
    ledger = Ledger()
    reads, positions, broadcaster = Reads(ledger), Positions(ledger), Broadcaster()
    _, client = asgi_node(reads, positions, broadcaster)
    return Node(ledger, reads, positions, broadcaster, client)


@dataclass
class Message:
    id: str | None
    event: str | None
    data: str


def messages(text: str) -> list[Message]:
    """Every block of the stream with an ``id:`` or ``data:`` line, in order."""
    found = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if "id" in fields or "data" in fields:
            found.append(Message(fields.get("id"), fields.get("event"), fields.get("data", "")))
    return found


async def get(n: Node, path: str, last_id: str | None = None) -> httpx.Response:
    headers = {"Last-Event-ID": last_id} if last_id else {}
    return await n.client.get(path, headers=headers)


def last_id(found: Sequence[Message]) -> str | None:
    ids = [m.id for m in found if m.id is not None]
    return ids[-1] if ids else None


def test_an_account_stream_with_no_event_in_its_window_still_resumes_without_a_gap() -> None:
    async def scenario() -> list[str]:
        n = node()
        n.ledger.apply(process_events("p-old", 1), 0)  # before the client came
        first = await get(n, "/stream")
        assert first.status_code == 200, first.text
        # The window passed with no event; EventSource reconnects with the last id it got.
        resume = last_id(messages(first.text))
        assert resume is not None, "no cursor before the first event: a reconnect starts now"
        # While the client was away: a new Process on each partition.
        n.ledger.apply(process_events("p-a", 1), 0)
        n.ledger.apply(process_events("p-b", 1), 1)
        second = await get(n, "/stream", resume)
        assert second.status_code == 200, second.text
        return [json.loads(m.data)["event"]["position"] for m in messages(second.text) if m.data]

    got = asyncio.run(scenario())
    # Everything of p-a and p-b (offsets 4.. on partition 0, 0.. on 1), nothing of p-old.
    assert got == [f"0:{o}" for o in range(4, 8)] + [f"1:{o}" for o in range(4)]


def test_the_account_streams_first_cursor_is_where_the_node_is() -> None:
    async def scenario() -> str | None:
        n = node()
        n.ledger.apply(process_events("p-old", 1), 0)
        first = await get(n, "/stream?type=process")
        return last_id(messages(first.text))

    assert asyncio.run(scenario()) == "0:3,1:-1"


def test_a_last_event_id_of_another_partition_is_refused_not_a_silent_skip() -> None:
    async def scenario() -> httpx.Response:
        n = node()
        n.ledger.apply(process_events("p-other", 0, complete=False), 1)
        n.ledger.apply(process_events("p-1", 2, complete=False), 0)
        # An id the node issued, but on another aggregate's partition.
        r = await get(n, "/process/p-1/stream", "1:1")
        assert n.broadcaster.subscribers == 0
        return r

    r = asyncio.run(scenario())
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_last_event_id"
    assert "partition 0" in error["message"]


def test_a_resume_on_a_node_behind_the_client_repeats_no_event() -> None:
    events = process_events("p-1", 5)  # created, started, 5 progress, completed: 8

    async def scenario() -> list[Message]:
        n = node()
        n.ledger.apply(events[:5], 0)  # this node has offsets 0..4
        later: list[Applied] = []

        def catch_up() -> None:  # the node applies and publishes the rest
            later.extend(n.ledger.apply(events[5:], 0))
            n.publish(later)

        n.positions.catch_up = catch_up
        # The client saw up to offset 6 (on a node ahead of this one).
        request = asyncio.ensure_future(get(n, "/process/p-1/stream", "0:6"))
        for _ in range(200):  # the stream subscribed and read, or waits for the node
            if n.broadcaster.subscribers and (n.reads.history_reads or n.positions.waits):
                break
            await asyncio.sleep(0.01)
        if not later:
            catch_up()
        r = await request
        assert r.status_code == 200, r.text
        return messages(r.text)

    got = asyncio.run(scenario())
    assert [m.id for m in got if m.event != "done"] == ["0:7"]
    assert got[-1].event == "done"


def test_an_account_cursor_past_the_end_of_the_ledger_is_refused_not_silence() -> None:
    async def scenario() -> tuple[httpx.Response, int]:
        n = node()
        n.ledger.apply(process_events("p-1", 1), 0)
        r = await get(n, "/stream", "0:99,1:-1")
        assert n.broadcaster.subscribers == 0  # the refused stream let go of its buffer
        return r, n.positions.waits

    r, waits = asyncio.run(scenario())
    assert waits == 1  # it caught up with the ledger first, in case the node was behind
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_last_event_id"
    assert "past the end" in error["message"]


def test_a_resume_on_a_node_that_cannot_catch_up_is_a_504() -> None:
    async def scenario() -> list[httpx.Response]:
        n = node()
        n.ledger.apply(process_events("p-1", 1, complete=False), 0)
        n.positions.lagging = True
        found = [await get(n, "/stream", "0:9,1:-1"), await get(n, "/process/p-1/stream", "0:9")]
        # An id the node has applied needs no catching up.
        found.append(await get(n, "/stream", "0:1,1:-1"))
        assert n.broadcaster.subscribers == 0
        return found

    account, one, applied = asyncio.run(scenario())
    for r in (account, one):
        assert r.status_code == 504, r.text
        assert r.json()["error"]["code"] == "wait_timeout"
    assert applied.status_code == 200, applied.text
    assert [m.id for m in messages(applied.text)] == ["0:2,1:-1"]


def test_an_account_cursor_the_node_reaches_resumes_after_it() -> None:
    async def scenario() -> list[str]:
        n = node()
        n.ledger.apply(process_events("p-1", 1), 0)  # offsets 0..3
        n.positions.catch_up = lambda: n.ledger.apply(process_events("p-2", 1), 0)  # 4..7
        r = await get(n, "/stream", "0:5,1:-1")
        assert r.status_code == 200, r.text
        return [json.loads(m.data)["event"]["position"] for m in messages(r.text) if m.data]

    assert asyncio.run(scenario()) == ["0:6", "0:7"]


def test_another_account_sees_nothing_of_acme_whatever_it_asks() -> None:
    async def scenario() -> list[httpx.Response]:
        n = node()
        n.ledger.apply(process_events("p-acme", 1), 0)
        n.ledger.apply(process_events("p-globex", 0, complete=False, account="globex"), 1)
        n.client.headers["Authorization"] = f"Bearer {OTHER_TOKEN}"
        return [
            await get(n, "/stream", "0:-1,1:-1"),
            await get(n, "/stream?type=process&status=completed,running", "0:-1,1:-1"),
            await get(n, "/stream?type=process.completed", "0:1,1:-1"),
            await get(n, "/process/p-acme/stream"),
            await get(n, "/process/p-acme/stream", "0:1"),  # an id of acme's events
        ]

    every, filtered, typed, one, resumed = asyncio.run(scenario())
    for r, expected in ((every, ["pending", "running"]), (filtered, ["running"])):
        states = [json.loads(m.data)["state"] for m in messages(r.text) if m.data]
        assert [(s["id"], s["status"]) for s in states] == [("p-globex", e) for e in expected]
    assert [m.data for m in messages(typed.text) if m.data] == []
    for r in (one, resumed):  # as for an id that does not exist: no 403 to confirm it
        assert r.status_code == 404, r.text
        assert r.json()["error"]["code"] == "not_found"


def run_to(pid: str, end: Sequence[c.Body]) -> list[Event]:
    bodies: list[c.Body] = [c.CreateProcess("scan", "site-1", "{}", ()), c.StartProcess()]
    return decide_all(pid, [*bodies, *end])


def test_every_way_a_process_ends_ends_its_stream_with_done_live() -> None:
    endings: dict[str, Sequence[c.Body]] = {
        "completed": [c.CompleteProcess("x", "{}")],
        "failed": [c.FailProcess("boom")],
        "cancelled": [c.CancelProcess("stop")],
        "deleted": [c.DeleteProcess()],  # while running: cancelled, then deleted
        "approved": [c.RequestReview("{}"), c.Approve()],
    }

    async def scenario(pid: str, end: Sequence[c.Body]) -> list[Message]:
        n = node()
        events = run_to(pid, end)
        n.ledger.apply(events[:2], 0)
        request = asyncio.ensure_future(get(n, f"/process/{pid}/stream"))
        assert await until(lambda: n.broadcaster.subscribers == 1)
        n.publish(n.ledger.apply(events[2:], 0))
        r = await request
        assert r.status_code == 200, r.text
        return messages(r.text)

    for name, end in endings.items():
        got = asyncio.run(scenario(f"p-{name}", end))
        events = run_to(f"p-{name}", end)
        # The stream ends at the first terminal status: a delete's own event comes after.
        sent = [e.type for e in events if e.type != "process.deleted"]
        assert [m.event for m in got] == [*sent, "done"], name
        done = json.loads(got[-1].data)
        expected = "completed" if name == "approved" else name
        assert done["status"] == ("cancelled" if name == "deleted" else expected), name
        assert done["position"] == got[-2].id


def test_the_stream_of_a_deleted_process_is_still_found_and_says_done() -> None:
    async def scenario() -> list[Message]:
        n = node()
        n.ledger.apply(run_to("p-1", [c.DeleteProcess()]), 0)
        r = await get(n, "/process/p-1/stream")
        assert r.status_code == 200, r.text
        return messages(r.text)

    got = asyncio.run(scenario())
    assert [m.event for m in got] == ["process.created", "process.started"] + [
        "process.cancelled",
        "done",
    ]


def test_a_revoked_tokens_stream_runs_out_its_window_and_its_reconnect_is_refused() -> None:
    events = process_events("p-1", 3, complete=False)

    async def scenario() -> tuple[list[Message], float, httpx.Response]:
        n = node()
        n.ledger.apply(events[:2], 0)
        began = time.monotonic()
        request = asyncio.ensure_future(get(n, "/process/p-1/stream"))
        assert await until(lambda: n.broadcaster.subscribers == 1)
        n.reads.revoked.add(token_hash(TOKEN))
        n.publish(n.ledger.apply(events[2:], 0))  # still sent: the stream is open
        r = await request
        took = time.monotonic() - began
        await asyncio.sleep(AUTH_MEMORY_S)
        return (
            messages(r.text),
            took,
            await get(n, "/process/p-1/stream", last_id(messages(r.text))),
        )

    got, took, again = asyncio.run(scenario())
    assert len([m for m in got if m.id]) == len(events)
    assert took < WINDOW_S + 1.0  # the window, not longer
    assert again.status_code == 401, again.text
    assert again.json()["error"]["code"] == "invalid_token"


async def until(check: Any, seconds: float = 5.0) -> bool:
    for _ in range(int(seconds / 0.01)):
        if check():
            return True
        await asyncio.sleep(0.01)
    return bool(check())
