"""Commands accepted per second over HTTP, against a raw aiokafka producer in the same run.

    python bench/ingest.py [--commands 20000] [--concurrency 256] [--client lean|httpx]

One broker (``RUNLEDGER_KAFKA_BOOTSTRAP``, else one started for the run), one decider
and one node as child processes, a fresh topic prefix. Measured, in this order:

(a) decided: N ``POST /process/{id}/progress`` from C keep-alive connections, spread
    round-robin over C Processes (created beforehand, not timed). A ``200``
    is answered after Kafka acknowledged the command (acks=all, idempotent producer)
    *and* the decider decided it (its outcome came back); the rate counts ``200``s
    only. A ``202`` (durable, but the decider did not answer within the command
    timeout) is counted apart and should be 0.
(b) durable only: the same N after restarting the node with
    ``RUNLEDGER_COMMAND_TIMEOUT_S=0``, so each command answers ``202`` as soon as Kafka
    acknowledged it, without waiting for the decider (which still decides everything).
(c) raw: an aiokafka producer (acks=all, idempotent, the node's linger) sending N
    messages of the same size as the encoded command to a fresh topic with the same
    partition count, C at a time (each worker waits for its ack before its next send,
    the shape of (a)); and, for reference, all N pipelined then flushed.

The last line is ``ratio: <(a) per second / (c, C at a time) per second>``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _stack  # noqa: E402
from aiokafka import AIOKafkaProducer  # noqa: E402

from schemas import default_codec  # noqa: E402
from streams.topics import ensure_topics  # noqa: E402

TARGET = 2_000  # commands/s
WARMUP = 1_000


def progress_body(i: int) -> bytes:
    return json.dumps({"progress": i % 101, "message": f"bench step {i}"}).encode()


async def http_phase(
    stack: _stack.Stack, args: argparse.Namespace, ids: list[str], label: str, ok: int
) -> _stack.Load:
    conns = _stack.connections(stack, args.concurrency, args.client)
    latencies: list[float] = []

    async def progress(conn: _stack.Connection, i: int) -> int:
        started = time.perf_counter()
        r = await conn.request("POST", f"/process/{ids[i % len(ids)]}/progress", progress_body(i))
        latencies.append(time.perf_counter() - started)
        return r.status

    try:
        await _stack.drive(WARMUP, conns, progress, time_limit=args.time_limit)
        latencies.clear()
        cpu0 = stack.cpu()
        load = await _stack.drive(args.commands, conns, progress, time_limit=args.time_limit)
        cpu1 = stack.cpu()
    finally:
        await _stack.close_all(conns)
    cpu = ", ".join(f"{k} {cpu1[k] - cpu0.get(k, 0.0):.1f} s" for k in cpu1)
    print(
        f"{label}: {load.count(ok)} x {ok} in {load.seconds:.2f} s = {load.rate(ok):,.0f}/s; "
        f"all answers {dict(load.statuses)}, errors {dict(load.errors)}; "
        f"latency p50 {_stack.percentile(latencies, 50) * 1000:.1f} ms, "
        f"p99 {_stack.percentile(latencies, 99) * 1000:.1f} ms; CPU {cpu}",
        flush=True,
    )
    return load


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


async def settle(stack: _stack.Stack) -> None:
    """Wait until the node has applied everything in the ledger (a waiting read)."""
    await _stack.settle(stack)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commands", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--client", choices=_stack.CLIENTS, default="lean")
    parser.add_argument("--time-limit", type=float, default=120.0, help="per phase, seconds")
    parser.add_argument("--skip-durable-only", action="store_true", help="skip phase (b)")
    args = parser.parse_args()
    _stack.quiet_logs()
    uvloop = _stack.use_uvloop()
    print(f"machine: {_stack.machine()}; load average {os.getloadavg()[0]:.2f}")
    print(
        f"{args.commands} commands, {args.concurrency} connections, client {args.client}"
        f"{' on uvloop' if uvloop else ''}, in the same process as the raw producer"
    )
    with _stack.running_stack() as stack:
        print(f"stack: broker {stack.bootstrap}, prefix {stack.prefix}, {stack.partitions} parts")
        ids = asyncio.run(create_processes(stack, args))
        asyncio.run(settle(stack))
        decided = asyncio.run(http_phase(stack, args, ids, "HTTP decided (200)", 200))
        asyncio.run(settle(stack))
        concurrent, pipelined, size = asyncio.run(raw_phase(stack, args))
        print(
            f"raw aiokafka, {size}-byte messages: {concurrent:,.0f}/s {args.concurrency} at a "
            f"time; {pipelined:,.0f}/s all pipelined"
        )
        if not args.skip_durable_only:
            asyncio.run(settle(stack))
            stack.restart_node({"RUNLEDGER_COMMAND_TIMEOUT_S": "0"})
            stack.wait_token()
            asyncio.run(http_phase(stack, args, ids, "HTTP durable only (202)", 202))
    rate = decided.rate(200)
    verdict = "meets" if rate >= TARGET else "misses"
    print(f"decided commands/s {rate:,.0f}: {verdict} the target of {TARGET:,}/s")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    print(f"ratio: {rate / concurrent:.3f}")


if __name__ == "__main__":
    main()
