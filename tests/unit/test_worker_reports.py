"""Running one job with fakes: deterministic report ids, the node's timeout, errors that
fail the node versus errors that make the worker run the job again."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from runners.errors import TargetRefused
from runners.jobs_case import case_parts
from runners.jobs_context import JobContext, NodeConfig
from runners.jobs_executor import perform
from runners.jobs_report import CaseProgress, JobReporter, NodeOutcome
from streams.domain import caserun as cr
from streams.domain import flowrun as f
from streams.domain.commands import Command, FailProcess
from streams.jobs import Dispatch, decode_dispatch, encode_dispatch
from streams.orchestration import Job, generate_job
from streams.publisher import PublishError

JOB = Job("job-1", "wait", "run-1", "acme", "site-1", "n1", 1, '{"timeout": 0.2}', "{}", 95.0)
CTX: Any = JobContext(browser=None, guard=None, store=None, baselines=Path("."))  # type: ignore[arg-type]


def run(executor: Any, publish: Any) -> NodeOutcome:
    return asyncio.run(
        perform(CTX, Dispatch(JOB), publish, executors={"wait": executor}, clock=lambda: 7)
    )


def test_the_dispatch_round_trips() -> None:
    dispatch = Dispatch(JOB, "https://example.com/", "case-1", '[{"action":{"type":"click"}}]')
    assert decode_dispatch(encode_dispatch(dispatch)) == dispatch


def test_reports_carry_the_same_ids_on_a_second_run() -> None:
    sent: list[Command] = []

    async def publish(cmd: Command) -> None:
        sent.append(cmd)

    async def executor(ctx: Any, dispatch: Dispatch, report: JobReporter) -> NodeOutcome:
        await report.log("hello")
        return NodeOutcome(True, {"x": 1})

    run(executor, publish)
    run(executor, publish)
    first, second = sent[:2], sent[2:]
    assert [c.command_id for c in first] == [c.command_id for c in second]
    assert isinstance(first[-1].body, f.NodePass)
    assert first[-1].body.result_json == '{"x":1}'


def test_pass_and_fail_of_a_node_share_one_id() -> None:
    sent: list[Command] = []

    async def publish(cmd: Command) -> None:
        sent.append(cmd)

    async def ok(ctx: Any, dispatch: Dispatch, report: JobReporter) -> NodeOutcome:
        return NodeOutcome(True)

    async def refused(ctx: Any, dispatch: Dispatch, report: JobReporter) -> NodeOutcome:
        raise TargetRefused("http://127.0.0.1/", "127.0.0.1", "loopback")

    run(ok, publish)
    outcome = run(refused, publish)
    assert not outcome.passed and "loopback" in (outcome.exception or "")
    assert isinstance(sent[1].body, f.NodeFail)
    assert sent[0].command_id == sent[1].command_id


def test_the_node_timeout_fails_the_node() -> None:
    sent: list[Command] = []

    async def publish(cmd: Command) -> None:
        sent.append(cmd)

    async def slow(ctx: Any, dispatch: Dispatch, report: JobReporter) -> NodeOutcome:
        await asyncio.sleep(5)
        return NodeOutcome(True)

    outcome = run(slow, publish)
    assert not outcome.passed and "timed out" in (outcome.exception or "")
    assert isinstance(sent[-1].body, f.NodeFail)


def test_a_report_kafka_did_not_take_propagates() -> None:
    async def publish(cmd: Command) -> None:
        raise PublishError("no broker")

    async def ok(ctx: Any, dispatch: Dispatch, report: JobReporter) -> NodeOutcome:
        return NodeOutcome(True)

    with pytest.raises(PublishError):
        run(ok, publish)


def test_node_configs() -> None:
    config = NodeConfig.from_json('{"timeout": 300, "max_wait_time": 30, "min_wait_time": 3}')
    assert (config.timeout, config.max_wait_time, config.min_wait_time) == (300, 30, 3)
    assert NodeConfig.from_json('{"timeout": "x"}').timeout == 300
    assert NodeConfig.from_json('{"min_wait_time": 99, "max_wait_time": 5}').min_wait_time == 5


# -- a standalone CaseRun's job (POST /caserun) ---------------------------------------

STEPS = (
    '[{"action":{"type":"click","element":{"selector":"#a"}},'
    '"assertion":{"type":"exists","element":{"selector":"#b"}}},'
    '{"action":{"type":"wait","value":"10"},"assertion":null}]'
)
CASE_JOB = Job("job-c", "case", "cr-1", "acme", "site-1", "", 1, '{"timeout": 0.2}', "{}")


def standalone(site_url: str = "") -> Dispatch:
    return Dispatch(CASE_JOB, site_url, "case-1", STEPS, caserun_id="cr-1")


def perform_case(dispatch: Dispatch, executor: Any | None = None) -> list[Command]:
    sent: list[Command] = []

    async def publish(cmd: Command) -> None:
        sent.append(cmd)

    executors = {"case": executor} if executor is not None else None
    asyncio.run(perform(CTX, dispatch, publish, executors=executors, clock=lambda: 7))
    return sent


def test_a_standalone_caserun_job_round_trips_and_old_jobs_still_read() -> None:
    assert decode_dispatch(encode_dispatch(standalone("https://x.io/"))) == standalone(
        "https://x.io/"
    )
    old = json.loads(encode_dispatch(Dispatch(JOB, "https://x.io/")))
    del old["caserun_id"]  # a job written before the field existed
    assert decode_dispatch(json.dumps(old).encode()) == Dispatch(JOB, "https://x.io/")


def test_a_standalone_caserun_without_a_site_fails_its_first_part_and_nothing_else() -> None:
    sent = perform_case(standalone(site_url=""))
    assert [(c.aggregate_type, c.aggregate_id) for c in sent] == [("caserun", "cr-1")] * 2
    start, fail = (c.body for c in sent)
    assert start == cr.CaseStepStart(0, "action")
    assert isinstance(fail, cr.CaseStepFail) and (fail.index, fail.part) == (0, "action")
    assert "site site-1 has no URL" in fail.exception
    assert sent == perform_case(standalone(site_url="")), "a re-run reports the same ids"


def test_a_timeout_mid_caserun_fails_the_part_that_was_next() -> None:
    async def slow(ctx: Any, dispatch: Dispatch, report: JobReporter) -> NodeOutcome:
        report.caserun = CaseProgress("cr-1", case_parts(json.loads(STEPS)))
        await report.case_part("cr-1", 0, "action", 1, 2, None)
        await asyncio.sleep(5)
        return NodeOutcome(True)

    sent = perform_case(standalone("https://x.io/"), slow)
    bodies = [c.body for c in sent]
    assert bodies[:2] == [cr.CaseStepStart(0, "action"), cr.CaseStepPass(0, "action")]
    assert bodies[2] == cr.CaseStepStart(0, "assertion")
    assert isinstance(bodies[3], cr.CaseStepFail) and bodies[3].part == "assertion"
    assert "timed out" in bodies[3].exception
    assert len(bodies) == 4, "no FlowRun report: the job has no node"


def test_a_case_node_that_failed_at_a_step_reports_no_second_failure() -> None:
    async def failing(ctx: Any, dispatch: Dispatch, report: JobReporter) -> NodeOutcome:
        report.caserun = CaseProgress("cr-1", case_parts(json.loads(STEPS)))
        await report.case_part("cr-1", 0, "action", 1, 2, "no #a")
        return NodeOutcome(False, {}, "step 0 failed: no #a", "cr-1")

    node_job = Dispatch(Job("job-n", "case", "run-1", "acme", "site-1", "n1", 1, "{}", "{}"))
    sent = perform_case(node_job, failing)
    assert [type(c.body) for c in sent] == [cr.CaseStepStart, cr.CaseStepFail, f.NodeFail]


def test_an_assertion_only_step_has_no_action_part_to_fail() -> None:
    steps = [
        {"action": {"type": "navigate", "value": "/"}, "assertion": None},
        {"action": None, "assertion": {"type": "exists", "selector": "#a"}},
        {"action": {"type": ""}, "assertion": {"type": "visible", "selector": "#b"}},
    ]
    assert case_parts(steps) == ((0, "action"), (1, "assertion"), (2, "assertion"))

    async def failing(ctx: Any, dispatch: Dispatch, report: JobReporter) -> NodeOutcome:
        report.caserun = CaseProgress("cr-1", case_parts(steps))
        await report.case_part("cr-1", 0, "action", 1, 2, None)
        raise TimeoutError

    sent = perform_case(standalone("https://x.io/"), failing)
    fail = sent[-1].body
    # The part that was next is step 1's assertion, which the CaseRun has.
    assert isinstance(fail, cr.CaseStepFail) and (fail.index, fail.part) == (1, "assertion")


def test_a_generate_process_without_a_site_fails_saying_so() -> None:
    # POST /process {"type": "case.generate"} without "site": the job has no site id,
    # and "site  has no URL" would name none.
    sent = perform_case(Dispatch(generate_job("p-1", "acme", "", "{}"), ""))
    assert [(c.aggregate_type, c.aggregate_id) for c in sent] == [("process", "p-1")]
    fail = sent[0].body
    assert isinstance(fail, FailProcess)
    assert "needs a Site to explore and names none" in fail.exception
    assert "POST /case/generate" in fail.exception
