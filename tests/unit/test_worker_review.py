"""Review findings on the job loop: a commit Kafka refused (a rebalance, a broker
hiccup) must not end the loop, and a cancel of one node's CaseRun must not skip the
other jobs of its FlowRun."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka.errors import CommitFailedError
from aiokafka.structs import TopicPartition

from runners.jobs_context import NodeConfig
from runners.jobs_report import caserun_id_for
from runners.worker import JobLoop
from tests.unit.test_worker_loop import TP, FakeConsumer, Gate, job, turns


@dataclass
class RefusingConsumer(FakeConsumer):
    """Refuses the first ``refusals`` commits as Kafka does during a rebalance."""

    refusals: int = 1

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.refusals > 0:
            self.refusals -= 1
            raise CommitFailedError("the group rebalanced")
        await super().commit(offsets)


def test_a_refused_commit_does_not_end_the_loop_and_a_later_commit_covers_it() -> None:
    async def main() -> None:
        consumer = RefusingConsumer([{TP: [job(0), job(1)]}])
        gate = Gate()
        loop = JobLoop(consumer, "scan", gate, poll_ms=0)
        await turns(loop)
        gate.finish("job-0")
        await turns(loop)  # the commit of job-0 is refused: the loop goes on
        assert consumer.commits == []
        assert gate.started == ["job-0", "job-1"]
        gate.finish("job-1")
        await turns(loop)
        assert consumer.commits == [{TP: 2}]  # covers job-0 as well

    asyncio.run(main())


def test_cancelling_a_nodes_caserun_leaves_the_other_jobs_of_its_flowrun() -> None:
    # Two parallel case nodes of run-1 on one partition: cancelling the CaseRun that
    # job-0 created stops job-0 only; job-1 (another node) still runs.
    async def main() -> None:
        consumer = FakeConsumer([{TP: [job(0, kind="case"), job(1, kind="case")]}])
        gate = Gate()
        loop = JobLoop(consumer, "case", gate, poll_ms=0, clock=lambda: 100.0)
        await turns(loop)
        assert loop.cancel_run(caserun_id_for("job-0"), 100.0) == 1
        await turns(loop)
        assert gate.started == ["job-0", "job-1"]
        assert consumer.commits == [{TP: 1}]

    asyncio.run(main())


def test_a_cancelled_caserun_job_waiting_to_run_again_is_skipped() -> None:
    # job-0's reports failed; while it waits to run again, its CaseRun is cancelled:
    # it must not run again (and is committed), its sibling job-1 runs.
    async def main() -> None:
        consumer = FakeConsumer([{TP: [job(0, kind="case"), job(1, kind="case")]}])
        gate = Gate()
        gate.fail_once.add("job-0")
        loop = JobLoop(consumer, "case", gate, poll_ms=0, retry_delay=60)
        await turns(loop)
        gate.finish("job-0")
        await turns(loop)
        assert loop.stats.retried == 1
        assert loop.cancel_run(caserun_id_for("job-0"), 100.0) == 0  # nothing running
        await turns(loop)
        assert gate.started == ["job-0", "job-1"]
        assert consumer.commits == [{TP: 1}]

    asyncio.run(main())


def test_a_non_finite_config_falls_back_to_the_default() -> None:
    # "Unusable values fall back to the defaults": a NaN timeout fired at once and
    # failed the node before it ran ("timed out after nans").
    config = NodeConfig.from_json('{"timeout": NaN, "max_wait_time": NaN, "min_wait_time": NaN}')
    assert config == NodeConfig()
    config = NodeConfig.from_json('{"timeout": 20, "min_wait_time": NaN}')
    assert (config.timeout, config.min_wait_time) == (20.0, 0.0)
