"""The job loop of a runner: consume ``ledger.jobs`` in a consumer group, run each job as
a task, commit its offset only once the job's reports are durable.

One :class:`JobLoop` serves one job kind, in that kind's consumer group
(``<prefix>runledger-runner-<kind>``): every runner that handles the kind shares its
jobs, and a runner that does not handle a kind is simply not in its group, so a job is
never taken by a runner that would have to skip it. A loop reads every job and skips
(commits past) the jobs of other kinds without running them.

The poll loop never waits for a job (arroyo-style): a message starts a task and its
partition is paused while that task (or a queued message of the same partition) is
pending; the loop keeps polling, so heartbeats and the poll interval are kept however
long a browser runs. When the task ends, its offset is committed (the task returns only
after Kafka acknowledged every report) and the partition resumes. A job whose reports
could not be published is run again after a pause; a runner killed mid-job commits
nothing, so after the rebalance another runner runs the job again, under the same
report ids (``runners.jobs_report``).

Cancel: :meth:`JobLoop.cancel_run` cancels the tasks of a run (the runner's
``CancelWatch`` calls it when a run's (a standalone CaseRun's too: its job's ``run_id``
is the CaseRun), or a ``case.generate`` Process's, ``cancelled``
or ``deleted`` event appears); a cancelled job reports nothing more (the cancel already
stopped its node or its Process) and is committed.

The values the loop keeps (its counters, each partition's pending jobs) are in
:mod:`runners.worker_state`; this module is the loop that moves them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from runners.jobs_report import caserun_id_for
from runners.worker_state import LoopStats, PartitionQueue, PendingJob
from streams.jobs import Dispatch, InvalidJob, decode_dispatch, kind_of
from streams.topics import describe_positions

log = logging.getLogger(__name__)

# Runs a job to its end, every report acknowledged; raises if a report could not be
# published (the job is then run again).
Execute = Callable[[Dispatch], Coroutine[Any, Any, None]]

RECENT_CANCELS = 10_000


class JobConsumer(Protocol):
    """The part of aiokafka's consumer the loop uses (a fake in unit tests)."""

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Any]]: ...

    def pause(self, *partitions: TopicPartition) -> None: ...

    def resume(self, *partitions: TopicPartition) -> None: ...

    async def commit(self, offsets: dict[TopicPartition, int]) -> None: ...


class JobLoop:
    """Consume jobs of ``kind`` with ``consumer`` (subscribed to ``ledger.jobs`` in the
    kind's group, auto-commit off) and run them with ``execute``."""

    def __init__(
        self,
        consumer: JobConsumer,
        kind: str,
        execute: Execute,
        *,
        retry_delay: float = 2.0,
        poll_ms: int = 200,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.consumer = consumer
        self.kind = kind
        self.execute = execute
        self.retry_delay = retry_delay
        self.poll_ms = poll_ms
        self.clock = clock
        self.stats = LoopStats()
        self._parts: dict[TopicPartition, PartitionQueue] = {}
        self._cancelled_runs: dict[str, float] = {}
        self._stopping = asyncio.Event()

    # -- the loop ----------------------------------------------------------------------

    async def run(self) -> None:
        """Poll, start and finish jobs until :meth:`stop`; running jobs are then
        cancelled without a commit (another runner will run them)."""
        try:
            while not self._stopping.is_set():
                await self.poll_once()
        finally:
            await self.revoke(list(self._parts))

    def stop(self) -> None:
        self._stopping.set()

    async def poll_once(self) -> None:
        """One turn: fetch what is there (never waiting on a job), take it in, start
        what may start, commit what finished."""
        batch = await self.consumer.getmany(timeout_ms=self.poll_ms, max_records=100)
        for tp, messages in batch.items():
            part = self._parts.setdefault(tp, PartitionQueue())
            for msg in messages:
                part.queue.append(self._pending(tp, msg))
        await self._advance()

    def _pending(self, tp: TopicPartition, msg: Any) -> PendingJob:
        header_kind = kind_of(getattr(msg, "headers", None))
        if header_kind is not None and header_kind != self.kind:
            self.stats.skipped += 1
            return PendingJob(msg.offset, None)
        try:
            dispatch = decode_dispatch(msg.value)
        except InvalidJob as exc:
            self.stats.invalid += 1
            log.warning(
                "job at %s partition %d offset %d skipped: %s",
                tp.topic,
                tp.partition,
                msg.offset,
                exc,
            )
            return PendingJob(msg.offset, None)
        if dispatch.job.kind != self.kind:
            self.stats.skipped += 1
            return PendingJob(msg.offset, None)
        return PendingJob(msg.offset, dispatch)

    async def _advance(self) -> None:
        commits: dict[TopicPartition, int] = {}
        now = time.monotonic()
        for tp, part in self._parts.items():
            while part.queue:
                head = part.queue[0]
                if head.task is not None and not head.task.done():
                    break  # still running
                if head.task is not None and not self._finished(head):
                    head.task = None  # its reports failed: run it again after a pause
                    part.retry_at = now + self.retry_delay
                    self.stats.retried += 1
                if head.task is None and head.dispatch is not None and not self._dead(head):
                    if now < part.retry_at:
                        break
                    head.attempts += 1
                    head.task = asyncio.create_task(
                        self.execute(head.dispatch), name=f"job-{head.dispatch.job.job_id}"
                    )
                    self.stats.started += 1
                    break
                part.queue.popleft()  # done, cancelled, or never ours
                part.retry_at = 0.0  # the pause was that job's, not the next one's
                commits[tp] = head.offset + 1
            self._flow(tp, part)
        if commits:
            try:
                await self.consumer.commit(commits)
            except KafkaError as exc:
                # A rebalance (CommitFailedError, IllegalStateError) or a broker hiccup:
                # the jobs are done but their offsets not stored. Ending the loop here
                # would stop the runner; the next commit of the partition covers them,
                # or its next owner runs them again (same report ids).
                log.warning(
                    "commit of %s jobs up to %s refused (%s); left to a later commit",
                    self.kind,
                    describe_positions(commits),
                    exc,
                )
                return
            self.stats.commits += 1

    def _dead(self, pending: PendingJob) -> bool:
        """A job of a cancelled run, or whose own CaseRun was cancelled (a case node's:
        the other nodes of its FlowRun go on), not running now: skip it."""
        assert pending.dispatch is not None
        job = pending.dispatch.job
        cancelled = self._cancelled_runs
        return job.run_id in cancelled or caserun_id_for(job.job_id) in cancelled

    def _finished(self, head: PendingJob) -> bool:
        """Whether the head's finished task counts as done (its offset may be committed)."""
        task = head.task
        assert task is not None
        if task.cancelled():
            if head.cancelled_at is not None:
                latency = max(0.0, self.clock() - head.cancelled_at)
                self.stats.cancelled += 1
                self.stats.cancel_latencies.append(latency)
                what = _named(head.dispatch)
                log.info("%s: stopped %.3f s after its run was cancelled", what, latency)
                return True
            return False  # cancelled by a revoke or a stop: not done
        error = task.exception()
        if error is not None:
            log.warning("%s: failed to report (%s); running it again", _named(head.dispatch), error)
            return False
        self.stats.finished += 1
        return True

    def _flow(self, tp: TopicPartition, part: PartitionQueue) -> None:
        # Paused while anything is pending: the consumer's position moves on, the
        # messages wait in our queue, and polling goes on regardless.
        busy = bool(part.queue)
        if busy and not part.paused:
            self.consumer.pause(tp)
            part.paused = True
        elif not busy and part.paused:
            self.consumer.resume(tp)
            part.paused = False

    # -- cancel and rebalance ----------------------------------------------------------

    def cancel_run(self, run_id: str, event_time: float | None = None) -> int:
        """Cancel the running and queued jobs of ``run_id`` (a FlowRun, the CaseRun a job
        created, a standalone CaseRun, or the Process of a ``generate`` job); returns how
        many tasks were cancelled. ``event_time`` (epoch seconds of the cancel event) is
        kept to measure the cancel latency."""
        at = event_time if event_time is not None else self.clock()
        self._cancelled_runs[run_id] = at
        while len(self._cancelled_runs) > RECENT_CANCELS:
            del self._cancelled_runs[next(iter(self._cancelled_runs))]
        hit = 0
        for part in self._parts.values():
            for pending in part.queue:
                job = pending.dispatch.job if pending.dispatch else None
                if job is None or run_id not in (job.run_id, caserun_id_for(job.job_id)):
                    continue
                if pending.task is not None and not pending.task.done():
                    pending.cancelled_at = at
                    pending.task.cancel()
                    hit += 1
        return hit

    async def revoke(self, tps: list[TopicPartition]) -> None:
        """Forget ``tps`` (rebalanced away, or stopping): their tasks are cancelled and
        their offsets left uncommitted for the next owner."""
        tasks = []
        for tp in tps:
            part = self._parts.pop(tp, None)
            if part is None:
                continue
            for pending in part.queue:
                if pending.task is not None and not pending.task.done():
                    pending.task.cancel()
                    tasks.append(pending.task)
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def running(self) -> int:
        return sum(
            1
            for part in self._parts.values()
            for p in part.queue
            if p.task is not None and not p.task.done()
        )


def _named(dispatch: Dispatch | None) -> str:
    """A job as the runner's own lines name it: ``scan job J (run R node N attempt A)``."""
    if dispatch is None:  # only a job of ours ever runs; kept total for the log line
        return "job ?"
    job = dispatch.job
    return (
        f"{job.kind} job {job.job_id} (run {job.run_id} node {job.node_id} attempt {job.attempt})"
    )
