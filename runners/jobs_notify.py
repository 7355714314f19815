"""The ``webhook``, ``slack``, ``email`` and ``wait`` jobs.

Node fields as in the FlowRun reference: ``uri``, ``request_type``, ``headers`` and
``payload`` (JSON text) for a webhook; ``uri`` (the incoming-webhook URL) and
``message`` for Slack; ``email``, ``subject`` and ``message`` for an email (sent
through the runner's SMTP server). A wait node waits its ``min_wait_time`` (capped by
``max_wait_time``).

Every delivery carries ``delivery_key(job)``, derived from the run, the node and the
node's attempt: a job re-run after its runner died sends the same key (``Idempotency-Key``
header, or the email's ``Message-ID``), so a receiver that dedupes sees the notification
once; a retry of the FlowRun starts a new attempt, a new notification with a new key.
"""

from __future__ import annotations

import asyncio
import uuid

from runners.errors import NotifyFailed, TargetInvalid
from runners.jobs_context import JobContext, NodeConfig, json_object, require, text_field
from runners.jobs_report import JobReporter, NodeOutcome
from runners.notify import (
    send_email,
    send_slack,
    send_webhook,
    webhook_from_node,
    with_idempotency_key,
)
from streams.jobs import Dispatch
from streams.orchestration import Job

DELIVERY_NAMESPACE = uuid.UUID("5b0f6c0e-2f7a-4d1b-9c3e-8a4d2e61f0b7")


def delivery_key(job: Job) -> str:
    """The dedupe key of a notification: the same for every run of one node attempt."""
    return str(uuid.uuid5(DELIVERY_NAMESPACE, f"{job.run_id}/{job.node_id}/{job.attempt}"))


async def run_webhook(ctx: JobContext, dispatch: Dispatch, report: JobReporter) -> NodeOutcome:
    data = json_object(dispatch.job.data_json)
    config = NodeConfig.from_json(dispatch.job.configs_json)
    request = webhook_from_node(
        require(text_field(data, "uri"), "uri"),
        text_field(data, "request_type") or "POST",
        text_field(data, "headers"),
        text_field(data, "payload"),
    )
    request = with_idempotency_key(request, delivery_key(dispatch.job))
    await report.log(f"{request.method} {request.url}")
    answer = await send_webhook(ctx.guard, request, timeout=config.max_wait_time)
    summary = {"url": request.url, "method": request.method, "status_code": answer.status_code}
    if answer.ok:
        return NodeOutcome(True, summary)
    return NodeOutcome(False, summary, f"{request.url} answered HTTP {answer.status_code}")


async def run_slack(ctx: JobContext, dispatch: Dispatch, report: JobReporter) -> NodeOutcome:
    data = json_object(dispatch.job.data_json)
    config = NodeConfig.from_json(dispatch.job.configs_json)
    url = require(text_field(data, "uri"), "Slack webhook uri")
    text = text_field(data, "message") or f"flowrun {dispatch.job.run_id}"
    answer = await send_slack(
        ctx.guard,
        url,
        text,
        {"run": dispatch.job.run_id},
        timeout=config.max_wait_time,
        idempotency_key=delivery_key(dispatch.job),
    )
    summary = {"status_code": answer.status_code}
    if answer.ok:
        return NodeOutcome(True, summary)
    return NodeOutcome(False, summary, f"Slack answered HTTP {answer.status_code}")


async def run_email(ctx: JobContext, dispatch: Dispatch, report: JobReporter) -> NodeOutcome:
    if ctx.smtp is None:
        raise NotifyFailed("no SMTP server is configured (RUNLEDGER_SMTP_HOST)")
    data = json_object(dispatch.job.data_json)
    config = NodeConfig.from_json(dispatch.job.configs_json)
    to = require(text_field(data, "email"), "email address")
    subject = text_field(data, "subject") or f"flowrun {dispatch.job.run_id}"
    await send_email(
        ctx.guard,
        ctx.smtp,
        to,
        subject,
        text_field(data, "message"),
        timeout=config.max_wait_time,
        idempotency_key=delivery_key(dispatch.job),
    )
    return NodeOutcome(True, {"to": to, "subject": subject})


async def run_wait(ctx: JobContext, dispatch: Dispatch, report: JobReporter) -> NodeOutcome:
    config = NodeConfig.from_json(dispatch.job.configs_json)
    seconds = min(config.min_wait_time, config.max_wait_time)
    if seconds < 0:
        raise TargetInvalid("a wait node needs a min_wait_time of 0 or more")
    await report.log(f"waiting {seconds:g}s")
    await asyncio.sleep(seconds)
    return NodeOutcome(True, {"waited_s": seconds})
