"""SSE streams over real sockets: clients that stall or vanish must cost the node
nothing lasting, and must not slow the others.

The node's app runs in uvicorn (as ``runledger node`` serves it) on 127.0.0.1 over the
fake read model of ``tests/unit/test_streams_review2.py`` and a real Broadcaster; the
events are published to the broadcaster as the projector would. No broker needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
import uvicorn

from api import ApiDeps, create_app
from api.broadcaster import Broadcaster
from streams.domain import commands as c
from streams.domain.events import Event
from tests.integration.conftest import free_port
from tests.unit.test_projections_fold import decide_all
from tests.unit.test_streams_review2 import TOKEN, Ledger, Positions, Reads, process_events

pytestmark = pytest.mark.integration

BUFFER = 50  # events a stream may fall behind before it is dropped


@contextlib.asynccontextmanager
async def serving(broadcaster: Broadcaster, ledger: Ledger, window_s: float) -> AsyncIterator[int]:
    """The app on a free port of 127.0.0.1 for the block; yields the port."""
    deps = ApiDeps(
        reads=Reads(ledger),  # type: ignore[arg-type]
        commands=None,  # type: ignore[arg-type]
        positions=Positions(ledger),
        broadcaster=broadcaster,
        sse_window_s=window_s,
        sse_heartbeat_s=0.2,
    )
    port = free_port()
    config = uvicorn.Config(
        create_app(deps), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.02)
        assert server.started, "uvicorn did not start"
        yield port
    finally:
        server.should_exit = True
        server.force_exit = True
        await asyncio.wait_for(task, 10)


def raw_stream(port: int, path: str = "/stream") -> socket.socket:
    """A client that asks for a stream and then reads nothing (a small receive buffer,
    so the node's writes stall soon)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path}?token={TOKEN} HTTP/1.1\r\nHost: node\r\n\r\n".encode())
    return sock


async def until(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.02)
    return check()


def big_events(pid: str, n: int) -> list[Event]:
    """A running Process and ``n`` progress reports of ~20 kB each."""
    bodies: list[c.Body] = [c.CreateProcess("scan", "site-1", "{}", ()), c.StartProcess()]
    bodies += [c.ReportProgress(float(i % 100), "m" * 20_000) for i in range(n)]
    return decide_all(pid, bodies)


def read_all(sock: socket.socket, seconds: float) -> bytes:
    sock.settimeout(seconds)
    got = b""
    with contextlib.suppress(TimeoutError):
        while chunk := sock.recv(1 << 20):
            got += chunk
            if b": dropped" in got:
                break
    return got


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


def test_stalled_clients_are_dropped_and_slow_neither_the_fan_out_nor_a_reader(
    sockets: list[socket.socket],
) -> None:
    async def scenario() -> None:
        broadcaster = Broadcaster(buffer=BUFFER)
        ledger = Ledger()
        async with serving(broadcaster, ledger, window_s=30) as port:
            sockets.extend(raw_stream(port) for _ in range(20))
            assert await until(lambda: broadcaster.subscribers == 20, 10)
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", params={"token": TOKEN}, timeout=30
            ) as reader:
                got: list[str] = []

                async def read() -> None:
                    async with reader.stream("GET", "/stream") as r:
                        async for line in r.aiter_lines():
                            if line.startswith("id: "):
                                got.append(line)

                reading = asyncio.create_task(read())
                assert await until(lambda: broadcaster.subscribers == 21, 10)
                events = big_events("p-1", 400)
                slowest = 0.0
                for i in range(0, len(events), 5):  # 5 events per projector batch
                    applied = ledger.apply(events[i : i + 5], 0)
                    began = time.perf_counter()
                    broadcaster.publish(applied)
                    slowest = max(slowest, time.perf_counter() - began)
                    await asyncio.sleep(0.005)
                # Every stalled client was dropped from the fan-out (its buffer freed),
                # the reader was not, and a publish never waited for a client.
                assert await until(lambda: broadcaster.subscribers == 1, 10)
                assert broadcaster.dropped == 20
                assert slowest < 0.05, slowest
                assert await until(lambda: len(got) == 1 + len(events), 20), len(got)
                reading.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reading
            # A stalled client that reads again gets what was in flight, then the
            # dropped comment: it reconnects with its Last-Event-ID and loses nothing.
            tail = await asyncio.to_thread(read_all, sockets[0], 10)
            assert b": dropped: the client did not keep up" in tail

    asyncio.run(scenario())


@pytest.mark.parametrize("abrupt", [True, False])
def test_clients_that_go_away_release_their_subscriptions_at_once(
    sockets: list[socket.socket], abrupt: bool
) -> None:
    async def scenario() -> None:
        broadcaster = Broadcaster(buffer=BUFFER)
        ledger = Ledger()
        ledger.apply(process_events("p-1", 1, complete=False), 0)
        async with serving(broadcaster, ledger, window_s=30) as port:
            sockets.extend(raw_stream(port) for _ in range(20))
            sockets.extend(raw_stream(port, "/process/p-1/stream") for _ in range(10))
            assert await until(lambda: broadcaster.subscribers == 30, 10)
            for sock in sockets:
                if abrupt:  # RST, not FIN
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
            # Long before the 30 s window: the node saw the disconnects.
            assert await until(lambda: broadcaster.subscribers == 0, 5), broadcaster.subscribers

    asyncio.run(scenario())
