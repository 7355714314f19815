"""Replay throughput (the bulk path of ``runledger replay``) against decode-only.

Produces N realistic events (the generator of ``bench/projector.py``: processes
created → started → steps and progress → completed, 2,000 in flight, 20 accounts) to a
fresh topic prefix, then in the same run, on the same broker and data:

(a) baseline: an aiokafka consumer reading the events topic from offset 0 and decoding
    every body with fastavro (``schemaless_reader``), nothing else;
(b) ``runledger replay``'s path: ``projections.replay.replay_parallel`` into a new
    DuckDB file (worker processes consume and fold their partitions; the main process
    appends their chunks of ``events`` rows and states; positions last).

Printed: events/s in each tenth of the replay (by events written to the file by the
main process: the last tenth includes the final states and the closing of the file),
peak RSS of the main process (``ru_maxrss`` before and after) and of the largest
worker, CPU of all of them, the file size, and the last line
``ratio: <replay events/s / baseline events/s>`` (wall clock; the faster of two
baseline runs counts).

    .venv/bin/python bench/replay.py --bootstrap 127.0.0.1:19092 [--events N]
        [--reuse-prefix bench-1234abcd.]   # the topic of an earlier run with the same N
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

from projections.replay import Progress, ReplayResult
from projections.replay_parallel import replay_parallel
from runledger.node import GC_THRESHOLD
from streams.topics import Topics, ensure_topics


def rss_mib(who: int = resource.RUSAGE_SELF) -> float:
    """Peak RSS of this process, or of the largest finished child (RUSAGE_CHILDREN)."""
    return resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _time_at(points: list[tuple[float, int]], events: float) -> float:
    """When ``events`` were applied, interpolated between the batches around it
    (a batch is up to 50,000 events, so tenths of a small run fall inside one)."""
    for (t0, e0), (t1, e1) in zip(points, points[1:], strict=False):
        if e1 >= events:
            return t0 + (t1 - t0) * (events - e0) / max(1, e1 - e0)
    return points[-1][0]


def run_replay(
    bootstrap: str, topics: Topics, path: Path, total: int, workers: int | None
) -> tuple[float, list[float], ReplayResult]:
    """Wall seconds of the replay, events/s in each tenth of it, and its result."""
    points: list[tuple[float, int]] = []  # (time, events written) after each chunk
    progress = Progress()

    def tick(p: Progress) -> None:
        points.append((time.perf_counter(), p.events))

    began = time.perf_counter()
    points.append((began, 0))
    result = replay_parallel(
        path, bootstrap, topics.events, workers=workers, progress=progress,
        on_progress=tick, gc_threshold=GC_THRESHOLD,
    )  # fmt: skip
    wall = time.perf_counter() - began  # the file is closed and renamed by now
    if result.events != total:
        raise RuntimeError(f"replay applied {result.events:,} of {total:,} events")
    # The final states, the positions and closing the file belong to the last tenth.
    points.append((began + wall, total))
    edges = [began] + [_time_at(points, total * k / 10) for k in range(1, 10)] + [began + wall]
    tenths = [total / 10 / (b - a) for a, b in zip(edges, edges[1:], strict=False)]
    return wall, tenths, result


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
    print(f"load before: {Path('/proc/loadavg').read_text().strip()}")
    gc.collect()
    first = await baseline(bootstrap, topics, args.partitions, total, 50_000)
    report("baseline (aiokafka consume + fastavro decode)", first, total)
    gc.collect()
    before = rss_mib()
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        path = Path(tmp) / "replayed.duckdb"
        cpu, child_cpu = time.process_time(), children_cpu()
        # In a thread: replay_parallel runs its own event loop to read the end offsets.
        wall, tenths, result = await asyncio.to_thread(
            run_replay, bootstrap, topics, path, total, args.workers
        )
        cpu, child_cpu = time.process_time() - cpu, children_cpu() - child_cpu
        size = path.stat().st_size
    after = rss_mib()
    print(
        f"{'replay (bulk path into a new DuckDB file)':<48} {wall:7.2f} s "
        f"{total / wall:>9,.0f} events/s   cpu {cpu:6.2f} s main + {child_cpu:6.2f} s workers"
    )
    print(
        f"{result.states:,} states, {result.duplicates} duplicates, "
        f"{result.dead_letters} dead letters"
    )
    for w in result.workers:
        print(
            f"  worker {w.index}: {w.events:,} events, cpu {w.cpu:.2f} s "
            f"({w.fold_cpu:.2f} s folding and building rows, {w.evicted:,} states evicted)"
        )
    print("events/s per tenth: " + ", ".join(f"{t:,.0f}" for t in tenths))
    print(f"last tenth / first tenth: {tenths[-1] / tenths[0]:.2f}")
    print(
        f"peak RSS: main process {before:,.0f} MiB before the replay, {after:,.0f} MiB after; "
        f"largest worker {rss_mib(resource.RUSAGE_CHILDREN):,.0f} MiB"
    )
    print(f"file size: {size / 2**20:,.1f} MiB ({size / total:.0f} bytes per event)")
    gc.collect()
    second = await baseline(bootstrap, topics, args.partitions, total, 50_000)
    report("baseline, again", second, total)
    print(f"load after: {Path('/proc/loadavg').read_text().strip()}")
    base = min(first.wall, second.wall)
    # On a loaded machine wall clock rewards nothing for using a second core; the CPU
    # ratio says how much more work the replay does per event than the baseline.
    print(f"cpu ratio: {min(first.cpu, second.cpu) / (cpu + child_cpu):.2f}")
    print(f"ratio: {base / wall:.2f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", help="host:port of a Kafka broker (default: start one)")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--workers", type=int, help="replay worker processes (default: cores)")
    parser.add_argument("--reuse-prefix", help="replay the topics of an earlier run again")
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
