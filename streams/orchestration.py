"""The orchestrator's decision for a FlowRun, as a pure function of the run's state.

``next_steps(run)`` says what should happen next: start a node (with the job to hand
to the runners), skip a node (and why), or complete the run. The stream processor that
calls it folds ``flowrun.*`` events with ``flowrun.evolve``, turns each action into a
command (:func:`body_for`, :func:`command_id_for`) and publishes the jobs; it does no
deciding of its own. The rules are in ``docs/flowrun.md``.

Every id here is derived, never drawn: calling ``next_steps`` twice on the same state
(a redelivered event, a restarted orchestrator) yields the same commands and jobs,
which the decider and the runners recognise as duplicates.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from streams.domain import caserun as cr
from streams.domain import flowrun as f
from streams.domain.caserun_messages import CaseRunCreated
from streams.domain.commands import Body, Command
from streams.domain.events import Event

# Fixed namespaces: job ids and orchestrator command ids are uuid5 of stable names.
JOB_NAMESPACE = uuid.UUID("0b6f3e0a-58a4-4c5e-9a43-6e7d1c2f9a10")
COMMAND_NAMESPACE = uuid.UUID("5d2b8c71-1f3e-4a8e-b1c4-93a0e6d7f215")
ACTOR = "orchestrator"  # who the orchestrator's commands are from


@dataclass(frozen=True, slots=True)
class Job:
    """Work for a runner: run node ``node_id`` (``kind`` is its task type) once.

    ``job_id`` is the same for every delivery of one attempt of one node, so a runner
    that picks up a redelivered job reports under the same ids.
    """

    job_id: str
    kind: str
    run_id: str
    account: str
    site_id: str
    node_id: str
    attempt: int
    configs_json: str
    data_json: str
    threshold: float | None = None


@dataclass(frozen=True, slots=True)
class StartNode:
    node_id: str
    job: Job


@dataclass(frozen=True, slots=True)
class SkipNode:
    node_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class CompleteRun:
    status: str  # passed | failed


Action = StartNode | SkipNode | CompleteRun


def job_id_for(run_id: str, node_id: str, attempt: int) -> str:
    return str(uuid.uuid5(JOB_NAMESPACE, f"flowrun:{run_id}/{node_id}/{attempt}"))


def job_for(run: f.FlowRunState, node_id: str, attempt: int) -> Job:
    """The job of ``attempt`` of node ``node_id``; KeyError if the run has no such node.

    The orchestrator may build it again from a ``flowrun.node_started`` event (whose
    ``attempt`` it carries) and get the same job.
    """
    node = run.node(node_id)
    if node is None:
        raise KeyError(node_id)
    return Job(
        job_id=job_id_for(run.id, node_id, attempt),
        kind=node.task_type,
        run_id=run.id,
        account=run.account,
        site_id=run.site_id,
        node_id=node_id,
        attempt=attempt,
        configs_json=node.configs_json,
        data_json=node.data_json,
        threshold=node.threshold,
    )


def handled(run: f.FlowRunState, node: f.NodeState) -> bool:
    """Whether a failure of ``node`` is expected by the Flow: a child may start on it
    (``start_if`` failed or always, and no condition of the child wants this node
    passed). A condition ``{node: failed}`` alone does not do: with ``start_if`` passed
    the child is skipped whenever a parent failed, so it never starts on the failure."""
    for child in node.children:
        kid = run.node(child)
        if kid is None or kid.start_if not in (f.START_FAILED, f.START_ALWAYS):
            continue
        if (node.node_id, f.PASSED) not in kid.conditions:
            return True
    return False


def _verdict(node: f.NodeState, status: dict[str, str]) -> str | None:
    """``"start"``, a reason to skip, or None while a parent is still queued or working."""
    if not node.parents:
        return "start"
    seen = [status[p] for p in node.parents]
    if any(s not in f.NODE_FINAL for s in seen):
        return None
    ran = [s for s in seen if s != f.SKIPPED]
    if not ran:
        return "no parent ran"
    for parent, wanted in node.conditions:
        if status[parent] != wanted:
            return f"condition not met: {parent} is {status[parent]}, not {wanted}"
    if node.start_if == f.START_PASSED:
        return "start" if all(s == f.PASSED for s in ran) else "a parent failed"
    if node.start_if == f.START_FAILED:
        return "start" if f.FAILED in ran else "no parent failed"
    return "start"  # always


def next_steps(run: f.FlowRunState) -> list[Action]:
    """What the orchestrator does next for ``run``, in the order to do it.

    Nodes are visited in topological order against a working copy of their statuses,
    so skips propagate downstream in one call and the run completes in the same call
    when nothing is left queued or working. Empty for a finished or deleted run, and
    for a run that only waits for working nodes.
    """
    if run.deleted or run.status not in f.RUN_ACTIVE:
        return []
    status = {n.node_id: n.status for n in run.nodes}
    stop = None
    if run.end_on_fail:
        stop = next((n for n in run.nodes if n.status == f.FAILED and not handled(run, n)), None)
    actions: list[Action] = []
    for node in run.nodes:
        if status[node.node_id] != f.QUEUED:
            continue
        verdict = f"end_on_fail: node {stop.node_id} failed" if stop else _verdict(node, status)
        if verdict is None:
            continue
        if verdict == "start":
            status[node.node_id] = f.WORKING
            job = job_for(run, node.node_id, node.attempt + 1)
            actions.append(StartNode(node.node_id, job))
        else:
            status[node.node_id] = f.SKIPPED
            actions.append(SkipNode(node.node_id, verdict))
    if all(s in f.NODE_FINAL for s in status.values()):
        failed = any(s == f.FAILED for s in status.values())
        actions.append(CompleteRun(f.FAILED if failed else f.PASSED))
    return actions


def body_for(action: Action) -> Body:
    """The FlowRun command that carries out ``action``."""
    if isinstance(action, StartNode):
        return f.NodeStart(action.node_id)
    if isinstance(action, SkipNode):
        return f.NodeSkip(action.node_id, action.reason)
    return f.CompleteFlowRun(action.status)


def command_id_for(run: f.FlowRunState, action: Action) -> str:
    """A command id that is the same whenever the same action is decided again.

    Keyed by the run's attempt (a retry decides anew) and, for a start, the node's.
    """
    if isinstance(action, StartNode):
        name = f"{run.id}/start/{action.node_id}/{action.job.attempt}"
    elif isinstance(action, SkipNode):
        name = f"{run.id}/{run.attempt}/skip/{action.node_id}"
    else:
        name = f"{run.id}/{run.attempt}/complete"
    return str(uuid.uuid5(COMMAND_NAMESPACE, name))


# -- the CaseRuns of case nodes a cancel stopped ---------------------------------------


def stopped_case_nodes(run: f.FlowRunState) -> list[str]:
    """The ``case`` nodes of a cancelled run that were working when it was cancelled
    (or deleted while active): skipped with a start time. Their CaseRuns must be
    cancelled too: the runner stops the node's job, which then reports nothing more."""
    if run.status != f.CANCELLED:
        return []
    return [
        n.node_id
        for n in run.nodes
        if n.task_type == CASE_KIND and n.status == f.SKIPPED and n.time_started is not None
    ]


def caserun_cancel_command_id(caserun_id: str) -> str:
    """The one id of the orchestrator's cancel of a FlowRun node's CaseRun: sent again
    (a redelivery, the CaseRun appearing after the cancel), the decider drops it."""
    return str(uuid.uuid5(COMMAND_NAMESPACE, f"caserun:{caserun_id}/cancel"))


def cancel_caserun(caserun_id: str, cause: Event, issued_at: int) -> Command:
    """The cancel of the CaseRun of a case node its FlowRun's cancel stopped (the stopped
    job reports nothing more), under an id the decider drops when repeated."""
    data = cause.data
    flowrun_id = data.flowrun_id if isinstance(data, CaseRunCreated) else cause.aggregate_id
    return Command(
        caserun_cancel_command_id(caserun_id), cr.AGGREGATE, caserun_id, issued_at,
        cause.account, ACTOR, cause.correlation_id, cause.event_id,
        cr.CancelCaseRun(f"flowrun {flowrun_id} cancelled"),
    )  # fmt: skip


def node_fail_command_id(run_id: str, node_id: str, attempt: int) -> str:
    """The one id of the orchestrator's failing of node attempt ``attempt`` whose CaseRun
    was cancelled or deleted on its own (its job then reports nothing more)."""
    return str(uuid.uuid5(COMMAND_NAMESPACE, f"{run_id}/caserun-stopped/{node_id}/{attempt}"))


def fail_node(run: f.FlowRunState, node_id: str, cause: Event, issued_at: int) -> Command:
    """The failure of a working node whose CaseRun ``cause`` cancelled or deleted."""
    node = run.node(node_id)
    attempt = node.attempt if node is not None else 0
    verb = "deleted" if cause.type.endswith("deleted") else "cancelled"
    return Command(
        node_fail_command_id(run.id, node_id, attempt), f.AGGREGATE, run.id, issued_at,
        run.account, ACTOR, cause.correlation_id, cause.event_id,
        f.NodeFail(node_id, f"its CaseRun {cause.aggregate_id} was {verb}"),
    )  # fmt: skip


# -- Processes that runners work on ---------------------------------------------------

GENERATE_PROCESS = "case.generate"
GENERATE_KIND = "generate"
# A generate job's bounds (seconds): the whole job, and each page operation.
GENERATE_CONFIGS = {"timeout": 300, "max_wait_time": 15, "min_wait_time": 0}


def process_job_id(process_id: str, attempt: int) -> str:
    return str(uuid.uuid5(JOB_NAMESPACE, f"process:{process_id}/{attempt}"))


def generate_job(
    process_id: str, account: str, site_id: str, info_json: str, attempt: int = 1
) -> Job:
    """The ``generate`` job of ``attempt`` of a ``case.generate`` Process: the same job
    (and id) every time it is built, so a redelivery is reported under the same ids.
    ``run_id`` is the Process id, ``data_json`` the Process info."""
    return Job(
        job_id=process_job_id(process_id, attempt),
        kind=GENERATE_KIND,
        run_id=process_id,
        account=account,
        site_id=site_id,
        node_id=GENERATE_KIND,
        attempt=attempt,
        configs_json=json.dumps(GENERATE_CONFIGS, sort_keys=True, separators=(",", ":")),
        data_json=info_json,
    )


# -- CaseRuns started by POST /caserun ------------------------------------------------

CASE_KIND = "case"
# A standalone CaseRun's bounds (seconds), as a case node's configs: the whole run, and
# each action or assertion.
CASERUN_CONFIGS = {"timeout": 300, "max_wait_time": 30, "min_wait_time": 0}


def caserun_job_id(caserun_id: str, attempt: int) -> str:
    return str(uuid.uuid5(JOB_NAMESPACE, f"caserun:{caserun_id}/{attempt}"))


def caserun_job(
    caserun_id: str, account: str, created: CaseRunCreated, attempt: int = 1
) -> Job | None:
    """The ``case`` job that runs a standalone CaseRun (``POST /caserun``), from its
    ``caserun.created`` event; None for a CaseRun a FlowRun's ``case`` node created (that
    node's job runs it already). The same job and id every time it is built: a
    redelivered event sends the runners nothing new. ``run_id`` is the CaseRun id (so a
    ``caserun.cancelled`` stops it), ``node_id`` is empty: there is no node."""
    if created.flowrun_id:
        return None
    return Job(
        job_id=caserun_job_id(caserun_id, attempt),
        kind=CASE_KIND,
        run_id=caserun_id,
        account=account,
        site_id=created.site_id,
        node_id="",
        attempt=attempt,
        configs_json=json.dumps(CASERUN_CONFIGS, sort_keys=True, separators=(",", ":")),
        data_json=json.dumps({"case_id": created.case_id}, separators=(",", ":")),
    )
