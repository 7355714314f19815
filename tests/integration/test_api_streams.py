"""SSE streams and ``?as_of``: a browser's EventSource follows a Process to ``done``
across reconnects; random disconnects lose and repeat nothing; the window closes a
stream; ``as_of`` answers the states recorded after each command.

The node runs with a 1 s window and a 0.3 s heartbeat, so every stream here is cut and
resumed with Last-Event-ID several times.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.integration.chromium import launch, require_chromium
from tests.integration.conftest import Stack, start_stack
from tests.integration.test_api_process_events import all_events, send

pytestmark = pytest.mark.integration

WINDOW_S = 1.0


@pytest.fixture(scope="module")
def sse_stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {"RUNLEDGER_SSE_WINDOW_S": str(WINDOW_S), "RUNLEDGER_SSE_HEARTBEAT_S": "0.3"}
    running = start_stack(kafka_bootstrap, tmp_path_factory.mktemp("sse"), env)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def client(sse_stack: Stack) -> httpx.Client:
    return sse_stack.authenticated("acme")


@dataclass
class Message:
    id: str | None = None
    event: str = "message"
    data: str = ""


@dataclass
class Read:
    messages: list[Message] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    ended: bool = False  # the server closed the stream


def read_stream(
    client: httpx.Client, path: str, last_id: str | None = None, stop_after: int | None = None
) -> Read:
    """Messages of one connection; stop (disconnect) after ``stop_after`` messages."""
    headers = {"Last-Event-ID": last_id} if last_id else {}
    read = Read()
    with client.stream("GET", path, headers=headers, timeout=10) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        current = Message()
        for line in r.iter_lines():
            if line.startswith(":"):
                read.comments.append(line)
            elif line == "":
                if current.data or current.id:
                    read.messages.append(current)
                    if stop_after is not None and len(read.messages) >= stop_after:
                        return read
                current = Message()
            else:
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "id":
                    current.id = value
                elif name == "event":
                    current.event = value
                elif name == "data":
                    current.data += value
    read.ended = True
    return read


def new_process(client: httpx.Client) -> str:
    pid: str = send(client, "/process", {"type": "sse.test"}).json()["id"]
    return pid


def drive(client: httpx.Client, pid: str, progresses: int, pause: float) -> None:
    send(client, f"/process/{pid}/start")
    for i in range(progresses):
        send(client, f"/process/{pid}/progress", {"progress": i % 100, "message": f"p{i}"})
        time.sleep(pause)
    send(client, f"/process/{pid}/complete", {"object_id": "done"})


def test_a_stream_replays_the_history_and_ends_with_done(client: httpx.Client) -> None:
    pid = new_process(client)
    drive(client, pid, 3, 0)
    read = read_stream(client, f"/process/{pid}/stream")
    assert read.ended
    *events, done = read.messages
    expected = all_events(client, pid, 100)
    assert [m.id for m in events] == [e["position"] for e in expected]
    assert [m.event for m in events] == [e["type"] for e in expected]
    assert done.event == "done" and json.loads(done.data)["status"] == "completed"
    last = json.loads(events[-1].data)
    assert last["state"] == client.get(f"/process/{pid}").json()
    assert last["event"] == expected[-1]
    # Reconnecting after done answers done at once; after the last-but-one, one event.
    again = read_stream(client, f"/process/{pid}/stream", last_id=events[-1].id)
    assert [m.event for m in again.messages] == ["done"]
    again = read_stream(client, f"/process/{pid}/stream", last_id=events[-2].id)
    assert [m.id for m in again.messages[:-1]] == [events[-1].id]


def test_a_caught_up_reconnect_sends_no_backlog_and_then_follows(
    sse_stack: Stack, client: httpx.Client
) -> None:
    pid = new_process(client)
    send(client, f"/process/{pid}/start")
    first = read_stream(client, f"/process/{pid}/stream")  # cut by the window
    assert [m.event for m in first.messages] == ["process.created", "process.started"]
    # Reconnected with the newest event's id: nothing again, then what happens next.
    later = threading.Timer(
        0.3, send, (sse_stack.client("acme"), f"/process/{pid}/progress", {"progress": 7})
    )
    later.start()
    again = read_stream(client, f"/process/{pid}/stream", last_id=first.messages[-1].id)
    later.join(5)
    assert [m.event for m in again.messages] == ["process.progress"]
    newest = all_events(client, pid, 100)[-1]
    assert again.messages[0].id == newest["position"]
    assert json.loads(again.messages[0].data)["state"]["progress"] == 7


def test_the_window_closes_an_idle_stream_with_heartbeats(client: httpx.Client) -> None:
    pid = new_process(client)
    began = time.monotonic()
    read = read_stream(client, f"/process/{pid}/stream")
    took = time.monotonic() - began
    assert read.ended and WINDOW_S <= took < WINDOW_S + 2
    assert len(read.messages) == 1  # created; no done: it is pending
    assert ": heartbeat" in read.comments


def test_random_disconnects_neither_lose_nor_repeat_an_event(
    sse_stack: Stack, client: httpx.Client
) -> None:
    rng = random.Random(4)
    pid = new_process(client)
    writer = threading.Thread(
        target=drive, args=(sse_stack.client("acme"), pid, 40, 0.02), daemon=True
    )
    writer.start()
    got: list[Message] = []
    last_id: str | None = None
    connections = 0
    while not got or got[-1].event != "done":
        connections += 1
        assert connections < 500, "the stream never reached done"
        read = read_stream(
            client, f"/process/{pid}/stream", last_id, stop_after=rng.choice([1, 2, 3, 5, None])
        )
        got.extend(read.messages)
        ids = [m.id for m in read.messages if m.id]
        last_id = ids[-1] if ids else last_id
        time.sleep(rng.choice([0, 0, 0.01, 0.1]))  # events happen while away
    writer.join(30)
    expected = [e["position"] for e in all_events(client, pid, 100)]
    assert [m.id for m in got if m.event != "done"] == expected
    assert connections > 5


def test_the_account_stream_resumes_from_its_cursor(sse_stack: Stack, client: httpx.Client) -> None:
    got: list[Message] = []
    first = read_stream(client, "/stream?type=process", stop_after=None)  # nothing new
    cursor = first.messages[-1].id if first.messages else None
    assert first.ended
    # With no cursor yet, the next connection starts now; keep its position by hand.
    pids = [new_process(client) for _ in range(2)]
    for pid in pids:
        drive(client, pid, 2, 0)
    other = sse_stack.authenticated("globex")
    new_process(other)
    if cursor is None:
        r = read_stream(client, "/stream?type=process", last_id="0:-1,1:-1")
        got = r.messages
    else:
        got = read_stream(client, "/stream?type=process", last_id=cursor).messages
    mine = [json.loads(m.data) for m in got if json.loads(m.data)["state"]["id"] in pids]
    assert all(json.loads(m.data)["state"]["created_by"] != "token:globex" for m in got)
    for pid in pids:
        positions = [d["event"]["position"] for d in mine if d["state"]["id"] == pid]
        assert positions == [e["position"] for e in all_events(client, pid, 100)]
    # Resuming from the middle gives the rest exactly once.
    middle = got[len(got) // 2]
    rest = read_stream(client, "/stream?type=process", last_id=middle.id).messages
    assert [m.data for m in rest] == [m.data for m in got[len(got) // 2 + 1 :]]
    done = read_stream(client, "/stream?status=completed", last_id="0:-1,1:-1").messages
    assert {json.loads(m.data)["state"]["id"] for m in done} >= set(pids)


def test_the_account_stream_refuses_filters_that_match_nothing(client: httpx.Client) -> None:
    for query, field_name in (("status=bogus", "status"), ("type=process,nope", "type")):
        r = client.get(f"/stream?{query}")
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert (error["code"], error["field"]) == ("invalid_query", field_name)
    # Known values of every streamed kind pass: an aggregate, an event type, a status.
    read = read_stream(client, "/stream?type=flowrun,caserun.step_failed&status=passed,running")
    assert read.ended


def test_as_of_answers_the_state_recorded_after_each_command(client: httpx.Client) -> None:
    pid = new_process(client)
    recorded: list[tuple[str, Any]] = []

    def record() -> None:
        state = client.get(f"/process/{pid}", params={"wait": "true"}).json()
        recorded.append((all_events(client, pid, 100)[-1]["created_at"], state))

    record()
    send(client, f"/process/{pid}/start")
    record()
    for i in range(3):
        send(client, f"/process/{pid}/progress", {"progress": 10 * (i + 1)})
        record()
    send(client, f"/process/{pid}/fail", {"exception": "boom"})
    record()
    for at, state in recorded:
        r = client.get(f"/process/{pid}", params={"as_of": at})
        assert r.status_code == 200, r.text
        assert r.json() == state
    created = recorded[0][0]
    before = client.get(f"/process/{pid}", params={"as_of": "2000-01-01T00:00:00Z"})
    assert before.status_code == 404, created
    bad = client.get(f"/process/{pid}", params={"as_of": "yesterday"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "as_of"
    assert client.get("/flowrun/nope", params={"as_of": created}).status_code == 404
    assert client.get("/caserun/nope", params={"as_of": "nope"}).status_code == 400


def test_streams_need_a_token_and_accept_it_only_as_a_query_on_streams(
    sse_stack: Stack, client: httpx.Client
) -> None:
    pid = new_process(client)
    anon = httpx.Client(base_url=sse_stack.url, timeout=10)
    assert anon.get(f"/process/{pid}/stream").status_code == 401
    token = sse_stack.token("acme")
    assert anon.get(f"/process/{pid}", params={"token": token}).status_code == 401
    with anon.stream("GET", f"/process/{pid}/stream", params={"token": token}) as r:
        assert r.status_code == 200
    assert client.get("/process/nope/stream").status_code == 404
    bad = client.get(f"/process/{pid}/stream", headers={"Last-Event-ID": "x"})
    assert bad.status_code == 400


BROWSER_SCRIPT = """
([path, token]) => new Promise((resolve, reject) => {
  const ids = []; const on = []; let opens = 0;
  const es = new EventSource(path + "?token=" + encodeURIComponent(token));
  es.onopen = () => { opens += 1; };
  const onEvent = (e) => { ids.push(e.lastEventId); on.push(opens); };
  for (const t of ["process.created", "process.started", "process.progress",
                   "process.completed"]) es.addEventListener(t, onEvent);
  es.addEventListener("done", () => { es.close(); resolve({ids, on, opens}); });
  setTimeout(() => { es.close(); reject(new Error("no done; got " + ids.length)); }, 30000);
})
"""


def test_an_event_source_in_chromium_follows_a_process_to_done(
    sse_stack: Stack, client: httpx.Client
) -> None:
    require_chromium()
    from playwright.sync_api import sync_playwright

    pid = new_process(client)
    # Slow enough that the 1 s window cuts the stream at least once on the way.
    writer = threading.Thread(
        target=drive, args=(sse_stack.client("acme"), pid, 12, 0.25), daemon=True
    )
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page()
            page.goto(sse_stack.url + "/health")  # same origin as the stream
            writer.start()
            result = page.evaluate(
                BROWSER_SCRIPT, [f"/process/{pid}/stream", sse_stack.token("acme")]
            )
        finally:
            browser.close()
    writer.join(30)
    assert result["opens"] >= 2  # the window closed it and EventSource reconnected
    # Events came on both sides of a reconnect, and the browser's own Last-Event-ID
    # resumed each connection right after the last event it had: no gap, no repeat.
    assert result["on"][0] == 1 and result["on"][-1] >= 2, result
    assert result["ids"] == [e["position"] for e in all_events(client, pid, 100)]
