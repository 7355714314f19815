"""The ``case`` job: run a CaseRun's steps in a page, reporting every part (action,
assertion) as CaseRun commands.

Two sources, one way of running: a FlowRun's ``case`` node creates a CaseRun for its
Case (its id derives from the job id) and runs it; a standalone CaseRun
(``POST /caserun``, dispatched by the orchestrator with ``caserun_id`` set) exists
already and is run with the steps copied into it. Every report's command id derives
from the job id: a job run again after a crash creates no second CaseRun and records
each part once. Part times are the browser's, carried as the commands' ``issued_at``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from runners.case import (
    Action,
    ActionType,
    Assertion,
    AssertionType,
    CaseLimits,
    Element,
    MatchMode,
    PartResult,
    Status,
    Step,
    StepResult,
    run_case,
)
from runners.errors import TargetInvalid
from runners.jobs_context import JobContext, NodeConfig
from runners.jobs_report import CaseProgress, JobReporter, NodeOutcome, caserun_id_for
from streams.domain import caserun as cr
from streams.jobs import Dispatch


def _element(raw: Any) -> Element:
    if not isinstance(raw, dict):
        return Element()
    return Element(str(raw.get("selector") or ""), str(raw.get("xpath") or ""))


def _enum(cls: Any, value: Any, default: Any) -> Any:
    try:
        return cls(value or "")
    except ValueError:
        return default


def to_step(raw: dict[str, Any]) -> Step:
    """A runner Step from a Case step ``{"action": {...}, "assertion": {...}}``."""
    action = raw.get("action") or {}
    assertion = raw.get("assertion") or {}
    return Step(
        Action(
            type=_enum(ActionType, action.get("type"), ActionType.NONE),
            element=_element(action.get("element")),
            path=str(action.get("path") or ""),
            value=str(action.get("value") if action.get("value") is not None else ""),
            key=str(action.get("key") or ""),
        ),
        Assertion(
            type=_enum(AssertionType, assertion.get("type"), AssertionType.NONE),
            element=_element(assertion.get("element")),
            value=str(assertion.get("value") if assertion.get("value") is not None else ""),
            match=_enum(MatchMode, assertion.get("operator"), MatchMode.EQUALS),
        ),
    )


def _micros(moment: datetime | None, fallback: int) -> int:
    return int(moment.timestamp() * 1_000_000) if moment is not None else fallback


async def run_case_job(ctx: JobContext, dispatch: Dispatch, report: JobReporter) -> NodeOutcome:
    """Run the job's CaseRun: a FlowRun node's job creates it first (under an id derived
    from the job), a standalone CaseRun's job (``dispatch.caserun_id``) runs the one
    ``POST /caserun`` made. Both then run the steps with :func:`run_caserun`.

    Raises TargetInvalid when there are no steps (the node's Case is gone) or no Site URL,
    TargetRefused for a private Site without the setting; ``perform`` then fails the
    CaseRun's next part (``JobReporter.fail_caserun``) and the node, if any.
    """
    job = dispatch.job
    if dispatch.case_steps_json is None:
        raise TargetInvalid(f"case {dispatch.case_id or '(none)'} of node {job.node_id} not found")
    raw_steps = json.loads(dispatch.case_steps_json)
    caserun_id = dispatch.caserun_id
    if caserun_id is None:
        if not dispatch.site_url:
            raise TargetInvalid(f"site {job.site_id} has no URL (deleted or unknown)")
        caserun_id = caserun_id_for(job.job_id)
        create = cr.CreateCaseRun(
            site_id=job.site_id,
            case_id=dispatch.case_id or "",
            steps_json=dispatch.case_steps_json,
            title=f"flowrun {job.run_id} node {job.node_id}",
            flowrun_id=job.run_id,
            node_id=job.node_id,
            site_url=dispatch.site_url,
        )
        await report.send(cr.AGGREGATE, caserun_id, "caserun/create", create)
        await report.log(f"case {dispatch.case_id} running as caserun {caserun_id}")
    return await run_caserun(ctx, dispatch, report, caserun_id, raw_steps)


async def run_caserun(
    ctx: JobContext, dispatch: Dispatch, report: JobReporter, caserun_id: str, raw_steps: Any
) -> NodeOutcome:
    """Run ``raw_steps`` (the steps copied into CaseRun ``caserun_id``) on the Site and
    report each part as it ends: ``caserun.step_start`` then ``step_pass``/``step_fail``
    (with the failure screenshot), the browser's times as ``issued_at``, under ids
    derived from the job. The decider completes the CaseRun from those reports; the
    outcome returned sums it up for a node (``object_id`` is the CaseRun).

    Registers the run's parts with ``report`` first, so that an error raised from here
    (TargetInvalid without a Site URL, TargetRefused, PageFailed opening the Site, the
    job's timeout) lets ``perform`` fail the part that was next.
    """
    job = dispatch.job
    steps = tuple(to_step(s) for s in raw_steps if isinstance(s, dict))
    report.caserun = CaseProgress(caserun_id, case_parts(raw_steps))
    if not dispatch.site_url:
        raise TargetInvalid(f"site {job.site_id} has no URL (deleted or unknown)")
    config = NodeConfig.from_json(job.configs_json)

    async def on_step(step: StepResult) -> None:
        now = report.clock()
        parts: list[tuple[str, PartResult]] = [(cr.ACTION, step.action)]
        if to_has_assertion(raw_steps, step.index):
            parts.append((cr.ASSERTION, step.assertion))
        for name, part in parts:
            if part.status is Status.SKIPPED:
                continue
            failed = part.status is Status.FAILED
            await report.case_part(
                caserun_id,
                step.index,
                name,
                _micros(part.started_at, now),
                _micros(part.completed_at, now),
                (part.exception or "failed") if failed else None,
                step.screenshot_hash if failed else None,
            )

    limits = CaseLimits(step_timeout=config.max_wait_time, max_wait=config.max_wait_time)
    result = await run_case(
        ctx.browser, ctx.guard, ctx.store, dispatch.site_url, steps, limits=limits, on_step=on_step
    )
    failed = result.failed_step
    summary: dict[str, Any] = {
        "caserun_id": caserun_id,
        "case_id": dispatch.case_id,
        "steps": len(result.steps),
        "passed_steps": sum(1 for s in result.steps if s.status is Status.PASSED),
    }
    if failed is None:
        return NodeOutcome(True, summary, object_id=caserun_id)
    summary["failed_step"] = failed.index
    summary["screenshot"] = failed.screenshot_hash
    reason = failed.action.exception or failed.assertion.exception or "failed"
    return NodeOutcome(False, summary, f"step {failed.index} failed: {reason}", caserun_id)


def case_parts(raw_steps: Any) -> tuple[tuple[int, str], ...]:
    """The CaseRun's parts in the order they run: each step's action when it has one,
    then its assertion when it has one (as ``streams.domain.caserun.read_steps``)."""
    if not isinstance(raw_steps, list):
        return ()
    parts: list[tuple[int, str]] = []
    for index in range(len(raw_steps)):
        if to_has_action(raw_steps, index):
            parts.append((index, cr.ACTION))
        if to_has_assertion(raw_steps, index):
            parts.append((index, cr.ASSERTION))
    return tuple(parts)


def to_has_action(raw_steps: Any, index: int) -> bool:
    """Whether the CaseRun has an action part for step ``index`` (as ``read_steps``: an
    object whose type is not blank; a step may have an assertion only)."""
    try:
        action = raw_steps[index].get("action")
    except (IndexError, AttributeError, TypeError):
        return False
    kind = action.get("type") if isinstance(action, dict) else None
    return isinstance(kind, str) and bool(kind.strip())


def to_has_assertion(raw_steps: Any, index: int) -> bool:
    """Whether the CaseRun has an assertion part for step ``index`` (as ``read_steps``)."""
    try:
        assertion = raw_steps[index].get("assertion")
    except (IndexError, AttributeError, TypeError):
        return False
    return isinstance(assertion, dict) and bool(assertion.get("type"))
