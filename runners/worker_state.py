"""What a runner's job loop keeps: its counters, and each partition's pending jobs.

A message of ``ledger.jobs`` becomes a :class:`PendingJob` (queued, then running as a
task) in its partition's :class:`PartitionQueue` until its offset may be committed.
Plain values, apart from :mod:`runners.worker`, whose :class:`~runners.worker.JobLoop`
moves them through that life: polling, starting, retrying, cancelling, committing.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from streams.jobs import Dispatch


@dataclass
class LoopStats:
    """What a loop has done so far, counted (the tests read these)."""

    started: int = 0
    finished: int = 0
    skipped: int = 0
    invalid: int = 0
    retried: int = 0
    cancelled: int = 0
    commits: int = 0
    # seconds from a cancel's event (its Kafka timestamp) to the job's task ending
    cancel_latencies: list[float] = field(default_factory=list)


@dataclass
class PendingJob:
    """A message of a partition: queued, or running as ``task``."""

    offset: int
    dispatch: Dispatch | None  # None: not ours (other kind, undecodable): just commit
    task: asyncio.Task[None] | None = None
    cancelled_at: float | None = None  # wall-clock time of the cancel event
    attempts: int = 0


@dataclass
class PartitionQueue:
    """A partition's messages in offset order, whether it is paused, and until when a
    job whose reports failed waits before it runs again."""

    queue: deque[PendingJob] = field(default_factory=deque)
    paused: bool = False
    retry_at: float = 0.0
