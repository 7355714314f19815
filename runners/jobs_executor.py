"""Running one job: the executor of its kind under the node's ``timeout``, then the
node's pass or fail reported.

An executor returns a :class:`NodeOutcome`; a ``RunnerError`` (a refused target, a page
that failed, a delivery error) or the timeout fails the node with its sentence. A job
that was running a CaseRun and failed outside a step fails that CaseRun's next part
with the same sentence first. A standalone CaseRun's job (``POST /caserun``) has no
node: its outcome is the CaseRun's own, which its part reports already completed.
``PublishError`` (Kafka did not take a report) and ``BrowserUnavailable`` propagate: the
job is not done, the worker runs it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from runners.errors import BrowserUnavailable, RunnerError
from runners.jobs_case import run_case_job
from runners.jobs_context import JobContext, NodeConfig
from runners.jobs_generate import run_generate
from runners.jobs_notify import run_email, run_slack, run_wait, run_webhook
from runners.jobs_report import JobReporter, NodeOutcome, Publish, now_micros
from runners.jobs_scan import run_scan
from streams.jobs import Dispatch
from streams.publisher import PublishError

log = logging.getLogger(__name__)

Executor = Callable[[JobContext, Dispatch, JobReporter], Awaitable[NodeOutcome]]

EXECUTORS: dict[str, Executor] = {
    "scan": run_scan,
    "case": run_case_job,
    "webhook": run_webhook,
    "slack": run_slack,
    "email": run_email,
    "wait": run_wait,
    "generate": run_generate,
}
KINDS = tuple(EXECUTORS)
# Kinds whose job serves a Process (``run_id`` is the Process id), not a FlowRun node:
# their outcome completes or fails the Process.
PROCESS_KINDS = frozenset({"generate"})


async def perform(
    ctx: JobContext,
    dispatch: Dispatch,
    publish: Publish,
    *,
    executors: dict[str, Executor] | None = None,
    clock: Callable[[], int] = now_micros,
) -> NodeOutcome:
    """Run ``dispatch`` and report its outcome (a node's, a Process's, or for a
    standalone CaseRun only its failed part); the outcome."""
    job = dispatch.job
    report = JobReporter(dispatch, publish, clock)
    executor = (executors or EXECUTORS).get(job.kind)
    config = NodeConfig.from_json(job.configs_json)
    if executor is None:
        outcome = NodeOutcome(False, {}, f"no executor for task type {job.kind!r}")
    else:
        try:
            async with asyncio.timeout(config.timeout):
                outcome = await executor(ctx, dispatch, report)
        except TimeoutError:
            outcome = NodeOutcome(False, {}, f"{job.kind} timed out after {config.timeout:g}s")
        except (PublishError, BrowserUnavailable):
            raise
        except RunnerError as exc:
            outcome = NodeOutcome(False, {}, str(exc) or type(exc).__name__)
        except Exception as exc:  # a bug must fail the node, not stall the run
            log.exception("job %s (%s) crashed", job.job_id, job.kind)
            outcome = NodeOutcome(False, {}, f"runner error: {type(exc).__name__}: {exc}")
    if not outcome.passed:
        await report.fail_caserun(outcome.exception or "failed")
    if job.kind in PROCESS_KINDS:
        await report.process_outcome(outcome)
    elif dispatch.caserun_id is None:
        await report.outcome(outcome)
    return outcome
