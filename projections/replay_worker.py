"""A replay worker process: consume some partitions, fold them, send chunks of rows.

Started by :func:`projections.replay_parallel.replay_parallel` (``spawn``: the parent has
threads, so no fork). It reads its partitions with ``read_to_end`` up to the ends the
parent fixed, folds them with a :class:`~projections.replay_fold.PartitionFold` and
puts on the parent's queue, in this order: one :class:`Range`, :class:`Chunk
<projections.replay_fold.Chunk>` values, then :class:`Done` — or :class:`Failed` on
any error. The queue is bounded, so a worker waits when the writer falls behind.
"""

from __future__ import annotations

import asyncio
import gc
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.queues import Queue
from typing import Any

from projections.fold import Message
from projections.replay_fold import Chunk, PartitionFold
from projections.spill import StateSpill
from streams.consumer import read_to_end


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What worker ``index`` reads (``partitions`` up to ``until``) and how it folds."""

    index: int
    bootstrap: str
    topic: str
    partitions: tuple[int, ...]
    until: dict[int, int]
    spill_path: str
    max_states: int = 20_000
    chunk_events: int = 25_000
    gc_threshold: int | None = None


@dataclass(frozen=True, slots=True)
class Range:
    """The first offset and the end of each of the worker's partitions."""

    index: int
    origin: dict[int, int]
    ends: dict[int, int]


@dataclass(frozen=True, slots=True)
class Done:
    """The worker's counts, and its CPU seconds: in all, and folding (with row building)."""

    index: int
    events: int
    duplicates: int
    dead_letters: int
    evicted: int
    cpu: float
    fold_cpu: float


@dataclass(frozen=True, slots=True)
class Failed:
    index: int
    error: str


def run_worker(spec: WorkerSpec, out: Queue[Any]) -> None:
    """The process target; never raises (the parent learns of errors from the queue)."""
    if spec.gc_threshold:
        gc.set_threshold(spec.gc_threshold, 20, 20)
    try:
        asyncio.run(_run(spec, out))
    except BaseException as exc:  # reported, then the process ends
        detail = traceback.format_exception_only(type(exc), exc)[-1].strip()
        out.put(Failed(spec.index, detail))


async def _run(spec: WorkerSpec, out: Queue[Any]) -> None:
    with StateSpill(spec.spill_path) as spill:
        fold = PartitionFold(
            spec.topic, spill, max_states=spec.max_states, chunk_events=spec.chunk_events
        )

        fold_cpu = 0.0

        def step(messages: Sequence[Message]) -> None:
            nonlocal fold_cpu
            began = time.thread_time()
            chunk = fold.add(messages)
            fold_cpu += time.thread_time() - began
            if chunk is not None:
                out.put(chunk)  # blocks while the queue is full

        batches = read_to_end(
            spec.bootstrap,
            spec.topic,
            partitions=spec.partitions,
            until=spec.until,
            on_ends=lambda origin, ends: out.put(Range(spec.index, origin, ends)),
            client_id=f"runledger-replay-{spec.index}",
        )
        async for messages in batches:
            # In a thread: the consumer keeps fetching meanwhile.
            await asyncio.to_thread(step, messages)
        last: Chunk = fold.finish()
        out.put(last)
        counts = (fold.events, fold.duplicates, fold.dead_letters, fold.evicted)
        out.put(Done(spec.index, *counts, time.process_time(), fold_cpu))
