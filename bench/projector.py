"""Projector throughput against the fair baseline: consuming and decoding the same events.

Builds N realistic events (processes created → started → steps and progress →
completed, many in flight at once, a few accounts), encodes each once and produces them
to a fresh topic prefix. Then, in the same run, on the same broker and data:

(a) baseline: an aiokafka consumer (no group, every partition, read_committed, the
    projector's fetch sizes) reading the events topic from offset 0 and decoding every
    message body with fastavro (``schemaless_reader`` with the writer schema found by
    fingerprint) and nothing else;
(b) the Projector from offset 0 into a fresh DuckDB file, until it has applied the end
    of every partition (events, processes, steps and positions committed).

The baseline runs before and after the projector and the faster run counts. Wall and
CPU time (of this process, all threads) are printed: the machine may be shared. The last
line is ``ratio: <projector events/s / baseline events/s>`` (wall clock).

    .venv/bin/python bench/projector.py --bootstrap 127.0.0.1:19092 [--events N]

Without ``--bootstrap`` a broker is started with ``runledger.broker.start_broker``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the project before bench/ (bench/runners.py)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from aiokafka.partitioner import murmur2
from fastavro import schemaless_reader

from projections.projector import Projector
from projections.store import Store
from runledger.node import GC_THRESHOLD
from schemas import default_codec
from schemas.codec import HEADER_LEN
from streams.domain import commands as c
from streams.domain import process
from streams.domain.aggregates import stream_key
from streams.domain.events import StepDefinition
from streams.serde import encode_event
from streams.topics import Topics, ensure_topics

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in microseconds
EVENTS_PER_PROCESS = 10
IN_FLIGHT = 2_000  # processes running at once, so a batch touches many of them
ACCOUNTS = 20
STEPS = (StepDefinition("fetch", "Fetch pages", 1), StepDefinition("check", "Check links", 2))


def lifecycle(n: int) -> list[c.Body]:
    """Ten events: created, started, two steps with progress in between, completed."""
    return [
        c.CreateProcess("scan", f"site-{n % 97}", f'{{"url":"https://example.org/{n}"}}', STEPS),
        c.StartProcess(),
        c.StartStep("fetch"),
        c.ReportProgress(25.0, "fetching"),
        c.CompleteStep("fetch", "42 pages"),
        c.StartStep("check"),
        c.ReportProgress(50.0),
        c.ReportProgress(75.0, "checking"),
        c.CompleteStep("check"),
        c.CompleteProcess(f"report-{n}", '{"broken_links":3,"pages":42}'),
    ]


def events(total: int) -> Iterator[tuple[bytes, bytes, bytes]]:
    """(key, value, type) of ``total`` events, processes interleaved ``IN_FLIGHT`` at a time."""
    codec = default_codec()
    processes = -(-total // EVENTS_PER_PROCESS)
    produced = 0
    clock = T0
    for first in range(0, processes, IN_FLIGHT):
        group = range(first, min(first + IN_FLIGHT, processes))
        states: dict[int, process.ProcessState | None] = dict.fromkeys(group)
        plans = {n: lifecycle(n) for n in group}
        for step in range(EVENTS_PER_PROCESS):
            for n in group:
                if produced >= total:
                    return
                pid = f"proc-{n:08d}"
                cmd = c.Command(
                    f"cmd-{n}-{step}", process.AGGREGATE, pid, clock, f"account-{n % ACCOUNTS}",
                    "runner-scan", f"corr-{n}", f"cmd-{n}-{step - 1}", plans[n][step],
                )  # fmt: skip
                clock += 1_000
                for event in process.decide(states[n], cmd):
                    states[n] = process.evolve(states[n], event)
                    key = stream_key(event.aggregate_type, event.aggregate_id).encode()
                    yield key, encode_event(codec, event), event.type.encode()
                    produced += 1


async def produce(bootstrap: str, topics: Topics, partitions: int, total: int) -> int:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=1 << 20
    )
    await producer.start()
    count = 0
    try:
        builders = {p: producer.create_batch() for p in range(partitions)}
        pending = []
        for key, value, kind in events(total):
            p = (murmur2(key) & 0x7FFFFFFF) % partitions
            headers = [("type", kind)]
            if builders[p].append(key=key, value=value, timestamp=None, headers=headers) is None:
                pending.append(await producer.send_batch(builders[p], topics.events, partition=p))
                builders[p] = producer.create_batch()
                builders[p].append(key=key, value=value, timestamp=None, headers=headers)
            count += 1
        for p, builder in builders.items():
            if builder.record_count():
                pending.append(await producer.send_batch(builder, topics.events, partition=p))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return count


def consumer_for(bootstrap: str) -> AIOKafkaConsumer:
    # The same settings as the Projector's consumer.
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )


@dataclass(frozen=True)
class Timing:
    """Wall seconds, and CPU seconds of this process (all its threads) over the same span."""

    wall: float
    cpu: float


async def baseline(
    bootstrap: str, topics: Topics, partitions: int, total: int, max_records: int
) -> Timing:
    """Consume and fastavro-decode ``total`` messages from offset 0."""
    writers = {schema.fingerprint: schema.parsed for schema in default_codec().registry}
    consumer = consumer_for(bootstrap)
    began, cpu = time.perf_counter(), time.process_time()
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topics.events, p) for p in range(partitions)])
        seen = 0
        while seen < total:
            fetched = await consumer.getmany(timeout_ms=1000, max_records=max_records)
            for records in fetched.values():
                for record in records:
                    value = record.value
                    assert value is not None
                    body = BytesIO(value)
                    body.seek(HEADER_LEN)
                    writer = writers[int.from_bytes(value[2:HEADER_LEN], "little")]
                    schemaless_reader(body, writer, None)
                seen += len(records)
    finally:
        await consumer.stop()
    return Timing(time.perf_counter() - began, time.process_time() - cpu)


async def project(
    bootstrap: str, topics: Topics, path: Path, max_records: int, cache_size: int
) -> tuple[Timing, Projector]:
    """A Projector applying the whole events topic into a fresh file, until committed."""
    with Store(path) as store:
        projector = Projector(
            store,
            bootstrap=bootstrap,
            topics=topics,
            max_records=max_records,
            cache_size=cache_size,
        )
        began, cpu = time.perf_counter(), time.process_time()
        await projector.start()
        ends = await projector.end_offsets()
        task = asyncio.create_task(projector.run())
        reached = await projector.watermark.wait_for_end(ends, timeout=3600)
        timing = Timing(time.perf_counter() - began, time.process_time() - cpu)
        await projector.stop()
        await task
        if not reached:
            raise RuntimeError("the projector did not reach the end of the topic")
        counts = store.query(
            "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM processes)"
        )
        closing = time.perf_counter()
    print(
        f"projector wrote {counts[0][0]:,} events and {counts[0][1]:,} processes; "
        f"closing the file (final checkpoint) took {time.perf_counter() - closing:.2f} s"
    )
    return timing, projector


def report(name: str, timing: Timing, total: int, extra: str = "") -> None:
    print(
        f"{name:<48} {timing.wall:7.2f} s {total / timing.wall:>9,.0f} events/s"
        f"   cpu {timing.cpu:6.2f} s {total / timing.cpu:>9,.0f} events/cpu-s{extra}"
    )


async def main_async(args: argparse.Namespace, bootstrap: str) -> int:
    if args.reuse_prefix:  # a topic an earlier run of this script filled with --events N
        topics, total = Topics(args.reuse_prefix), args.events
        print(f"reusing {total:,} events of {topics.events}")
    else:
        topics = Topics(f"bench-{uuid.uuid4().hex[:8]}.")
        await ensure_topics(bootstrap, topics, args.partitions)
        began = time.perf_counter()
        total = await produce(bootstrap, topics, args.partitions, args.events)
        print(
            f"produced {total:,} events ({total // EVENTS_PER_PROCESS:,} processes, "
            f"{args.partitions} partitions) to {topics.events} "
            f"in {time.perf_counter() - began:.1f} s"
        )
    # Baseline before and after the projector; the faster one counts (the lower ratio).
    gc.collect()
    first = await baseline(bootstrap, topics, args.partitions, total, args.max_records)
    report("baseline (aiokafka consume + fastavro decode)", first, total)
    gc.collect()
    with tempfile.TemporaryDirectory(prefix="bench-projector-") as tmp:
        timing, projector = await project(
            bootstrap, topics, Path(tmp) / "read.duckdb", args.max_records, args.cache_size
        )
    stats = projector.stats
    extra = (
        f"   ({stats.batches} batches, {stats.duplicates_dropped} duplicates, "
        f"{stats.dead_lettered} dead letters)"
    )
    report("projector (fold + DuckDB commit)", timing, total, extra)
    gc.collect()
    second = await baseline(bootstrap, topics, args.partitions, total, args.max_records)
    report("baseline, again", second, total)
    base = min(first, second, key=lambda t: t.wall)
    print(f"cpu ratio: {base.cpu / timing.cpu:.2f}")
    print(f"ratio: {base.wall / timing.wall:.2f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", help="host:port of a Kafka broker (default: start one)")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--max-records", type=int, default=20_000)
    parser.add_argument("--cache-size", type=int, default=50_000)
    parser.add_argument("--reuse-prefix", help="measure the topics of an earlier run again")
    parser.add_argument(
        "--gc-threshold",
        type=int,
        help="gc.set_threshold(N, 20, 20) for the whole run (baseline too); default: what a "
        "node sets (runledger.node.GC_THRESHOLD); 0 keeps Python's default",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.gc_threshold is None:
        args.gc_threshold = GC_THRESHOLD  # what a node sets at start
    if args.gc_threshold:
        gc.set_threshold(args.gc_threshold, 20, 20)
    print(f"gc thresholds {gc.get_threshold()}")
    if args.bootstrap:
        return asyncio.run(main_async(args, args.bootstrap))
    from runledger.broker import start_broker
    from runledger.settings import Settings

    with tempfile.TemporaryDirectory(prefix="bench-kafka-") as tmp:
        broker = start_broker(Settings.from_env(), Path(tmp), keep_data=False)
        try:
            return asyncio.run(main_async(args, broker.bootstrap))
        finally:
            broker.stop()


if __name__ == "__main__":
    sys.exit(main())
