"""The parallel bulk replay: worker processes fold disjoint partitions, this process writes.

Each worker (:mod:`projections.replay_worker`) consumes its share of the partitions
and folds them with a :class:`~projections.replay_fold.PartitionFold`; this process
appends the chunks of rows they send (a :class:`~projections.replay.ChunkWriter`), in
the order each worker sent them, and writes the positions last. An aggregate's events
share a key, so they are in one partition and one worker: the folds never overlap.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import queue
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from projections.errors import StoreError
from projections.replay import ChunkWriter, Progress, ReplayResult, building
from projections.replay_fold import Chunk
from projections.replay_worker import Done, Failed, Range, WorkerSpec, run_worker
from projections.store import Store
from streams.consumer import LedgerConsumer


class ReplayError(StoreError):
    """A replay worker failed or died, or the log cannot give the read model asked for;
    the partial file was removed."""


def default_workers() -> int:
    """One worker per core, at most 4 (the main process needs some CPU to write)."""
    return max(1, min(os.cpu_count() or 1, 4))


async def topic_ends(bootstrap: str, topic: str) -> dict[int, int]:
    """The current end offset of every partition of ``topic``; ConsumerError."""
    return (await topic_range(bootstrap, topic))[1]


async def topic_range(bootstrap: str, topic: str) -> tuple[dict[int, int], dict[int, int]]:
    """The first offset still in the log and the current end of every partition of
    ``topic``; ConsumerError."""
    async with LedgerConsumer(bootstrap, topic, client_id="runledger-replay") as consumer:
        return consumer.positions, await consumer.end_offsets()  # positions: at the start


def check_range(
    firsts: Mapping[int, int], ends: Mapping[int, int], until: Mapping[int, int] | None = None
) -> dict[int, int]:
    """The offset to replay each partition up to: ``until`` (default ``ends``).

    ReplayError when the log cannot give a read model up to there: a partition's
    start was deleted (retention) so offsets below its first one are gone, or
    ``until`` names a partition the topic lacks or an offset past its end (a model of
    another cluster, or of a topic made again), which a replay would wait for forever.
    """
    targets = dict(ends)
    if until is not None:
        for partition, offset in sorted(until.items()):
            if partition not in ends:
                raise ReplayError(
                    f"cannot replay up to offset {offset} of partition {partition}: "
                    "the topic has no such partition"
                )
            if offset > ends[partition]:
                raise ReplayError(
                    f"cannot replay partition {partition} up to offset {offset}: the log "
                    f"ends at {ends[partition]} (a read model of another cluster, or of a "
                    "topic made again?)"
                )
        targets = {p: until.get(p, 0) for p in ends}
    for partition, first in sorted(firsts.items()):
        if first > 0 and targets.get(partition, 0) > 0:
            raise ReplayError(
                f"partition {partition} of the log starts at offset {first}: the records "
                "before it were deleted (retention), so the read model cannot be rebuilt "
                "from the log; nothing was built"
            )
    return targets


def replay_parallel(
    path: str | Path,
    bootstrap: str,
    topic: str,
    *,
    until: Mapping[int, int] | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    chunk_events: int = 25_000,
    max_states: int = 20_000,
    gc_threshold: int | None = None,
) -> ReplayResult:
    """Rebuild into ``path`` (which must not exist) from ``topic``, from each partition's
    first offset up to ``until`` (default: the ends it has now), folding in ``workers``
    processes (default :func:`default_workers`, at most one per partition).

    FileExistsError when ``path`` exists; ConsumerError when the topic cannot be read;
    ReplayError when a worker fails or the log cannot rebuild it (:func:`check_range`).
    The partial file is removed on any error.
    """
    progress = progress or Progress()
    began = time.monotonic()
    firsts, current = asyncio.run(topic_range(bootstrap, topic))
    ends = check_range(firsts, current, until)
    count = max(1, min(workers or default_workers(), len(ends)))
    shares = [tuple(sorted(ends)[i::count]) for i in range(count)]
    with building(path) as partial:
        scratch = partial.with_name(partial.name + ".spill")
        scratch.mkdir(exist_ok=True)
        try:
            specs = [
                WorkerSpec(
                    index=i,
                    bootstrap=bootstrap,
                    topic=topic,
                    partitions=share,
                    until={p: ends[p] for p in share},
                    spill_path=str(scratch / f"worker-{i}.sqlite"),
                    max_states=max_states,
                    chunk_events=chunk_events,
                    gc_threshold=gc_threshold,
                )
                for i, share in enumerate(shares)
            ]
            with Store(partial) as store:
                writer = ChunkWriter(store, topic)
                done = _collect(specs, writer, progress, on_progress)
                positions = writer.finish(ends)
        finally:
            remove_scratch(scratch)
    return ReplayResult(
        writer.events,
        writer.states,
        sum(d.duplicates for d in done),
        sum(d.dead_letters for d in done),
        positions,
        time.monotonic() - began,
        tuple(done),
    )


def remove_scratch(scratch: Path, timeout_s: float = 5.0) -> None:
    """Remove the workers' scratch folder. After Ctrl-C (which reaches the workers too)
    a worker may still be closing its spill file in it while the folder is removed, and
    one removal then leaves the folder behind: remove until it is gone, for at most
    ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        shutil.rmtree(scratch, ignore_errors=True)
        if not scratch.exists() or time.monotonic() > deadline:
            return
        time.sleep(0.05)


def _collect(
    specs: Sequence[WorkerSpec],
    writer: ChunkWriter,
    progress: Progress,
    on_progress: Callable[[Progress], None] | None,
) -> list[Done]:
    """Run the workers and write their chunks as they come; their Done reports."""
    context = multiprocessing.get_context("spawn")  # the parent has threads: no fork
    inbox = context.Queue(maxsize=2 * len(specs))
    procs = [context.Process(target=run_worker, args=(s, inbox), daemon=True) for s in specs]
    done: dict[int, Done] = {}
    try:
        for proc in procs:
            proc.start()
        progress.started = time.monotonic()
        while len(done) < len(procs):
            try:
                message = inbox.get(timeout=0.5)
            except queue.Empty:
                for spec, proc in zip(specs, procs, strict=True):
                    if spec.index not in done and proc.exitcode not in (None, 0):
                        raise ReplayError(
                            f"replay worker {spec.index} died (exit code {proc.exitcode})"
                        ) from None
                continue
            if isinstance(message, Chunk):
                writer.write(message)
                progress.reach(message.positions)
                progress.events = writer.events
            elif isinstance(message, Range):
                check_range(message.origin, message.ends)  # deleted since replay began?
                progress.add_range(message.origin, message.ends)
            elif isinstance(message, Done):
                done[message.index] = message
            elif isinstance(message, Failed):
                raise ReplayError(f"replay worker {message.index} failed: {message.error}")
            if on_progress is not None:
                on_progress(progress)
        for proc in procs:
            proc.join(timeout=10)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
            if proc.is_alive():  # its spill file must be closed before the folder goes
                proc.kill()
                proc.join(timeout=5)
        inbox.close()
        inbox.cancel_join_thread()
    return [done[i] for i in sorted(done)]
