"""The job loop's flow control with a fake consumer: pause while a job runs, keep
polling, commit only after the job (and so its reports) finished, run again a job
whose reports failed, skip other kinds, stop a cancelled run's job."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiokafka.structs import TopicPartition

from runners.jobs_cancel import cancelled_run
from runners.worker import JobLoop
from streams.jobs import Dispatch, encode_dispatch
from streams.orchestration import Job

TP = TopicPartition("ledger.jobs", 0)
TP1 = TopicPartition("ledger.jobs", 1)


@dataclass
class Msg:
    offset: int
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass
class FakeConsumer:
    """Hands out scripted batches (never from a paused partition) and records calls."""

    batches: list[dict[TopicPartition, list[Msg]]] = field(default_factory=list)
    paused: set[TopicPartition] = field(default_factory=set)
    commits: list[dict[TopicPartition, int]] = field(default_factory=list)
    polls: int = 0

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Any]]:
        self.polls += 1
        await asyncio.sleep(0)
        if self.batches and not (set(self.batches[0]) & self.paused):
            return self.batches.pop(0)
        return {}

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused.update(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.paused.difference_update(partitions)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))


def job(n: int, kind: str = "scan", run: str = "run-1") -> Msg:
    j = Job(f"job-{n}", kind, run, "acme", "site-1", f"n{n}", 1, "{}", "{}", None)
    return Msg(n, encode_dispatch(Dispatch(j, "http://example.com/")), (("kind", kind.encode()),))


class Gate:
    """An executor whose jobs finish when the test says so."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.release: dict[str, asyncio.Event] = {}
        self.fail_once: set[str] = set()

    async def __call__(self, dispatch: Dispatch) -> None:
        job_id = dispatch.job.job_id
        self.started.append(job_id)
        event = self.release.setdefault(job_id, asyncio.Event())
        await event.wait()
        if job_id in self.fail_once:
            self.fail_once.discard(job_id)
            self.release[job_id] = asyncio.Event()
            raise RuntimeError("report not acknowledged")

    def finish(self, job_id: str) -> None:
        self.release.setdefault(job_id, asyncio.Event()).set()


async def turns(loop: JobLoop, n: int = 3) -> None:
    for _ in range(n):
        await loop.poll_once()
        await asyncio.sleep(0)


def test_partition_paused_while_the_job_runs_and_polling_goes_on() -> None:
    async def main() -> None:
        consumer = FakeConsumer([{TP: [job(0)]}])
        gate = Gate()
        loop = JobLoop(consumer, "scan", gate, poll_ms=0)
        await turns(loop)
        assert gate.started == ["job-0"]
        assert TP in consumer.paused
        assert consumer.commits == []  # not before the job (and its reports) finished
        polls = consumer.polls
        await turns(loop, 5)
        assert consumer.polls == polls + 5  # the loop never waits on the job
        gate.finish("job-0")
        await turns(loop)
        assert consumer.commits == [{TP: 1}]
        assert TP not in consumer.paused

    asyncio.run(main())


def test_jobs_of_one_partition_run_in_order_and_commit_one_by_one() -> None:
    async def main() -> None:
        consumer = FakeConsumer([{TP: [job(0), job(1)], TP1: [job(5, run="run-2")]}])
        gate = Gate()
        loop = JobLoop(consumer, "scan", gate, poll_ms=0)
        await turns(loop)
        assert sorted(gate.started) == ["job-0", "job-5"]  # one per partition at a time
        gate.finish("job-1")  # finishing early changes nothing: it has not started
        gate.finish("job-0")
        await turns(loop)
        assert {TP: 1} in consumer.commits
        assert "job-1" in gate.started
        await turns(loop)
        assert {TP: 2} in consumer.commits
        assert not any(TP1 in c for c in consumer.commits)  # job-5 still running
        assert TP1 in consumer.paused

    asyncio.run(main())


def test_a_job_whose_reports_failed_runs_again_and_is_committed_after() -> None:
    async def main() -> None:
        consumer = FakeConsumer([{TP: [job(0)]}])
        gate = Gate()
        gate.fail_once.add("job-0")
        loop = JobLoop(consumer, "scan", gate, poll_ms=0, retry_delay=0)
        await turns(loop)
        gate.finish("job-0")
        await turns(loop)
        assert consumer.commits == []
        assert gate.started == ["job-0", "job-0"]
        assert loop.stats.retried == 1
        gate.finish("job-0")
        await turns(loop)
        assert consumer.commits == [{TP: 1}]

    asyncio.run(main())


def test_other_kinds_and_garbage_are_committed_without_running() -> None:
    async def main() -> None:
        garbage = Msg(1, b"not json")
        consumer = FakeConsumer([{TP: [job(0, kind="wait"), garbage, job(2)]}])
        gate = Gate()
        loop = JobLoop(consumer, "scan", gate, poll_ms=0)
        await turns(loop)
        assert gate.started == ["job-2"]
        assert consumer.commits == [{TP: 2}]  # past the two that are not ours
        assert (loop.stats.skipped, loop.stats.invalid) == (1, 1)

    asyncio.run(main())


def test_cancel_stops_the_running_job_and_commits_it() -> None:
    async def main() -> None:
        consumer = FakeConsumer([{TP: [job(0), job(1)]}])
        gate = Gate()
        loop = JobLoop(consumer, "scan", gate, poll_ms=0, clock=lambda: 100.5)
        await turns(loop)
        assert loop.cancel_run("run-1", 100.0) == 1
        await turns(loop)
        assert gate.started == ["job-0"]  # the queued job of the run never starts
        assert consumer.commits[-1] == {TP: 2}
        assert loop.stats.cancelled == 1
        assert loop.stats.cancel_latencies == [0.5]

    asyncio.run(main())


def test_a_process_cancel_event_stops_its_generate_job() -> None:
    # The CancelWatch's filter names the Process of a cancelled case.generate, and the
    # loop of the generate kind stops the job whose run_id is that Process.
    key = b"process:proc-1"
    for kind in (b"process.cancelled", b"process.deleted"):
        assert cancelled_run(key, [("type", kind)]) == "proc-1"
    assert cancelled_run(key, [("type", b"process.progress")]) is None
    assert cancelled_run(b"flowrun:run-1", [("type", b"flowrun.cancelled")]) == "run-1"

    async def main() -> None:
        consumer = FakeConsumer([{TP: [job(0, kind="generate", run="proc-1")]}])
        gate = Gate()
        loop = JobLoop(consumer, "generate", gate, poll_ms=0, clock=lambda: 100.25)
        await turns(loop)
        assert gate.started == ["job-0"]
        assert loop.cancel_run("proc-1", 100.0) == 1
        await turns(loop)
        assert consumer.commits[-1] == {TP: 1}
        assert loop.stats.cancel_latencies == [0.25]

    asyncio.run(main())


def test_revoked_partition_cancels_its_job_without_a_commit() -> None:
    async def main() -> None:
        consumer = FakeConsumer([{TP: [job(0)]}])
        gate = Gate()
        loop = JobLoop(consumer, "scan", gate, poll_ms=0)
        await turns(loop)
        await loop.revoke([TP])
        await turns(loop)
        assert consumer.commits == []
        assert loop.running() == 0

    asyncio.run(main())
