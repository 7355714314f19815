"""``runledger tail`` against a plain aiokafka consume + decode of the same topic.

Writes N process events to a fresh topic prefix, then alternately, ``--runs`` times
each: ``runledger tail --from beginning --max N > /dev/null`` (a child process; its CPU
time from rusage, interpreter start included) and an in-process ``read_committed``
aiokafka consumer that decodes every record with ``streams.serde.decode_event`` (its
CPU time). Both compete for the same cores as anything else running: the CPU times
and their ratio are the figures to compare, and ``uptime`` is printed before and after.
Figures in docs/consumers.md ("How fast tail is"). The last line is
``ratio: <tail events per CPU-second / consume+decode events per CPU-second>``.

    .venv/bin/python bench/tail.py --bootstrap 127.0.0.1:19092 [--events N] [--runs R]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid

from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas import default_codec
from streams import serde
from streams.domain import events as e
from streams.publisher import Publisher
from streams.topics import Topics, ensure_topics, partitions_of

PARTITIONS = 4


async def write(bootstrap: str, topic: str, count: int) -> None:
    codec = default_codec()
    publisher = Publisher(bootstrap, client_id="bench-tail")
    await publisher.start()
    try:
        pending = []
        for i in range(count):
            pid, seq = f"p{i // 5}", i % 5 + 1
            data: e.Payload = e.ProcessCreated("bench") if seq == 1 else e.ProgressReported(seq)
            event = e.Event(
                e.event_id_for("process", pid, seq), "process", pid, seq, data.TYPE,
                time.time_ns() // 1000, "acme", "bench", f"c-{i}", "corr", "cause", data,
            )  # fmt: skip
            value = serde.encode_event(codec, event)
            pending.append(await publisher.send(topic, pid.encode(), value))
        await asyncio.gather(*pending)
    finally:
        await publisher.stop()


def run_tail(bootstrap: str, prefix: str, count: int) -> tuple[float, float]:
    """Wall and CPU seconds of ``runledger tail`` printing ``count`` events to /dev/null."""
    env = {
        **os.environ,
        "RUNLEDGER_KAFKA_BOOTSTRAP": bootstrap,
        "RUNLEDGER_TOPIC_PREFIX": prefix,
        "RUNLEDGER_DATA_DIR": tempfile.mkdtemp(prefix="bench-tail-"),  # no stack.json in it
    }
    argv = [sys.executable, "-m", "runledger", "tail", "--from", "beginning", "--max", str(count)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    with open(os.devnull, "w") as null:
        subprocess.run(argv, env=env, stdout=null, check=True, timeout=600)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, cpu


async def consume_and_decode(bootstrap: str, topic: str, count: int) -> tuple[float, float]:
    """Wall and CPU seconds of reading and decoding ``count`` events, nothing more."""
    codec = default_codec()
    started, cpu = time.monotonic(), time.process_time()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        parts = await partitions_of(consumer, topic)
        consumer.assign([TopicPartition(topic, p) for p in parts])
        got = 0
        while got < count:
            for records in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                for record in records:
                    serde.decode_event(codec, record.value)
                    got += 1
    finally:
        await consumer.stop()
    return time.monotonic() - started, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    prefix = f"bt{uuid.uuid4().hex[:8]}."
    topic = Topics(prefix).events
    asyncio.run(ensure_topics(args.bootstrap, Topics(prefix), PARTITIONS))
    asyncio.run(write(args.bootstrap, topic, args.events))
    n = args.events
    print(f"{n:,} events on {topic}; load: {os.getloadavg()[0]:.2f}", flush=True)
    tails, raws = [], []
    for i in range(args.runs):
        t_wall, t_cpu = run_tail(args.bootstrap, prefix, n)
        r_wall, r_cpu = asyncio.run(consume_and_decode(args.bootstrap, topic, n))
        tails.append(t_cpu)
        raws.append(r_cpu)
        print(
            f"run {i}: tail {n / t_wall:,.0f} ev/s wall, {n / t_cpu:,.0f} ev/CPU-s | "
            f"consume+decode {n / r_wall:,.0f} ev/s wall, {n / r_cpu:,.0f} ev/CPU-s",
            flush=True,
        )
    print(f"load after: {os.getloadavg()[0]:.2f}")
    print(f"best: tail {n / min(tails):,.0f} ev/CPU-s, consume+decode {n / min(raws):,.0f}")
    print(f"ratio: {min(raws) / min(tails):.2f}")


if __name__ == "__main__":
    main()
