"""From a command's answer to the change being readable, against raw Kafka produce → consume.

    python bench/lag.py [--commands 500] [--client lean|httpx]

One broker (``RUNLEDGER_KAFKA_BOOTSTRAP``, else one started for the run), one decider
and one node as child processes, a fresh topic prefix, one Process. Measured in the
same run, one command at a time:

(a) HTTP: ``POST /process/{id}/progress`` with a new message each time; when it has
    answered ``200`` (Kafka acknowledged the command and the decider decided it),
    ``GET /process/{id}`` is polled back to back until the message shows. *Lag* is
    from the answer to the first read that shows it; *end to end* from sending the
    POST to that read. Reads do not use ``?wait``: this is what a client that does not
    ask for read-your-writes sees.
(b) raw: an aiokafka producer (acks=all, idempotent) sends a message of the command's
    size and waits for its ack while a consumer (read_committed, polling) of the same
    topic waits for it; raw latency is from the send to the consumer having it.

The last line is ``ratio: <p50 lag of (a) / p50 produce→consume of (b)>``.
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
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402

from schemas import default_codec  # noqa: E402
from streams.topics import Topics, ensure_topics, partitions_of  # noqa: E402

POLL_LIMIT_S = 10.0  # longest wait for one command to show before it counts as lost


def ms(values: list[float], q: float) -> str:
    return f"{_stack.percentile(values, q) * 1000:.1f} ms"


def summary(name: str, values: list[float]) -> str:
    return f"{name}: p50 {ms(values, 50)}, p90 {ms(values, 90)}, p99 {ms(values, 99)}"


async def http_phase(stack: _stack.Stack, args: argparse.Namespace) -> tuple[list[float], ...]:
    conn = _stack.connections(stack, 1, args.client)[0]
    posts: list[float] = []
    lags: list[float] = []
    ends: list[float] = []
    first_read = 0
    lost = 0
    pause = args.poll_interval_ms / 1000
    try:
        body = json.dumps({"type": "bench.lag", "steps": [{"id": "work"}]}).encode()
        r = await conn.request("POST", "/process", body)
        if r.status != 201:
            raise SystemExit(f"could not create the Process: {r.status} {r.body[:200]!r}")
        path = f"/process/{json.loads(r.body)['id']}"
        deadline = time.monotonic() + args.time_limit
        for i in range(args.warmup + args.commands):
            if time.monotonic() > deadline:
                break
            message = f"lag {i}"
            payload = json.dumps({"progress": i % 101, "message": message}).encode()
            needle = json.dumps(message).encode()
            sent = time.perf_counter()
            r = await conn.request("POST", path + "/progress", payload)
            answered = time.perf_counter()
            if r.status != 200:
                raise SystemExit(f"progress answered {r.status}: {r.body[:200]!r}")
            reads = 0
            while True:
                reads += 1
                seen = await conn.request("GET", path)
                now = time.perf_counter()
                if needle in seen.body:
                    break
                if now - answered > POLL_LIMIT_S:
                    lost += 1
                    break
                if pause:
                    await asyncio.sleep(pause)
            if i < args.warmup:
                continue
            first_read += reads == 1
            posts.append(answered - sent)
            lags.append(now - answered)
            ends.append(now - sent)
    finally:
        await conn.close()
    n = len(lags)
    print(f"HTTP, {n} commands one at a time ({lost} not visible within {POLL_LIMIT_S:.0f} s):")
    print("  " + summary("POST answered", posts))
    print("  " + summary("lag, answer -> visible", lags))
    print("  " + summary("end to end, send -> visible", ends))
    print(f"  visible at the first read after the answer: {first_read} of {n}")
    return posts, lags, ends


async def raw_phase(stack: _stack.Stack, args: argparse.Namespace) -> list[float]:
    topic = Topics(stack.prefix + "raw.").commands
    await ensure_topics(stack.bootstrap, Topics(stack.prefix + "raw."), stack.partitions)
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.bootstrap, acks="all", enable_idempotence=True, linger_ms=2
    )
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack.bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await producer.start()
    await consumer.start()
    arrived: dict[bytes, float] = {}
    waiting: dict[bytes, asyncio.Future[float]] = {}

    async def consume() -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for messages in batch.values():
                for msg in messages:
                    future = waiting.pop(msg.key, None)
                    if future is not None and not future.done():
                        future.set_result(now)
                    else:
                        arrived[msg.key] = now

    latencies: list[float] = []
    task: asyncio.Task[None] | None = None
    try:
        tps = [TopicPartition(topic, p) for p in await partitions_of(consumer, topic)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        task = asyncio.create_task(consume())
        codec = default_codec()
        deadline = time.monotonic() + args.time_limit
        for i in range(args.warmup + args.commands):
            if time.monotonic() > deadline:
                break
            key, value = _stack.sample_command(codec, i)
            future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
            waiting[key] = future
            sent = time.perf_counter()
            await producer.send_and_wait(topic, value, key=key)
            got = arrived.pop(key, None)
            if got is None:
                got = await asyncio.wait_for(future, POLL_LIMIT_S)
            if i >= args.warmup:
                latencies.append(got - sent)
    finally:
        if task is not None:
            task.cancel()
        await consumer.stop()
        await producer.stop()
    print(f"raw aiokafka, {len(latencies)} messages of {len(value)} bytes one at a time:")
    print("  " + summary("produce -> consume", latencies))
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commands", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument(
        "--poll-interval-ms", type=float, default=1.0, help="pause between reads; 0: none"
    )
    parser.add_argument("--client", choices=_stack.CLIENTS, default="lean")
    parser.add_argument("--time-limit", type=float, default=120.0, help="per phase, seconds")
    args = parser.parse_args()
    _stack.quiet_logs()
    uvloop = _stack.use_uvloop()
    print(f"machine: {_stack.machine()}; load average {os.getloadavg()[0]:.2f}")
    print(f"client {args.client}{' on uvloop' if uvloop else ''}")
    with _stack.running_stack() as stack:
        _, lags, _ = asyncio.run(http_phase(stack, args))
        raw = asyncio.run(raw_phase(stack, args))
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    print(f"ratio: {_stack.percentile(lags, 50) / _stack.percentile(raw, 50):.2f}")


if __name__ == "__main__":
    main()
