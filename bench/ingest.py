"""Commands accepted per second over HTTP, against a raw aiokafka producer in the same run.

    python bench/ingest.py [--commands 20000] [--concurrency 256] [--client lean|httpx]
                           [--rounds 1] [--profile node|decider]

One broker (``RUNLEDGER_KAFKA_BOOTSTRAP``, else one started for the run), one decider
and one node as child processes, a fresh topic prefix. Measured, in this order, each
round:

(a) accepted: N ``POST /process/{id}/progress`` with ``Prefer: respond-async`` from C
    keep-alive connections, spread round-robin over C Processes (created beforehand,
    not timed). A ``202`` is answered once Kafka acknowledged the command (acks=all,
    idempotent producer): the command is durable; the decider decides it afterwards
    (and the node projects its events meanwhile). The rate counts ``202``s only.
(b) decided: the same N without the preference: a ``200`` is answered after Kafka
    acknowledged the command *and* the decider decided it (its outcome came back).
(c) raw: an aiokafka producer (acks=all, idempotent, the node's linger) sending N
    messages of the same size as the encoded command to a fresh topic with the same
    partition count, C at a time (each worker waits for its ack before its next send,
    the shape of (a)); and, for reference, all N pipelined then flushed.

Between phases the bench waits until the node has applied everything. The target is
absolute: >= 2,000 accepted commands/s. The last line is
``ratio: <(a) per second / (c, C at a time) per second>`` (medians over the rounds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _stack  # noqa: E402
from aiokafka import AIOKafkaProducer  # noqa: E402

from schemas import default_codec  # noqa: E402
from streams.topics import ensure_topics  # noqa: E402

TARGET = 2_000  # accepted commands/s
WARMUP = 1_000
ASYNC = {"Prefer": "respond-async"}
PROFILE_S = 8.0


def progress_body(i: int) -> bytes:
    return json.dumps({"progress": i % 101, "message": f"bench step {i}"}).encode()


@dataclass
class Phase:
    """One timed HTTP phase: its load, latencies and the CPU seconds of each child."""

    label: str
    ok: int
    load: _stack.Load
    p50_ms: float
    p99_ms: float
    cpu: dict[str, float]

    def rate(self) -> float:
        return self.load.rate(self.ok)

    def line(self) -> str:
        n = self.load.count(self.ok)
        per = ", ".join(
            f"{k} {v:.1f} s ({v / max(n, 1) * 1e6:.0f} us/cmd)" for k, v in self.cpu.items()
        )
        return (
            f"{self.label}: {n} x {self.ok} in {self.load.seconds:.2f} s = {self.rate():,.0f}/s; "
            f"all answers {dict(self.load.statuses)}, errors {dict(self.load.errors)}; "
            f"latency p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms; CPU {per}"
        )


async def http_phase(
    stack: _stack.Stack,
    args: argparse.Namespace,
    ids: list[str],
    label: str,
    ok: int,
    headers: dict[str, str] | None = None,
) -> Phase:
    conns = _stack.connections(stack, args.concurrency, args.client, headers)
    latencies: list[float] = []

    async def progress(conn: _stack.Connection, i: int) -> int:
        started = time.perf_counter()
        r = await conn.request("POST", f"/process/{ids[i % len(ids)]}/progress", progress_body(i))
        latencies.append(time.perf_counter() - started)
        return r.status

    profiler = None
    try:
        await _stack.drive(WARMUP, conns, progress, time_limit=args.time_limit)
        latencies.clear()
        if args.profile and ok == 202:
            profiler = start_profiler(stack, args.profile)
        cpu0 = stack.cpu()
        load = await _stack.drive(args.commands, conns, progress, time_limit=args.time_limit)
        cpu1 = stack.cpu()
    finally:
        await _stack.close_all(conns)
        if profiler is not None:
            profiler.wait(PROFILE_S + 30)
    phase = Phase(
        label,
        ok,
        load,
        _stack.percentile(latencies, 50) * 1000,
        _stack.percentile(latencies, 99) * 1000,
        {k: cpu1[k] - cpu0.get(k, 0.0) for k in cpu1},
    )
    print(phase.line(), flush=True)
    return phase


def start_profiler(stack: _stack.Stack, name: str) -> subprocess.Popen[bytes]:
    """py-spy (``pip install py-spy``) recording child ``name`` for ``PROFILE_S``:
    collapsed stacks (one line per stack and its sample count), for flamegraph.pl."""
    out = Path(tempfile.gettempdir()) / f"ingest-{name}-{os.getpid()}.txt"
    spy = Path(sys.executable).with_name("py-spy")
    argv = [str(spy), "record", "-p", str(stack.pid(name)), "-d", str(int(PROFILE_S))]
    argv += ["-o", str(out), "-r", "200", "--format", "raw"]
    print(f"profiling the {name} for {PROFILE_S:.0f} s into {out}", flush=True)
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def create_processes(stack: _stack.Stack, args: argparse.Namespace) -> list[str]:
    conns = _stack.connections(stack, min(args.concurrency, 64), args.client)
    ids: list[str] = []
    body = json.dumps({"type": "bench.ingest", "steps": [{"id": "work"}]}).encode()

    async def create(conn: _stack.Connection, i: int) -> int:
        r = await conn.request("POST", "/process", body)
        if r.status == 201:
            ids.append(json.loads(r.body)["id"])
        return r.status

    try:
        load = await _stack.drive(args.concurrency, conns, create, time_limit=args.time_limit)
    finally:
        await _stack.close_all(conns)
    if len(ids) < args.concurrency:
        raise SystemExit(f"could not create the Processes: {dict(load.statuses)}")
    return ids


async def raw_phase(stack: _stack.Stack, args: argparse.Namespace) -> tuple[float, float, int]:
    """(per second C at a time, per second pipelined, message size)."""
    from streams.topics import Topics

    topics = Topics(stack.prefix + "raw.")
    await ensure_topics(stack.bootstrap, topics, stack.partitions)
    codec = default_codec()
    messages = [_stack.sample_command(codec, i) for i in range(args.commands)]
    size = len(messages[0][1])
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=2,
        max_batch_size=256 * 1024,
    )
    await producer.start()
    try:
        for key, value in messages[:WARMUP]:
            await producer.send(topics.commands, value, key=key)
        await producer.flush()
        next_index = 0

        async def worker() -> None:
            nonlocal next_index
            while next_index < len(messages):
                key, value = messages[next_index]
                next_index += 1
                await producer.send_and_wait(topics.commands, value, key=key)

        started = time.perf_counter()
        await asyncio.wait_for(
            asyncio.gather(*(worker() for _ in range(args.concurrency))), args.time_limit
        )
        concurrent = len(messages) / (time.perf_counter() - started)
        started = time.perf_counter()
        for key, value in messages:
            await producer.send(topics.commands, value, key=key)
        await asyncio.wait_for(producer.flush(), args.time_limit)
        pipelined = len(messages) / (time.perf_counter() - started)
    finally:
        await producer.stop()
    return concurrent, pipelined, size


async def settle(stack: _stack.Stack, ids: list[str] | None = None) -> None:
    """Wait until the decider has decided every command sent so far (one waiting command
    per Process: it is decided after everything before it on its partition) and the node
    has applied everything in the ledger (a waiting read)."""
    if ids:
        conns = _stack.connections(stack, min(64, len(ids)))

        async def progress(conn: _stack.Connection, i: int) -> int:
            r = await conn.request("POST", f"/process/{ids[i]}/progress", progress_body(i))
            return r.status

        try:
            load = await _stack.drive(len(ids), conns, progress, time_limit=120)
        finally:
            await _stack.close_all(conns)
        if load.count(200) != len(ids):
            raise RuntimeError(f"the decider did not catch up: {dict(load.statuses)}")
    await _stack.settle(stack)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commands", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--client", choices=_stack.CLIENTS, default="lean")
    parser.add_argument("--rounds", type=int, default=1, help="accepted/decided/raw rounds")
    parser.add_argument("--time-limit", type=float, default=120.0, help="per phase, seconds")
    parser.add_argument(
        "--profile",
        choices=("node", "decider"),
        help=f"record that process with py-spy for {PROFILE_S:.0f} s during (a)",
    )
    args = parser.parse_args()
    _stack.quiet_logs()
    uvloop = _stack.use_uvloop()
    print(f"machine: {_stack.machine()}; load average {os.getloadavg()[0]:.2f}")
    print(
        f"{args.commands} commands, {args.concurrency} connections, client {args.client}"
        f"{' on uvloop' if uvloop else ''}, in the same process as the raw producer"
    )
    accepted: list[float] = []
    decided: list[float] = []
    raw: list[float] = []
    with _stack.running_stack() as stack:
        print(f"stack: broker {stack.bootstrap}, prefix {stack.prefix}, {stack.partitions} parts")
        ids = asyncio.run(create_processes(stack, args))
        for _ in range(max(1, args.rounds)):
            asyncio.run(settle(stack))
            phase = asyncio.run(
                http_phase(stack, args, ids, "HTTP accepted, durable (202)", 202, ASYNC)
            )
            accepted.append(phase.rate())
            asyncio.run(settle(stack, ids))
            decided.append(
                asyncio.run(http_phase(stack, args, ids, "HTTP decided (200)", 200)).rate()
            )
            asyncio.run(settle(stack))
            concurrent, pipelined, size = asyncio.run(raw_phase(stack, args))
            raw.append(concurrent)
            print(
                f"raw aiokafka, {size}-byte messages: {concurrent:,.0f}/s {args.concurrency} "
                f"at a time; {pipelined:,.0f}/s all pipelined",
                flush=True,
            )
    rate = median(accepted)
    verdict = "meets" if rate >= TARGET else "misses"
    print(f"decided (200) commands/s: {median(decided):,.0f} (median of {len(decided)})")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    print(
        f"ACCEPTED (202, durable in Kafka) commands/s: {rate:,.0f} (median of "
        f"{len(accepted)}): {verdict} the target of {TARGET:,}/s"
    )
    print(f"ratio: {rate / median(raw):.3f}")


if __name__ == "__main__":
    main()
