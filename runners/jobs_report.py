"""How a job reports: FlowRun and CaseRun commands under ids derived from the job.

Every report a job makes has a command id of ``uuid5(job_id/<what>)``, so a job run a
second time (its runner was killed before committing it) sends the same ids and the
decider records each fact once. A node's pass and fail share one id: whichever the
first run reported stands, a re-run that ends differently is answered as a duplicate.
Each ``send`` returns once Kafka acknowledged the command (acks=all).

A job that runs a CaseRun keeps its :class:`CaseProgress` here, so that a failure outside
any step (the Site refused or unreachable, the job's timeout, a crash of the executor)
fails the part that was next, and the CaseRun ends ``failed`` with that sentence
instead of staying ``working``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from streams.domain import caserun as cr
from streams.domain import flowrun as f
from streams.domain.commands import Body, Command, CompleteProcess, FailProcess
from streams.jobs import Dispatch

REPORT_NAMESPACE = uuid.UUID("8e3c1f52-7d4a-4b0e-a6c9-2f51d0b7e3a4")
ACTOR = "runner"

Publish = Callable[[Command], Awaitable[None]]


def now_micros() -> int:
    return time.time_ns() // 1000


def report_id(job_id: str, what: str) -> str:
    return str(uuid.uuid5(REPORT_NAMESPACE, f"{job_id}/{what}"))


def caserun_id_for(job_id: str) -> str:
    """The CaseRun a ``case`` job creates: the same for every delivery of the job."""
    return report_id(job_id, "caserun")


@dataclass(frozen=True)
class NodeOutcome:
    """What an executor found: ``result`` is the summary kept on the node (artifact
    hashes included); ``exception`` is set when the node failed."""

    passed: bool
    result: dict[str, Any] = field(default_factory=dict)
    exception: str | None = None
    object_id: str | None = None


@dataclass
class CaseProgress:
    """The parts (step index, ``action``/``assertion``) of the CaseRun a job runs, in
    the order they run, and how many of them this job reported; ``ended`` once a part
    failed or the last one was reported."""

    caserun_id: str
    parts: tuple[tuple[int, str], ...]
    reported: int = 0
    ended: bool = False

    def next_part(self) -> tuple[int, str] | None:
        if self.ended or self.reported >= len(self.parts):
            return None
        return self.parts[self.reported]


@dataclass
class JobReporter:
    dispatch: Dispatch
    publish: Publish
    clock: Callable[[], int] = now_micros
    _logs: int = 0
    caserun: CaseProgress | None = None  # set by a job once it runs a CaseRun

    @property
    def job_id(self) -> str:
        return self.dispatch.job.job_id

    def command(
        self, aggregate: str, aggregate_id: str, what: str, body: Body, at: int | None = None
    ) -> Command:
        job = self.dispatch.job
        return Command(
            command_id=report_id(job.job_id, what),
            aggregate_type=aggregate,
            aggregate_id=aggregate_id,
            issued_at=at if at is not None else self.clock(),
            account=job.account,
            actor=ACTOR,
            correlation_id=job.run_id,
            causation_id=job.job_id,
            body=body,
        )

    async def send(
        self, aggregate: str, aggregate_id: str, what: str, body: Body, at: int | None = None
    ) -> None:
        await self.publish(self.command(aggregate, aggregate_id, what, body, at))

    async def log(self, message: str) -> None:
        """A FlowRun log line on the job's node (numbered, so a re-run repeats the ids)."""
        self._logs += 1
        job = self.dispatch.job
        body = f.LogFlowRun(message[:2000], job.node_id)
        await self.send(f.AGGREGATE, job.run_id, f"log/{self._logs}", body)

    async def outcome(self, outcome: NodeOutcome) -> None:
        """The node's pass or fail (one id for both, see the module docstring)."""
        job = self.dispatch.job
        result = json.dumps(outcome.result, sort_keys=True, separators=(",", ":"), default=str)
        body: Body
        if outcome.passed:
            body = f.NodePass(job.node_id, result, outcome.object_id)
        else:
            exception = (outcome.exception or "failed")[:2000]
            body = f.NodeFail(job.node_id, exception, result, outcome.object_id)
        await self.send(f.AGGREGATE, job.run_id, "node/result", body)

    async def process_outcome(self, outcome: NodeOutcome) -> None:
        """The outcome of a job for a Process (``generate``): ``process.complete`` with
        the object made, or ``process.fail``; one id for both, as a node's result."""
        job = self.dispatch.job
        body: Body
        if outcome.passed:
            result = json.dumps(outcome.result, sort_keys=True, separators=(",", ":"), default=str)
            body = CompleteProcess(outcome.object_id, result)
        else:
            body = FailProcess((outcome.exception or "failed")[:2000])
        await self.send("process", job.run_id, "process/result", body)

    async def case_part(
        self,
        caserun_id: str,
        index: int,
        part: str,
        started: int,
        completed: int,
        exception: str | None,
        screenshot: str | None = None,
    ) -> None:
        """Start and end of one part of a CaseRun step (pass, or fail with ``exception``)."""
        where = f"case/{index}/{part}"
        await self.send(
            cr.AGGREGATE, caserun_id, f"{where}/start", cr.CaseStepStart(index, part), started
        )
        end: Body = (
            cr.CaseStepPass(index, part)
            if exception is None
            else cr.CaseStepFail(index, part, exception[:2000], screenshot)
        )
        await self.send(cr.AGGREGATE, caserun_id, f"{where}/end", end, completed)
        progress = self.caserun
        if progress is not None and progress.caserun_id == caserun_id:
            if (index, part) in progress.parts:
                progress.reported = progress.parts.index((index, part)) + 1
            progress.ended = exception is not None or progress.reported >= len(progress.parts)

    async def fail_caserun(self, exception: str) -> None:
        """Fail the next part of the job's CaseRun with ``exception`` (start and end at
        now, no screenshot): the job failed outside a step. Nothing when the job runs no
        CaseRun or its CaseRun already ended."""
        progress = self.caserun
        upcoming = progress.next_part() if progress is not None else None
        if progress is None or upcoming is None:
            return
        now = self.clock()
        index, part = upcoming
        await self.case_part(progress.caserun_id, index, part, now, now, exception or "failed")
