"""Replay throughput (the bulk path of ``runledger replay``) against decode-only.

Produces N realistic events (the generator of ``bench/projector.py``: processes
created → started → steps and progress → completed, 2,000 in flight, 20 accounts) to a
fresh topic prefix, then in the same run, on the same broker and data:

(a) baseline: an aiokafka consumer reading the events topic from offset 0 and decoding
    every body with fastavro (``schemaless_reader``), nothing else;
(b) ``runledger replay``'s path: ``read_to_end`` + ``projections.replay.replay`` into a
    new DuckDB file (fold in memory, events appended in chunks, final states once).

Printed: events/s in each tenth of the replay (by events applied), peak RSS of the
process (``ru_maxrss``, before and after the replay), the file size, and the last
line ``ratio: <replay events/s / baseline events/s>`` (wall clock; the faster of two
baseline runs counts).

    .venv/bin/python bench/replay.py --bootstrap 127.0.0.1:19092 [--events N]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

from projector import EVENTS_PER_PROCESS, baseline, produce, report  # bench/projector.py

from projections.replay import Progress, replay
from runledger.node import GC_THRESHOLD
from streams.consumer import read_to_end
from streams.topics import Topics, ensure_topics


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _time_at(points: list[tuple[float, int]], events: float) -> float:
    """When ``events`` were applied, interpolated between the batches around it
    (a batch is up to 50,000 events, so tenths of a small run fall inside one)."""
    for (t0, e0), (t1, e1) in zip(points, points[1:], strict=False):
        if e1 >= events:
            return t0 + (t1 - t0) * (events - e0) / max(1, e1 - e0)
    return points[-1][0]


async def run_replay(
    bootstrap: str, topics: Topics, path: Path, total: int
) -> tuple[float, list[float]]:
    """Wall seconds of the replay, and events/s in each tenth of it."""
    points: list[tuple[float, int]] = []  # (time, events applied) after each batch
    progress = Progress()

    def tick(p: Progress) -> None:
        points.append((time.perf_counter(), p.events))

    began = time.perf_counter()
    points.append((began, 0))
    batches = read_to_end(bootstrap, topics.events, on_ends=progress.set_range)
    result = await replay(
        path, batches, topic=topics.events, progress=progress, on_progress=tick,
        ends=lambda: dict(progress.ends),
    )  # fmt: skip
    wall = time.perf_counter() - began
    if result.events != total:
        raise RuntimeError(f"replay applied {result.events:,} of {total:,} events")
    # The final write of every state belongs to the last tenth.
    points[-1] = (began + wall, total)
    edges = [began] + [_time_at(points, total * k / 10) for k in range(1, 10)] + [began + wall]
    tenths = [total / 10 / (b - a) for a, b in zip(edges, edges[1:], strict=False)]
    return wall, tenths


async def main_async(args: argparse.Namespace, bootstrap: str) -> int:
    topics = Topics(f"bench-{uuid.uuid4().hex[:8]}.")
    await ensure_topics(bootstrap, topics, args.partitions)
    began = time.perf_counter()
    total = await produce(bootstrap, topics, args.partitions, args.events)
    print(
        f"produced {total:,} events ({total // EVENTS_PER_PROCESS:,} processes, "
        f"{args.partitions} partitions) in {time.perf_counter() - began:.1f} s"
    )
    gc.collect()
    first = await baseline(bootstrap, topics, args.partitions, total, 50_000)
    report("baseline (aiokafka consume + fastavro decode)", first, total)
    gc.collect()
    before = rss_mib()
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        path = Path(tmp) / "replayed.duckdb"
        cpu = time.process_time()
        wall, tenths = await run_replay(bootstrap, topics, path, total)
        cpu = time.process_time() - cpu
        size = path.stat().st_size
    after = rss_mib()
    print(
        f"{'replay (bulk path into a new DuckDB file)':<48} {wall:7.2f} s "
        f"{total / wall:>9,.0f} events/s   cpu {cpu:6.2f} s"
    )
    print("events/s per tenth: " + ", ".join(f"{t:,.0f}" for t in tenths))
    print(f"last tenth / first tenth: {tenths[-1] / tenths[0]:.2f}")
    print(f"peak RSS: {before:,.0f} MiB before the replay, {after:,.0f} MiB after")
    print(f"file size: {size / 2**20:,.1f} MiB ({size / total:.0f} bytes per event)")
    gc.collect()
    second = await baseline(bootstrap, topics, args.partitions, total, 50_000)
    report("baseline, again", second, total)
    base = min(first.wall, second.wall)
    print(f"ratio: {base / wall:.2f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", help="host:port of a Kafka broker (default: start one)")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    gc.set_threshold(GC_THRESHOLD, 20, 20)  # what a node and the replay CLI run with
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
