"""As-of on an aggregate with 10,000 events against a plain read of its current state.

Produces one Process with N events (created, then progress reports) among 20,000
events of other Processes (the generator of ``bench/projector.py``) to a fresh topic
prefix, replays them into a DuckDB file, then measures, each the median of several runs:

(a) as-of, as ``runledger as-of`` does it minus interpreter start: read the aggregate's
    partition of ``ledger.events`` and ``ledger.outcomes`` from the broker, keep its
    key, decode, fold with ``evolve`` up to the time (``runledger.audit``);
(b) the fold alone (events already decoded in memory);
(c) a plain read of the current state from the read model (``Store.load_processes``,
    what the API's ``GET /process/{id}`` reads).

The last line is ``ratio: <as-of seconds / plain read seconds>``.

    .venv/bin/python bench/asof.py --bootstrap 127.0.0.1:19092 [--events N]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaProducer
from projector import produce  # bench/projector.py

from projections.replay import Progress, replay
from projections.store import Store
from runledger.audit import load, state_as_of
from schemas import default_codec
from streams.consumer import read_to_end
from streams.domain import commands as c
from streams.domain import process
from streams.domain.aggregates import stream_key
from streams.serde import encode_event
from streams.topics import Topics, ensure_topics

T0 = 1_767_225_600_000_000
NOISE = 20_000


async def produce_one(bootstrap: str, topics: Topics, pid: str, total: int) -> int:
    """``total`` events of Process ``pid``; returns the occurred_at of the middle one."""
    codec = default_codec()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    await producer.start()
    state = None
    middle = T0
    try:
        key = stream_key(process.AGGREGATE, pid).encode()
        futures = []
        i = 0
        while state is None or state.seq < total:
            body: c.Body = (
                c.CreateProcess("scan", None, "{}", ()) if i == 0
                else c.ReportProgress(float(i % 100), f"report {i}")
            )  # fmt: skip
            cmd = c.Command(f"c{i}", "process", pid, T0 + i, "acme", "bench", "r", "r", body)
            for ev in process.decide(state, cmd):
                state = process.evolve(state, ev)
                if ev.seq == total // 2:
                    middle = ev.occurred_at
                futures.append(await producer.send(topics.events, encode_event(codec, ev), key))
            i += 1
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return middle


def median_s(fn: object, runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - began)
    return statistics.median(times)


async def main_async(args: argparse.Namespace, bootstrap: str) -> int:
    topics = Topics(f"bench-{uuid.uuid4().hex[:8]}.")
    await ensure_topics(bootstrap, topics, args.partitions)
    await produce(bootstrap, topics, args.partitions, NOISE)
    pid = f"asof-{uuid.uuid4().hex[:8]}"
    middle = await produce_one(bootstrap, topics, pid, args.events)
    codec = default_codec()
    with tempfile.TemporaryDirectory(prefix="bench-asof-") as tmp:
        path = Path(tmp) / "read.duckdb"
        progress = Progress()
        await replay(
            path, read_to_end(bootstrap, topics.events, on_ends=progress.set_range),
            topic=topics.events, progress=progress, ends=lambda: dict(progress.ends),
        )  # fmt: skip

        times = []
        for _ in range(args.runs):
            began = time.perf_counter()
            h = await load(bootstrap, topics, codec, pid, ["process"], args.partitions)
            state = state_as_of(h.events, middle)
            times.append(time.perf_counter() - began)
        as_of = statistics.median(times)
        assert state.seq == args.events // 2, state.seq
        print(f"history: {len(h.events):,} events of {pid}, {len(h.entries):,} entries")
        fold = median_s(lambda: state_as_of(h.events, middle), args.runs)
        with Store(path) as store:
            current = store.load_processes([pid])[pid]
            assert current.seq == args.events
            plain = median_s(lambda: store.load_processes([pid]), 50)
    print(f"as-of (read partition + decode + fold)  {as_of * 1000:9.1f} ms")
    print(f"fold alone ({args.events // 2:,} events)            {fold * 1000:9.1f} ms")
    print(f"plain read of the current state          {plain * 1000:9.3f} ms")
    print(f"ratio: {as_of / plain:.0f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", help="host:port of a Kafka broker (default: start one)")
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
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
