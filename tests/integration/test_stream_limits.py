"""Stream limits on real servers: the per-account cap of a node (429, freed by a client
that resets its connection), backlogs read in pages of 7 events with exactly the
expected ids, and a client that stops reading: with a real uvicorn on 127.0.0.1 and a
raw socket with a tiny receive buffer that never reads, the node ends the stream, frees
its slot and drops the connection within the window plus the write bound.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from api import ApiDeps, create_app
from api.broadcaster import Broadcaster
from api.stream_limits import StreamSlots
from streams.domain import commands as c
from tests.integration.conftest import Stack, free_port, start_stack
from tests.integration.test_api_process_events import all_events
from tests.integration.test_api_streams import drive, new_process, read_stream
from tests.unit.test_projections_fold import decide_all
from tests.unit.test_streams_review2 import TOKEN, Ledger, Positions, Reads

pytestmark = pytest.mark.integration

CAP = 2
PAGE = 7


@pytest.fixture(scope="module")
def limited_stack(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    env = {
        "RUNLEDGER_SSE_WINDOW_S": "8",
        "RUNLEDGER_SSE_HEARTBEAT_S": "0.3",
        "RUNLEDGER_SSE_MAX_STREAMS_PER_ACCOUNT": str(CAP),
        "RUNLEDGER_SSE_BACKLOG_PAGE": str(PAGE),
    }
    running = start_stack(kafka_bootstrap, tmp_path_factory.mktemp("limits"), env)
    try:
        yield running
    finally:
        running.stop()


def open_raw(port: int, path: str, rcvbuf: int | None = None) -> socket.socket:
    """A stream opened over a raw socket; returns once its 200 and headers came."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, "the server closed before answering"
        head += chunk
    assert head.startswith(b"HTTP/1.1 200"), head
    return sock


def reset(sock: socket.socket) -> None:
    """Close abruptly: an RST, not a FIN (SO_LINGER with a zero timeout)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def status_of_new_stream(client: httpx.Client, path: str = "/stream") -> httpx.Response:
    """The answer to a new stream, with its body read only when it is an error."""
    with client.stream("GET", path, timeout=10) as r:
        if r.status_code != 200:
            r.read()
        return r


def test_the_cap_refuses_with_429_other_accounts_pass_and_a_reset_frees_a_slot(
    limited_stack: Stack,
) -> None:
    acme = limited_stack.authenticated("acme")
    globex = limited_stack.authenticated("globex")
    token = limited_stack.token("acme")
    held = [open_raw(limited_stack.port, f"/stream?token={token}") for _ in range(CAP)]
    try:
        refused = status_of_new_stream(acme)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "too_many_streams"
        assert int(refused.headers["Retry-After"]) >= 1
        assert status_of_new_stream(globex).status_code == 200
        reset(held.pop())
        # Freed at once, not at the end of the 8 s window.
        started = time.monotonic()
        while status_of_new_stream(acme).status_code != 200:
            assert time.monotonic() - started < 3, "the reset stream kept its slot"
            time.sleep(0.05)
    finally:
        for sock in held:
            reset(sock)


def test_a_history_of_several_pages_streams_exactly_its_events_fresh_and_resumed(
    limited_stack: Stack,
) -> None:
    client = limited_stack.authenticated("acme")
    pid = new_process(client)
    drive(client, pid, 4 * PAGE + 2, 0)
    expected = [e["position"] for e in all_events(client, pid, 100)]
    assert len(expected) > 4 * PAGE
    read = read_stream(client, f"/process/{pid}/stream")
    assert read.ended and read.messages[-1].event == "done"
    assert [m.id for m in read.messages if m.id] == expected
    resumed = read_stream(client, f"/process/{pid}/stream", last_id=expected[5])
    assert [m.id for m in resumed.messages if m.id] == expected[6:]


def test_the_account_stream_resumes_a_paged_backlog_exactly(limited_stack: Stack) -> None:
    client = limited_stack.authenticated("acme")
    start = read_stream(client, "/stream", stop_after=1).messages[0].id
    assert start is not None
    pids = [new_process(client) for _ in range(3)]
    for pid in pids:
        drive(client, pid, PAGE, 0)
    expected = {e["position"] for pid in pids for e in all_events(client, pid, 100)}
    got: list[str] = []
    for m in read_stream(client, "/stream", last_id=start, stop_after=len(expected)).messages:
        got.append(json.loads(m.data)["event"]["position"])
    assert len(got) == len(set(got)) and set(got) == expected


# -- a client that stops reading -------------------------------------------------------

WINDOW_S = 2.0
SEND_BOUND_S = 1.0


def big_progress(pid: str, count: int) -> list[c.Body]:
    bodies: list[c.Body] = [c.CreateProcess("scan", "site-1", "{}", ()), c.StartProcess()]
    return bodies + [c.ReportProgress(float(i), "x" * 20_000) for i in range(count)]


def test_a_client_that_stops_reading_is_cut_within_the_window_plus_the_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="api.stream_limits")
    ledger = Ledger()
    broadcaster = Broadcaster()
    deps = ApiDeps(
        reads=Reads(ledger),  # type: ignore[arg-type]
        commands=None,  # type: ignore[arg-type]
        positions=Positions(ledger),
        broadcaster=broadcaster,
        sse_window_s=WINDOW_S,
        sse_heartbeat_s=0.2,
        sse_send_timeout_s=SEND_BOUND_S,
    )
    app = create_app(deps)
    slots: StreamSlots = app.state.stream_slots
    events = decide_all("p-big", big_progress("p-big", 120))
    ledger.apply(events[:2], 0)

    async def scenario() -> tuple[float, float, bytes | str]:
        port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, lifespan="off", log_config=None
        )  # no logging config of its own: its records reach caplog
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        loop = asyncio.get_running_loop()
        try:
            sock = await loop.run_in_executor(
                None, lambda: open_raw(port, f"/process/p-big/stream?token={TOKEN}", 1024)
            )
            opened = loop.time()
            assert slots.open("acme") == 1
            for i in range(2, len(events)):  # ~2.4 MB over 1.2 s; the client reads none
                broadcaster.publish(ledger.apply([events[i]], 0))
                await asyncio.sleep(0.01)
            while slots.open("acme") and loop.time() - opened < 30:
                await asyncio.sleep(0.02)
            freed = loop.time() - opened
            # The connection is gone too: reading now ends in a reset or EOF, not a wait.
            sock.setblocking(False)
            ended: bytes | str = "open"
            deadline = loop.time() + 5
            while loop.time() < deadline:
                try:
                    chunk = await asyncio.wait_for(loop.sock_recv(sock, 1 << 16), 1)
                except ConnectionResetError:
                    ended = "reset"
                    break
                except TimeoutError:
                    continue
                if not chunk:
                    ended = b"eof"
                    break
            sock.close()
            return freed, loop.time() - opened, ended
        finally:
            server.should_exit = True
            await serving

    freed, closed, ended = asyncio.run(scenario())
    print(f"slot freed {freed:.2f} s after opening; connection ended ({ended!r}) at {closed:.2f} s")
    assert freed <= WINDOW_S + SEND_BOUND_S + 1.0, f"the slot was held {freed:.2f} s"
    assert ended in ("reset", b"eof"), "the stalled connection stayed open"
    assert any("did not read" in r.getMessage() for r in caplog.records), (
        "the stream ended, but not by the write bound: the client's buffers never filled"
    )
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], "the server logged the cut as a failure"
