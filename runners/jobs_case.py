"""The ``case`` job: create a CaseRun for the node's Case and run its steps in a page,
reporting every part (action, assertion) as CaseRun commands.

The CaseRun id derives from the job id, as every report's command id does: a job run
again after a crash creates no second CaseRun and records each part once. Part times
are the browser's, carried as the commands' ``issued_at``.
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
from runners.jobs_report import JobReporter, NodeOutcome, caserun_id_for
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
    job = dispatch.job
    if dispatch.case_steps_json is None:
        raise TargetInvalid(f"case {dispatch.case_id or '(none)'} of node {job.node_id} not found")
    if not dispatch.site_url:
        raise TargetInvalid(f"site {job.site_id} has no URL (deleted or unknown)")
    raw_steps = json.loads(dispatch.case_steps_json)
    steps = tuple(to_step(s) for s in raw_steps if isinstance(s, dict))
    config = NodeConfig.from_json(job.configs_json)
    caserun_id = caserun_id_for(job.job_id)
    create = cr.CreateCaseRun(
        site_id=job.site_id,
        case_id=dispatch.case_id or "",
        steps_json=dispatch.case_steps_json,
        title=f"flowrun {job.run_id} node {job.node_id}",
        flowrun_id=job.run_id,
        node_id=job.node_id,
    )
    await report.send(cr.AGGREGATE, caserun_id, "caserun/create", create)
    await report.log(f"case {dispatch.case_id} running as caserun {caserun_id}")

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


def to_has_assertion(raw_steps: Any, index: int) -> bool:
    """Whether the CaseRun has an assertion part for step ``index`` (as ``read_steps``)."""
    try:
        assertion = raw_steps[index].get("assertion")
    except (IndexError, AttributeError, TypeError):
        return False
    return isinstance(assertion, dict) and bool(assertion.get("type"))
