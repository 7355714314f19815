"""SSE reconnects on a long history: what a resume with ``Last-Event-ID`` costs the node,
against a plain ``GET`` of the same object, same node, same run.

    python bench/sse_reconnect.py [--events 10000] [--reconnects 300] [--behind 5]

One broker (``RUNLEDGER_KAFKA_BOOTSTRAP``, else one started for the run), one decider
and one node as child processes (``bench/_stack.py``) on a fresh topic prefix. One
Process of account ``bench`` gets ``--events`` events, produced straight to
``ledger.events`` (as ``bench/asof.py`` does: ``decide``/``evolve`` in this process),
and the bench waits until the node has projected them. Then, one request at a time,
each on a new connection (a reconnect is one), ``--reconnects`` times each, per round:

- ``GET /process/{id}``: the plain read (the node's process cache answers it), ten
  times as many;
- a few opens with no ``Last-Event-ID``, read until the whole history arrived (the
  clients' first connection, followed to the newest event);
- ``GET /process/{id}/stream`` with ``Last-Event-ID`` at the newest event (the client
  missed nothing: the common reconnect at the end of the window), read to its headers;
- ``--behind`` events are appended, then the same reconnect from the former newest
  event (events happened while the clients were away), read until they arrived;
- ``GET /stream`` (account-wide) with a cursor at the ledger's end; then ``--behind``
  more events and reconnects from the former end, read likewise.

The client closes each stream as soon as it has what it waited for, and checks it got
exactly the events after its id. Per case: the node's CPU per request
(``/proc/<pid>/stat`` over the case, minus the node's idle CPU over as long: its
projector polls) and the median wall time per request. The last line is
``ratio: <node CPU of a reconnect --behind events behind / node CPU of a plain GET>``
(medians over the rounds); ``head ratio`` above it is the same for a reconnect that
missed nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _stack  # noqa: E402
from aiokafka import AIOKafkaProducer  # noqa: E402

from schemas import default_codec  # noqa: E402
from streams.domain import commands as c  # noqa: E402
from streams.domain import process  # noqa: E402
from streams.domain.aggregates import stream_key  # noqa: E402
from streams.serde import encode_event  # noqa: E402

T0 = 1_767_225_600_000_000
ACCOUNT = "bench"  # the token's account (bench/_stack.py)
READ_TIMEOUT_S = 60.0


class Writer:
    """Appends events to Process ``pid`` straight to ``ledger.events`` (``decide`` and
    ``evolve`` here, as ``bench/asof.py`` does), keeping their positions by seq."""

    def __init__(self, stack: _stack.Stack, pid: str) -> None:
        self.stack, self.pid = stack, pid
        self.codec = default_codec()
        self.producer = AIOKafkaProducer(
            bootstrap_servers=stack.bootstrap, acks="all", linger_ms=20
        )
        self.state: process.ProcessState | None = None
        self.positions: list[tuple[int, int]] = []  # index 0: seq 1
        self.commands = 0

    async def append(self, count: int) -> None:
        key = stream_key(process.AGGREGATE, self.pid).encode()
        futures = []
        target = len(self.positions) + count
        while self.state is None or self.state.seq < target:
            i = self.commands
            body: c.Body = (
                c.CreateProcess("scan", None, "{}", ()) if i == 0
                else c.ReportProgress(float(i % 100), f"report {i}")
            )  # fmt: skip
            cmd = c.Command(f"c{i}", "process", self.pid, T0 + i, ACCOUNT, "bench", "r", "r", body)
            for ev in process.decide(self.state, cmd):
                self.state = process.evolve(self.state, ev)
                encoded = encode_event(self.codec, ev)
                futures.append(await self.producer.send(self.stack.topics.events, encoded, key))
            self.commands += 1
        sent = await asyncio.gather(*futures)
        self.positions += [(m.partition, m.offset) for m in sent]

    def position(self, seq: int) -> str:
        partition, offset = self.positions[seq - 1]
        return f"{partition}:{offset}"


async def wait_projected(conn: _stack.LeanConnection, pid: str, total: int) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        r = await conn.request("GET", f"/process/{pid}/events?limit=1")
        if r.status == 200 and f'"count":{total}'.encode() in r.body.replace(b" ", b""):
            return
        await asyncio.sleep(0.5)
    raise RuntimeError(f"the node did not project the {total} events of {pid}")


async def stream(
    stack: _stack.Stack, path: str, last: str | None, want_ids: int
) -> tuple[int, list[str]]:
    """Open an SSE stream, read until ``want_ids`` messages with an id arrived (0: the
    headers only), close it; the status and the ids read."""
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.port)
    try:
        head = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{stack.port}\r\n"
            f"Authorization: Bearer {stack.token}\r\nAccept: text/event-stream\r\n"
        )
        if last is not None:
            head += f"Last-Event-ID: {last}\r\n"
        writer.write((head + "\r\n").encode())
        raw = await reader.readuntil(b"\r\n\r\n")
        status = int(raw.split(b" ", 2)[1])
        ids: list[str] = []
        pending = b""
        while status == 200 and len(ids) < want_ids:
            data = await reader.read(1 << 16)
            if not data:
                break
            *complete, pending = (pending + data).split(b"\n\n")
            for message in complete:
                at = message.find(b"id: ")
                if at >= 0 and b"\ndata: " in message:  # not the cursor-only first message
                    ids.append(message[at + 4 : message.index(b"\n", at)].decode())
        return status, ids
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def parse_id(text: str) -> dict[int, int]:
    """An SSE id (a position ``P:O`` or a cursor ``P:O,P:O``) as offsets by partition."""
    return {int(p): int(o) for p, o in (part.split(":") for part in text.split(","))}


async def first_cursor(stack: _stack.Stack) -> dict[int, int]:
    """The cursor a fresh ``GET /stream`` sends first (an id alone), as a dict."""
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.port)
    try:
        writer.write(
            f"GET /stream HTTP/1.1\r\nHost: 127.0.0.1:{stack.port}\r\n"
            f"Authorization: Bearer {stack.token}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        await reader.readuntil(b"\r\n\r\n")
        data = b""
        while b"id: " not in data or b"\n" not in data.split(b"id: ", 1)[1]:
            data += await asyncio.wait_for(reader.read(1 << 16), READ_TIMEOUT_S)
        return parse_id(data.split(b"id: ", 1)[1].split(b"\n", 1)[0].decode())
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def plain_get(stack: _stack.Stack, pid: str) -> None:
    conn = _stack.LeanConnection(
        "127.0.0.1", stack.port, {"Authorization": f"Bearer {stack.token}"}
    )
    try:
        r = await conn.request("GET", f"/process/{pid}")
        if r.status != 200:
            raise RuntimeError(f"GET answered {r.status}")
    finally:
        await conn.close()


class Case:
    def __init__(self, name: str, cpu_s: float, walls: list[float]) -> None:
        self.name, self.cpu_s, self.walls = name, cpu_s, walls

    @property
    def cpu_per(self) -> float:
        return self.cpu_s / len(self.walls)

    def row(self) -> str:
        wall = statistics.median(self.walls)
        return (
            f"| {self.name} | {len(self.walls)} | {self.cpu_per * 1000:.3f} ms "
            f"| {wall * 1000:.3f} ms |"
        )


async def measure(
    stack: _stack.Stack, name: str, times: int, once: Callable[[], Awaitable[None]]
) -> Case:
    node = stack.pid("node")
    await asyncio.sleep(0.3)  # the previous case's streams end on the node
    before = _stack.cpu_seconds(node)
    began = time.monotonic()
    walls = []
    for _ in range(times):
        t = time.perf_counter()
        await asyncio.wait_for(once(), READ_TIMEOUT_S)
        walls.append(time.perf_counter() - t)
    await asyncio.sleep(0.3)
    elapsed = time.monotonic() - began
    used = _stack.cpu_seconds(node) - before
    # The node's idle CPU over as long (its projector polls the broker).
    idle_before = _stack.cpu_seconds(node)
    await asyncio.sleep(min(elapsed, 3.0))
    idle_rate = (_stack.cpu_seconds(node) - idle_before) / min(elapsed, 3.0)
    return Case(name, max(0.0, used - idle_rate * elapsed), walls)


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


async def run(stack: _stack.Stack, args: argparse.Namespace) -> None:
    pid = f"reconnect-{stack.prefix.rstrip('.')}"
    auth = {"Authorization": f"Bearer {stack.token}"}
    writer = Writer(stack, pid)
    await writer.producer.start()
    try:
        await run_with(stack, args, pid, writer, auth)
    finally:
        await writer.producer.stop()


async def run_with(
    stack: _stack.Stack, args: argparse.Namespace, pid: str, writer: Writer, auth: dict[str, str]
) -> None:
    began = time.monotonic()

    async def append(count: int) -> int:
        """Append ``count`` events, wait until the node projected them; the old head."""
        head = len(writer.positions)
        await writer.append(count)
        conn = _stack.LeanConnection("127.0.0.1", stack.port, auth)
        try:
            await wait_projected(conn, pid, len(writer.positions))
        finally:
            await conn.close()
        return head

    await append(args.events)
    print(f"{args.events:,} events of {pid} projected in {time.monotonic() - began:.1f} s")
    behind = args.behind
    path = f"/process/{pid}/stream"

    # What a client of /stream holds: the cursor the node issued (every partition at
    # its end, sent first by a fresh stream), moved on the Process's partition.
    issued = await first_cursor(stack)
    home = writer.positions[0][0]

    def cursor(seq: int) -> str:
        moved = {**issued, home: writer.positions[seq - 1][1]}
        return ",".join(f"{p}:{o}" for p, o in sorted(moved.items()))

    async def get() -> None:
        await plain_get(stack, pid)

    async def at_head() -> None:
        status, _ = await stream(stack, path, writer.position(len(writer.positions)), 0)
        assert status == 200, status

    def resumed(seen: int, stream_path: str, last: str) -> Callable[[], Awaitable[None]]:
        """Reconnects with ``last`` (the id of seq ``seen``): each must get every event
        after it, in order."""
        expect = [writer.positions[q - 1][1] for q in range(seen + 1, len(writer.positions) + 1)]

        async def once() -> None:
            status, ids = await stream(stack, stream_path, last, len(expect))
            assert status == 200 and [parse_id(i)[home] for i in ids] == expect, ids

        return once

    async def account_head() -> None:
        status, _ = await stream(stack, "/stream", cursor(len(writer.positions)), 0)
        assert status == 200, status

    async def whole() -> None:
        status, ids = await stream(stack, path, None, len(writer.positions))
        assert status == 200 and len(ids) == len(writer.positions), (status, len(ids))

    n = args.reconnects
    cases: list[Case] = []

    async def case(name: str, times: int, once: Callable[[], Awaitable[None]]) -> None:
        found = await measure(stack, name, times, once)
        cases.append(found)
        print(found.row(), flush=True)

    print("| request | count | node CPU per request | median wall |")
    print("| --- | ---: | ---: | ---: |")
    for _ in range(args.rounds):
        # Ten times as many: a GET costs about one /proc tick (10 ms) per 100 of them.
        await case("plain GET /process/{id}", 10 * n, get)
        # Clients open the stream (the whole history) and follow it to its newest event.
        await case("object stream, no Last-Event-ID (whole history)", args.whole, whole)
        # The window ends; they reconnect.
        await case("object stream, Last-Event-ID at the newest event", n, at_head)
        # Events happened while they were away.
        seen = await append(behind)
        last = writer.position(seen)
        await case(f"object stream, {behind} events behind", n, resumed(seen, path, last))
        await case("/stream, cursor at the end", n, account_head)
        seen = await append(behind)
        last = cursor(seen)
        await case(f"/stream, {behind} events behind", n, resumed(seen, "/stream", last))

    def cpu(prefix: str) -> float:
        return statistics.median(c.cpu_per for c in cases if c.name.startswith(prefix))

    plain = cpu("plain GET")
    head = cpu("object stream, Last-Event-ID")
    few = cpu(f"object stream, {behind} events behind")
    print(f"load after: {load()}")
    print(
        f"node CPU per request (median of rounds): plain GET {plain * 1000:.3f} ms, "
        f"reconnect at the newest {head * 1000:.3f} ms, {behind} behind {few * 1000:.3f} ms, "
        f"/stream {behind} behind {cpu(f'/stream, {behind}') * 1000:.3f} ms, "
        f"whole history {cpu('object stream, no') * 1000:.1f} ms"
    )
    print(f"head ratio: {head / plain:.2f}")
    print(f"ratio: {few / plain:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--reconnects", type=int, default=300)
    parser.add_argument("--behind", type=int, default=5)
    parser.add_argument("--whole", type=int, default=5, help="opens with no Last-Event-ID")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    _stack.quiet_logs()
    uvloop = _stack.use_uvloop()
    print(f"{_stack.machine()}; client loop: {'uvloop' if uvloop else 'asyncio'}")
    print(f"load before: {load()}")
    env = {"RUNLEDGER_SSE_MAX_STREAMS_PER_ACCOUNT": "1000", "RUNLEDGER_SSE_WINDOW_S": "30"}
    with _stack.running_stack(node_env=env) as stack:
        asyncio.run(asyncio.wait_for(run(stack, args), 30 * 60))


if __name__ == "__main__":
    main()
