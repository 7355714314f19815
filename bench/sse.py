"""SSE fan-out: latency from commit to delivery with 1,000 streams open on one node,
against a single stream, same node, same run.

    python bench/sse.py [--clients 1000] [--rate 10] [--seconds 20] [--rounds 1]

One broker (``RUNLEDGER_KAFKA_BOOTSTRAP``, else one started for the run), one decider
and one node as child processes (``bench/_stack.py``), a fresh topic prefix, a node
window longer than the bench (no reconnects while measuring). Each phase creates a
Process, opens its streams (``GET /process/{id}/stream``) and waits until every one
has sent its backlog; then a writer reports progress on the Process at ``--rate``
commands per second for ``--seconds`` over HTTP and completes it, and every stream
follows it to ``event: done``. Phases: 1 stream, ``--clients`` streams, 1 stream
again, ``--rounds`` times; the single-stream figure pools its phases.

"Commit" is the Kafka timestamp of the event's record (set by the decider's
transactional producer when it sends the event; millisecond resolution, same
machine's clock), read by a consumer of ``ledger.events`` in this process;
"delivery" is when the client read the message off its socket. So a latency covers
the decider's commit, the projector's poll and DuckDB transaction, the fan-out, the
HTTP write and the client's own loop, which at 1,000 clients serves 1,000 sockets in
one Python process (on uvloop): some of the spread is the measuring side's.

Also printed per phase: the time to open every stream (each reads its backlog) and the
node's CPU seconds while the events flowed (the writer's commands, the projector and
the fan-out; the difference between phases is the cost of the streams), and this
process's (the clients, the writer and the timestamp consumer). The last line
is ``ratio: <p50 with --clients streams / p50 with one stream>``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _stack  # noqa: E402
from aiokafka import AIOKafkaConsumer  # noqa: E402
from aiokafka.structs import TopicPartition  # noqa: E402

from streams.topics import partitions_of  # noqa: E402

CONNECT_BATCH = 100  # streams opened at once: each reads its backlog on the node
BACKLOG = 2  # created, started: sent by every stream before the writer begins
PHASE_GRACE_S = 60.0  # after the writer: time for every stream to reach done


@dataclass
class Stream:
    """What one SSE client received: (position, wall time read) per message."""

    got: list[tuple[str, float]] = field(default_factory=list)
    done: bool = False
    error: str | None = None


class Timestamps:
    """Kafka record timestamps of ``ledger.events`` by position, read live."""

    def __init__(self, stack: _stack.Stack) -> None:
        self._stack = stack
        self.by_position: dict[str, float] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._stack.bootstrap,
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        await consumer.start()
        topic = self._stack.topics.events
        tps = [TopicPartition(topic, p) for p in await partitions_of(consumer, topic)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        self._consumer = consumer
        self._task = asyncio.create_task(self._read(consumer))

    async def _read(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=200)
            for tp, records in batch.items():
                for r in records:
                    self.by_position[f"{tp.partition}:{r.offset}"] = r.timestamp / 1000

    async def wait_for(self, positions: set[str], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not positions <= self.by_position.keys():
            if time.monotonic() > deadline:
                raise RuntimeError("the bench's consumer did not see every delivered event")
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()


async def follow(port: int, path: str, token: str, stream: Stream, opened: asyncio.Event) -> None:
    """One lean SSE client: the raw chunked body, scanned for ``id:`` lines.

    No JSON decoding: at 1,000 streams the client's own CPU would show in the figures.
    ``opened`` is set once the first message (the backlog's ``created``) arrived.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            stream.error = head.split(b"\r\n", 1)[0].decode()
            opened.set()
            return
        pending = b""
        while not stream.done:
            data = await reader.read(1 << 16)
            now = time.time()
            if not data:
                break
            *complete, pending = (pending + data).split(b"\n\n")
            for message in complete:
                at = message.find(b"id: ")
                if at >= 0:
                    end = message.index(b"\n", at)
                    stream.got.append((message[at + 4 : end].decode(), now))
                    opened.set()
                elif b"event: done" in message:
                    stream.done = True
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def write(conn: _stack.LeanConnection, pid: str, rate: float, seconds: float) -> int:
    """Progress at ``rate`` per second for ``seconds`` on a fixed schedule, then complete."""
    count = int(rate * seconds)
    began = time.monotonic()
    for i in range(count):
        delay = began + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        body = json.dumps({"progress": i % 100, "message": f"bench page {i}"}).encode()
        r = await conn.request("POST", f"/process/{pid}/progress", body)
        if r.status != 200:
            raise RuntimeError(f"progress answered {r.status}: {r.body[:200]!r}")
    r = await conn.request("POST", f"/process/{pid}/complete", b'{"object_id": "bench"}')
    if r.status != 200:
        raise RuntimeError(f"complete answered {r.status}: {r.body[:200]!r}")
    return count + 1


@dataclass
class Phase:
    clients: int
    latencies: list[float]
    deliveries: int
    connect_s: float
    node_cpu_s: float
    bench_cpu_s: float

    def row(self) -> str:
        p = _stack.percentile
        ms = [p(self.latencies, q) * 1000 for q in (50, 90, 99)]
        return (
            f"| {self.clients} | {self.deliveries} | {ms[0]:.1f} ms | {ms[1]:.1f} ms "
            f"| {ms[2]:.1f} ms | {max(self.latencies) * 1000:.1f} ms "
            f"| {self.connect_s:.2f} s | {self.node_cpu_s:.2f} s | {self.bench_cpu_s:.2f} s |"
        )


async def phase(
    stack: _stack.Stack, stamps: Timestamps, clients: int, args: argparse.Namespace
) -> Phase:
    auth = {"Authorization": f"Bearer {stack.token}"}
    conn = _stack.LeanConnection("127.0.0.1", stack.port, auth)
    try:
        r = await conn.request("POST", "/process?wait=true", b'{"type": "bench.sse"}')
        pid = json.loads(r.body)["id"]
        await conn.request("POST", f"/process/{pid}/start?wait=true")
        path = f"/process/{pid}/stream"
        streams = [Stream() for _ in range(clients)]
        tasks: list[asyncio.Task[None]] = []
        began = time.monotonic()
        for first in range(0, clients, CONNECT_BATCH):
            opened = [asyncio.Event() for _ in streams[first : first + CONNECT_BATCH]]
            for s, o in zip(streams[first : first + CONNECT_BATCH], opened, strict=True):
                tasks.append(asyncio.create_task(follow(stack.port, path, stack.token, s, o)))
            await asyncio.wait_for(asyncio.gather(*(o.wait() for o in opened)), args.time_limit)
        connect_s = time.monotonic() - began
        failed = [s.error for s in streams if s.error]
        if failed:
            raise RuntimeError(f"{len(failed)} streams failed to open, e.g. {failed[0]}")
        await conn.close()  # idle while the streams opened: past the node's keep-alive
        cpu_before = _stack.cpu_seconds(stack.pid("node")), time.process_time()
        sent = await write(conn, pid, args.rate, args.seconds)
        await asyncio.wait_for(asyncio.gather(*tasks), PHASE_GRACE_S)
        node_cpu_s = _stack.cpu_seconds(stack.pid("node")) - cpu_before[0]
        bench_cpu_s = time.process_time() - cpu_before[1]
    finally:
        await conn.close()
    if not all(s.done for s in streams):
        raise RuntimeError("a stream ended without done")
    live = [s.got[BACKLOG:] for s in streams]  # the messages sent after opening
    if any(len(got) != sent for got in live):
        raise RuntimeError(f"a stream missed events: {sorted({len(g) for g in live})} of {sent}")
    await stamps.wait_for({pos for pos, _ in live[0]})
    latencies = [at - stamps.by_position[pos] for got in live for pos, at in got]
    return Phase(clients, latencies, len(latencies), connect_s, node_cpu_s, bench_cpu_s)


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


async def run(stack: _stack.Stack, args: argparse.Namespace) -> None:
    stamps = Timestamps(stack)
    await stamps.start()
    try:
        single: list[Phase] = []
        many: list[Phase] = []
        print("| streams | messages | p50 | p90 | p99 | max | open all | node CPU | bench CPU |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for clients in [1] + [args.clients, 1] * args.rounds:
            found = await phase(stack, stamps, clients, args)
            (single if clients == 1 else many).append(found)
            print(found.row(), flush=True)
    finally:
        await stamps.stop()
    p = _stack.percentile
    one = [x for ph in single for x in ph.latencies]
    lots = [x for ph in many for x in ph.latencies]
    print(f"load after: {load()}")
    print(
        f"1 stream: p50 {p(one, 50) * 1000:.1f} ms, p99 {p(one, 99) * 1000:.1f} ms; "
        f"{args.clients} streams: p50 {p(lots, 50) * 1000:.1f} ms, "
        f"p99 {p(lots, 99) * 1000:.1f} ms; p99 ratio {p(lots, 99) / p(one, 99):.2f}"
    )
    print(f"ratio: {p(lots, 50) / p(one, 50):.2f}")


def raise_fd_limit(streams: int) -> None:
    """Each stream is a socket here and one in the node (a child: it inherits this)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = streams + 1_024
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            raise SystemExit(f"the open files limit ({hard}) is below {want}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1_000)
    parser.add_argument("--rate", type=float, default=10.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="of events per phase")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--time-limit", type=float, default=120.0, help="to open the streams")
    args = parser.parse_args()
    _stack.quiet_logs()
    raise_fd_limit(args.clients)
    uvloop = _stack.use_uvloop()
    print(f"{_stack.machine()}; client loop: {'uvloop' if uvloop else 'asyncio'}")
    print(f"load before: {load()}")
    print(f"{args.clients} streams vs 1, {args.rate:g} events/s for {args.seconds:g} s a phase")
    # Longer than the bench: the window would make every stream reconnect at once.
    # And the per-account cap of open streams (100) above the bench's, all of one account.
    window = {
        "RUNLEDGER_SSE_WINDOW_S": "3600",
        "RUNLEDGER_SSE_MAX_STREAMS_PER_ACCOUNT": str(args.clients + 10),
    }
    with _stack.running_stack(node_env=window) as stack:
        asyncio.run(asyncio.wait_for(run(stack, args), 30 * 60))


if __name__ == "__main__":
    main()
