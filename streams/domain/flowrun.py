"""The FlowRun aggregate: ``decide``, and reading its command bodies.

Run statuses: queued → working → passed | failed | cancelled; a failed run goes back to
queued through retry. Node statuses: queued → working → passed | failed, or queued →
skipped. Which node starts or is skipped next is the orchestrator's decision
(``streams.orchestration``); this module only refuses what cannot happen (a report on a
cancelled run, passing a node that is not working, starting a node before its parents
finished). Deleted runs answer every command with ``not_found``.

The state and the graph live in :mod:`streams.domain.flowrun_state`, the payloads and
bodies in :mod:`streams.domain.flowrun_messages`, ``evolve`` in
:mod:`streams.domain.flowrun_evolution`; all are re-exported here, so callers keep
writing ``flowrun.NodeState``, ``flowrun.NodePassed`` or ``flowrun.evolve``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from streams.domain import commands as c
from streams.domain import envelope
from streams.domain import events as e
from streams.domain.commands import Body, InvalidCommand
from streams.domain.events import Payload
from streams.domain.flowrun_evolution import evolve  # noqa: F401 (re-exported)
from streams.domain.flowrun_messages import (  # noqa: F401 (re-exported: callers write flowrun.<name>)
    BODIES,
    PAYLOADS,
    CancelFlowRun,
    CompleteFlowRun,
    CreateFlowRun,
    DeleteFlowRun,
    FlowRunCancelled,
    FlowRunCompleted,
    FlowRunCreated,
    FlowRunDeleted,
    FlowRunLogged,
    FlowRunRetried,
    LogFlowRun,
    NodeFail,
    NodeFailed,
    NodePass,
    NodePassed,
    NodeSkip,
    NodeSkipped,
    NodeStart,
    NodeStarted,
    RetryFlowRun,
)
from streams.domain.flowrun_state import (  # noqa: F401 (re-exported: callers write flowrun.<name>)
    AGGREGATE,
    CANCELLED,
    FAILED,
    MAX_CONDITIONS,
    MAX_EDGES,
    MAX_NODES,
    NODE_FINAL,
    NODE_STATUSES,
    PASSED,
    QUEUED,
    RUN_ACTIVE,
    RUN_STATUSES,
    RUN_TERMINAL,
    SKIPPED,
    START_ALWAYS,
    START_FAILED,
    START_IF,
    START_PASSED,
    TASK_TYPES,
    WORKING,
    FlowRunState,
    LogLine,
    NodeState,
    descendants,
    nodes_to_retry,
    read_graph,
)
from streams.domain.rejection import ALREADY_EXISTS, INVALID, INVALID_STATE, NOT_FOUND, Rejected

# -- decide ---------------------------------------------------------------------------


def _events(state: FlowRunState | None, cmd: c.Command, *payloads: Payload) -> list[e.Event]:
    return envelope.events(AGGREGATE, state.seq if state is not None else 0, cmd, *payloads)


def _require(state: FlowRunState, allowed: frozenset[str] | tuple[str, ...], doing: str) -> None:
    if state.status not in allowed:
        raise Rejected(INVALID_STATE, f"cannot {doing} flowrun {state.id}: it is {state.status}")


def _existing(state: FlowRunState, node_id: str) -> NodeState:
    node = state.node(node_id)
    if node is None:
        raise Rejected(NOT_FOUND, f"flowrun {state.id} has no node {node_id}", "node_id")
    return node


def _node_in(node: NodeState, status: str, doing: str) -> None:
    if node.status != status:
        raise Rejected(
            INVALID_STATE, f"cannot {doing} node {node.node_id}: it is {node.status}, not {status}"
        )


def outcome(state: FlowRunState) -> str:
    """How a run whose nodes are all final ends: failed if any node failed, else passed."""
    return FAILED if any(n.status == FAILED for n in state.nodes) else PASSED


def decide(state: FlowRunState | None, cmd: c.Command) -> list[e.Event]:  # noqa: C901
    """The events command ``cmd`` causes on ``state`` (None: no such FlowRun yet).

    Raises Rejected with a code and a sentence when the command does not fit.
    """
    body = cmd.body
    if isinstance(body, CreateFlowRun):
        if state is not None:
            raise Rejected(ALREADY_EXISTS, f"flowrun {cmd.aggregate_id} already exists")
        created = FlowRunCreated(
            body.site_id,
            body.flow_id,
            body.nodes_json,
            body.edges_json,
            body.end_on_fail,
            body.title,
            body.site_url,
            body.cases_json,
        )
        return _events(None, cmd, created)
    if state is None or state.deleted or state.account != cmd.account:
        raise Rejected(NOT_FOUND, f"flowrun {cmd.aggregate_id} not found")
    if isinstance(body, DeleteFlowRun):
        if state.status in RUN_ACTIVE:
            return _events(state, cmd, FlowRunCancelled("deleted"), FlowRunDeleted())
        return _events(state, cmd, FlowRunDeleted())
    if isinstance(body, RetryFlowRun):
        _require(state, (FAILED,), "retry")
        return _events(state, cmd, FlowRunRetried(state.attempt + 1))
    if isinstance(body, NodeStart):
        _require(state, RUN_ACTIVE, "start a node of")
        node = _existing(state, body.node_id)
        _node_in(node, QUEUED, "start")
        waiting = [p for p in node.parents if _existing(state, p).status not in NODE_FINAL]
        if waiting:
            raise Rejected(
                INVALID_STATE,
                f"cannot start node {node.node_id}: parent {waiting[0]} has not finished",
            )
        return _events(state, cmd, NodeStarted(node.node_id, node.attempt + 1))
    if isinstance(body, NodePass | NodeFail):
        _require(state, RUN_ACTIVE, "report a node of")
        node = _existing(state, body.node_id)
        _node_in(node, WORKING, "report on")
        if isinstance(body, NodePass):
            return _events(state, cmd, NodePassed(node.node_id, body.result_json, body.object_id))
        failed = NodeFailed(node.node_id, body.exception, body.result_json, body.object_id)
        return _events(state, cmd, failed)
    if isinstance(body, NodeSkip):
        _require(state, RUN_ACTIVE, "skip a node of")
        node = _existing(state, body.node_id)
        _node_in(node, QUEUED, "skip")
        return _events(state, cmd, NodeSkipped(node.node_id, body.reason))
    if isinstance(body, LogFlowRun):
        _require(state, RUN_ACTIVE, "log to")
        if body.step is not None:
            _existing(state, body.step)
        return _events(state, cmd, FlowRunLogged(body.message, body.step))
    if isinstance(body, CompleteFlowRun):
        _require(state, RUN_ACTIVE, "complete")
        busy = [n.node_id for n in state.nodes if n.status not in NODE_FINAL]
        if busy:
            raise Rejected(
                INVALID_STATE, f"cannot complete flowrun {state.id}: node {busy[0]} is not final"
            )
        if body.status != outcome(state):
            raise Rejected(
                INVALID_STATE,
                f"flowrun {state.id} {outcome(state)}, it cannot complete as {body.status}",
                "status",
            )
        return _events(state, cmd, FlowRunCompleted(body.status))
    if isinstance(body, CancelFlowRun):
        _require(state, RUN_ACTIVE, "cancel")
        return _events(state, cmd, FlowRunCancelled(body.reason))
    raise Rejected(INVALID, f"{cmd.name} is not a flowrun command")


# -- validation -----------------------------------------------------------------------


def _json_value(data: Mapping[str, Any], key: str) -> Any:
    value = data.get(key)
    if isinstance(value, str):  # already encoded
        try:
            value = json.loads(value)
        except (ValueError, RecursionError) as exc:
            raise InvalidCommand(key, f"{key} is not valid JSON") from exc
    return value


def _cases(data: Mapping[str, Any]) -> str:
    """The create command's ``cases``: an object of Case id to that Case's steps_json
    text (the API copies in those of the case nodes), as canonical JSON; "{}" when
    absent. InvalidCommand for any other shape."""
    value = _json_value(data, "cases")
    if value is None:
        return "{}"
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidCommand("cases", "cases must be an object of Case ids to steps JSON text")
    return c.canonical(value, "cases")


def _end_on_fail(data: Mapping[str, Any]) -> bool:
    configs = data.get("configs")
    if configs is not None and not isinstance(configs, dict):
        raise InvalidCommand("configs", "configs must be an object")
    value = data.get("end_on_fail", (configs or {}).get("end_on_fail", True))
    if not isinstance(value, bool):
        raise InvalidCommand("configs.end_on_fail", "end_on_fail must be true or false")
    return value


def parse_flowrun_body(name: str, data: Mapping[str, Any]) -> Body:
    """The typed body of FlowRun command ``name`` from its JSON fields.

    Raises InvalidCommand naming the first unusable field, or an unknown command name.
    """
    if name == CreateFlowRun.NAME:
        nodes, edges = _json_value(data, "nodes"), _json_value(data, "edges") or []
        read_graph(nodes, edges)
        return CreateFlowRun(
            site_id=c._text(data, "site_id", required=True, limit=c.MAX_ID),
            flow_id=c._text(data, "flow_id", required=True, limit=c.MAX_ID),
            nodes_json=c.canonical(nodes, "nodes"),
            edges_json=c.canonical(edges, "edges"),
            end_on_fail=_end_on_fail(data),
            title=c._text(data, "title", required=False) or "",
            site_url=c._text(data, "site_url", required=False) or "",
            cases_json=_cases(data),
        )
    if name in (NodeStart.NAME, NodeSkip.NAME):
        node_id = c._text(data, "node_id", required=True, limit=c.MAX_ID)
        if name == NodeStart.NAME:
            return NodeStart(node_id)
        return NodeSkip(node_id, c._text(data, "reason", required=True))
    if name in (NodePass.NAME, NodeFail.NAME):
        node_id = c._text(data, "node_id", required=True, limit=c.MAX_ID)
        result = c._json_text(data, "result", default=None)
        object_id = c._text(data, "object_id", required=False, limit=c.MAX_ID)
        if name == NodePass.NAME:
            return NodePass(node_id, result, object_id)
        return NodeFail(node_id, c._text(data, "exception", required=True), result, object_id)
    if name == LogFlowRun.NAME:
        return LogFlowRun(
            c._text(data, "message", required=True),
            c._text(data, "step", required=False, limit=c.MAX_ID),
        )
    if name == CompleteFlowRun.NAME:
        status = data.get("status")
        if status not in (PASSED, FAILED):
            raise InvalidCommand("status", "status must be passed or failed")
        return CompleteFlowRun(status)
    if name == CancelFlowRun.NAME:
        return CancelFlowRun(c._text(data, "reason", required=False))
    if name == RetryFlowRun.NAME:
        return RetryFlowRun()
    if name == DeleteFlowRun.NAME:
        return DeleteFlowRun()
    raise InvalidCommand(None, f"unknown command {name!r}")
