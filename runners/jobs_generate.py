"""The ``generate`` job: explore a Site in Chromium, plan a Case, check that it passes,
record it, and finish the ``case.generate`` Process that asked for it.

Everything is reported under ids derived from the job id (``runners.jobs_report``): a
job run again after a crash sends the same ``case.create`` for the same Case id and the
same Process reports, so the decider records each once. The Process moves
``pending → running`` with the first progress report; its outcome (``process.complete``
with ``object_id`` = the Case, or ``process.fail`` with the exception) is sent by
``runners.jobs_executor.perform`` from the :class:`NodeOutcome` returned here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from runners.browser import Tab
from runners.case import CaseLimits, Status, run_case
from runners.errors import PageFailed, PageNavigated, RunnerError, TargetInvalid
from runners.generate import (
    MAX_LAYERS,
    SNAPSHOT_JS,
    PageSnapshot,
    Plan,
    Planner,
    PlanRequest,
    links_to_explore,
    planner_from_env,
    snapshot_from_json,
)
from runners.jobs_case import to_step
from runners.jobs_context import JobContext, NodeConfig, json_object
from runners.jobs_report import JobReporter, NodeOutcome, report_id
from runners.scan import MAX_SELF_NAVIGATIONS
from streams.domain import case as case_domain
from streams.domain import commands as c
from streams.jobs import Dispatch

log = logging.getLogger(__name__)

PROCESS = "process"
# How many linked pages the explorer opens besides the start page.
MAX_LINKED_PAGES = 5


def case_id_for(job_id: str) -> str:
    """The Case a ``generate`` job records: the same for every delivery of the job."""
    return report_id(job_id, "case")


def _layers(info: dict[str, Any]) -> int:
    value = info.get("max_layers")
    if isinstance(value, bool) or not isinstance(value, int):
        return 10
    return max(1, min(value, MAX_LAYERS))


# The delay of the page's meta refresh in seconds, or null when it has none.
_REFRESH_JS = """() => {
  const meta = document.querySelector('meta[http-equiv="refresh" i]');
  const delay = meta ? parseFloat((meta.content || "").split(/[;,]/)[0]) : NaN;
  return Number.isFinite(delay) ? delay : null;
}"""
# A meta refresh due within this many seconds is waited for: a visitor lands there.
MAX_REFRESH_WAIT_S = 5.0


async def _snapshot(tab: Tab, timeout: float) -> PageSnapshot:
    """The page's snapshot where it lands: a page that goes elsewhere by itself after
    its load (a meta refresh due within ``MAX_REFRESH_WAIT_S``, a script redirect) is
    read again once there, as a scan does, up to ``MAX_SELF_NAVIGATIONS`` times. A meta
    refresh is looked for, not raced: a quick read could finish before it starts."""
    landed = tab.navigations
    for _ in range(3 * (MAX_SELF_NAVIGATIONS + 1)):  # reads a navigation cut short too
        if tab.navigations - landed > MAX_SELF_NAVIGATIONS:
            break
        since = tab.navigations
        try:
            snapshot = snapshot_from_json(await tab.evaluate(SNAPSHOT_JS))
            refresh = await tab.evaluate(_REFRESH_JS)
        except PageNavigated:
            await tab.wait_for_load(timeout)
            continue
        if tab.navigations == since and isinstance(refresh, int | float):
            if not 0 <= refresh <= MAX_REFRESH_WAIT_S:
                return snapshot
            try:
                async with asyncio.timeout(refresh + 5):
                    await tab.wait_for_navigation(since)
            except TimeoutError:
                return snapshot  # announced, but it did not go
        elif tab.navigations == since:
            return snapshot
        await tab.wait_for_load(timeout)
    raise PageFailed(f"{tab.url} kept navigating by itself after its load: a redirect loop")


async def explore(
    ctx: JobContext, site_url: str, timeout: float, progress: Callable[[str], Any] | None = None
) -> tuple[PageSnapshot, tuple[PageSnapshot, ...]]:
    """The start page's snapshot and those of the pages its first links lead to."""
    await ctx.guard.check_url(site_url)
    request_filter, egress = ctx.guard.page_checks()
    linked: list[PageSnapshot] = []
    async with ctx.browser.open_page(request_filter, egress=egress) as tab:
        await tab.goto(site_url, timeout=timeout)
        start = await _snapshot(tab, timeout)
        for url in links_to_explore(site_url, start, MAX_LINKED_PAGES):
            if progress is not None:
                await progress(url)
            try:
                await ctx.guard.check_url(url)
                await tab.goto(url, timeout=timeout)
                linked.append(await _snapshot(tab, timeout))
            except RunnerError as exc:  # a page that cannot be opened is not followed
                log.info("generate: %s not explored: %s", url, exc)
    return start, tuple(linked)


async def verified(
    ctx: JobContext, site_url: str, plan: Plan, limits: CaseLimits
) -> list[dict[str, Any]]:
    """The plan's steps, cut before the first step that fails on the site (and checked
    again); PageFailed when not even the first step passes."""
    steps = list(plan.steps)
    while steps:
        result = await run_case(
            ctx.browser,
            ctx.guard,
            ctx.store,
            site_url,
            tuple(to_step(s) for s in steps),
            limits=limits,
        )
        failed = result.failed_step
        if result.status is Status.PASSED or failed is None:
            return steps
        reason = failed.action.exception or failed.assertion.exception or "failed"
        log.info("generate: step %d of the plan fails (%s); cut there", failed.index, reason)
        if failed.index == 0:
            raise PageFailed(f"the generated case fails on the site at its first step: {reason}")
        steps = steps[: failed.index]
    raise PageFailed("the planner produced no steps")


async def run_generate(
    ctx: JobContext,
    dispatch: Dispatch,
    report: JobReporter,
    *,
    planner: Planner | None = None,
) -> NodeOutcome:
    job = dispatch.job
    process_id = job.run_id
    if not job.site_id:  # POST /process with this type and no "site"
        raise TargetInvalid(
            "a case.generate Process needs a Site to explore and names none: create it "
            'with POST /case/generate {"site_id": ...}'
        )
    if not dispatch.site_url:
        raise TargetInvalid(f"site {job.site_id} has no URL (deleted or unknown)")
    info = json_object(job.data_json)
    layers = _layers(info)
    prompt = info.get("prompt") if isinstance(info.get("prompt"), str) else ""
    try:
        chosen = planner or planner_from_env()
    except ValueError as exc:
        raise TargetInvalid(str(exc)) from exc
    config = NodeConfig.from_json(job.configs_json)
    limits = CaseLimits(step_timeout=config.max_wait_time, max_wait=config.max_wait_time)
    explored = 0

    async def progress(value: float, message: str, what: str) -> None:
        body = c.ReportProgress(value, message[:2000])
        await report.send(PROCESS, process_id, f"progress/{what}", body)

    await progress(5.0, f"exploring {dispatch.site_url}", "start")

    async def on_page(url: str) -> None:
        nonlocal explored
        explored += 1
        await progress(5.0 + 8.0 * explored, f"exploring {url}", f"page/{explored}")

    start, linked = await explore(ctx, dispatch.site_url, config.max_wait_time, on_page)
    await progress(50.0, f"planning with the {chosen.name} generator", "plan")
    plan = await chosen.plan(PlanRequest(dispatch.site_url, layers, prompt or "", start, linked))
    steps = plan.steps[:layers]
    if not steps:
        raise PageFailed("the generator planned no steps")
    await progress(70.0, f"checking {len(steps)} steps on the site", "verify")
    steps = await verified(ctx, dispatch.site_url, Plan(plan.name, steps), limits)
    case_id = case_id_for(job.job_id)
    try:  # the checks of POST /case, and its canonical JSON
        create = case_domain.parse_create(
            {
                "site_id": job.site_id,
                "name": plan.name or "Generated case",
                "steps": steps,
                "type": "generated",
            }
        )
    except c.InvalidCommand as exc:
        raise PageFailed(f"the generated case is not valid: {exc.message}") from exc
    await report.send(case_domain.AGGREGATE, case_id, "case/create", create)
    await progress(95.0, f"case {case_id} recorded with {len(steps)} steps", "recorded")
    summary = {
        "case_id": case_id,
        "steps": len(steps),
        "generator": chosen.name,
        "pages_explored": 1 + len(linked),
    }
    return NodeOutcome(True, summary, object_id=case_id)
