"""The FlowRun aggregate: a Flow's graph copied into a run, its state, ``decide``, ``evolve``.

Run statuses: queued → working → passed | failed | cancelled; a failed run goes back to
queued through retry. Node statuses: queued → working → passed | failed, or queued →
skipped. Which node starts or is skipped next is the orchestrator's decision
(``streams.orchestration``); this module only refuses what cannot happen (a report on a
cancelled run, passing a node that is not working, starting a node before its parents
finished). Deleted runs answer every command with ``not_found``.

The graph travels in ``flowrun.created`` as canonical JSON text (``nodes_json``,
``edges_json``) so that every payload field is an Avro primitive; ``evolve`` reads it
back into typed :class:`NodeState` values, in topological order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from streams.domain import commands as c
from streams.domain import envelope
from streams.domain import events as e
from streams.domain.commands import Body, InvalidCommand
from streams.domain.events import Payload
from streams.domain.rejection import ALREADY_EXISTS, INVALID, INVALID_STATE, NOT_FOUND, Rejected

AGGREGATE = "flowrun"

QUEUED = "queued"
WORKING = "working"
PASSED = "passed"
FAILED = "failed"
SKIPPED = "skipped"
CANCELLED = "cancelled"
NODE_STATUSES = (QUEUED, WORKING, PASSED, FAILED, SKIPPED)
NODE_FINAL = frozenset({PASSED, FAILED, SKIPPED})
RUN_STATUSES = (QUEUED, WORKING, PASSED, FAILED, CANCELLED)
RUN_ACTIVE = frozenset({QUEUED, WORKING})
RUN_TERMINAL = frozenset({PASSED, FAILED, CANCELLED})

TASK_TYPES = ("scan", "case", "webhook", "slack", "email", "wait")
# data.start_if: when a node with parents may start (null means "passed"). See docs/flowrun.md.
START_PASSED = "passed"
START_FAILED = "failed"
START_ALWAYS = "always"
START_IF = (START_PASSED, START_FAILED, START_ALWAYS)

MAX_NODES = 200
MAX_EDGES = 1_000
MAX_CONDITIONS = 4


# -- events ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlowRunCreated(Payload):
    TYPE: ClassVar[str] = "flowrun.created"
    site_id: str
    flow_id: str
    nodes_json: str
    edges_json: str
    end_on_fail: bool = True
    title: str = ""


@dataclass(frozen=True, slots=True)
class NodeStarted(Payload):
    TYPE: ClassVar[str] = "flowrun.node_started"
    node_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class NodePassed(Payload):
    TYPE: ClassVar[str] = "flowrun.node_passed"
    node_id: str
    result_json: str | None = None
    object_id: str | None = None


@dataclass(frozen=True, slots=True)
class NodeFailed(Payload):
    TYPE: ClassVar[str] = "flowrun.node_failed"
    node_id: str
    exception: str
    result_json: str | None = None
    object_id: str | None = None


@dataclass(frozen=True, slots=True)
class NodeSkipped(Payload):
    TYPE: ClassVar[str] = "flowrun.node_skipped"
    node_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class FlowRunLogged(Payload):
    TYPE: ClassVar[str] = "flowrun.log"
    message: str
    step: str | None = None


@dataclass(frozen=True, slots=True)
class FlowRunCompleted(Payload):
    TYPE: ClassVar[str] = "flowrun.completed"
    status: str  # passed | failed


@dataclass(frozen=True, slots=True)
class FlowRunCancelled(Payload):
    TYPE: ClassVar[str] = "flowrun.cancelled"
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class FlowRunRetried(Payload):
    TYPE: ClassVar[str] = "flowrun.retried"
    attempt: int


@dataclass(frozen=True, slots=True)
class FlowRunDeleted(Payload):
    TYPE: ClassVar[str] = "flowrun.deleted"


PAYLOADS: tuple[type[Payload], ...] = (
    FlowRunCreated,
    NodeStarted,
    NodePassed,
    NodeFailed,
    NodeSkipped,
    FlowRunLogged,
    FlowRunCompleted,
    FlowRunCancelled,
    FlowRunRetried,
    FlowRunDeleted,
)


# -- command bodies -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreateFlowRun(Body):
    NAME: ClassVar[str] = "flowrun.create"
    site_id: str
    flow_id: str
    nodes_json: str
    edges_json: str
    end_on_fail: bool = True
    title: str = ""


@dataclass(frozen=True, slots=True)
class NodeStart(Body):
    NAME: ClassVar[str] = "flowrun.node_start"
    node_id: str


@dataclass(frozen=True, slots=True)
class NodePass(Body):
    NAME: ClassVar[str] = "flowrun.node_pass"
    node_id: str
    result_json: str | None = None
    object_id: str | None = None


@dataclass(frozen=True, slots=True)
class NodeFail(Body):
    NAME: ClassVar[str] = "flowrun.node_fail"
    node_id: str
    exception: str
    result_json: str | None = None
    object_id: str | None = None


@dataclass(frozen=True, slots=True)
class NodeSkip(Body):
    NAME: ClassVar[str] = "flowrun.node_skip"
    node_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class LogFlowRun(Body):
    NAME: ClassVar[str] = "flowrun.log"
    message: str
    step: str | None = None


@dataclass(frozen=True, slots=True)
class CompleteFlowRun(Body):
    NAME: ClassVar[str] = "flowrun.complete"
    status: str


@dataclass(frozen=True, slots=True)
class CancelFlowRun(Body):
    NAME: ClassVar[str] = "flowrun.cancel"
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class RetryFlowRun(Body):
    NAME: ClassVar[str] = "flowrun.retry"


@dataclass(frozen=True, slots=True)
class DeleteFlowRun(Body):
    NAME: ClassVar[str] = "flowrun.delete"


BODIES: tuple[type[Body], ...] = (
    CreateFlowRun,
    NodeStart,
    NodePass,
    NodeFail,
    NodeSkip,
    LogFlowRun,
    CompleteFlowRun,
    CancelFlowRun,
    RetryFlowRun,
    DeleteFlowRun,
)


# -- state ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeState:
    """One node of a run. ``data_json`` is the node's ``data`` as copied from the Flow."""

    node_id: str
    task_type: str
    start_if: str
    threshold: float | None
    configs_json: str
    data_json: str
    parents: tuple[str, ...] = ()
    children: tuple[str, ...] = ()
    # data.conditions: (parent id, "passed" | "failed") pairs that must all hold too
    conditions: tuple[tuple[str, str], ...] = ()
    status: str = QUEUED
    attempt: int = 0  # how many times the node was started, across retries
    time_started: int | None = None
    time_completed: int | None = None
    exception: str | None = None
    reason: str | None = None  # why it was skipped
    result_json: str | None = None
    object_id: str | None = None


@dataclass(frozen=True, slots=True)
class LogLine:
    timestamp: int
    message: str
    step: str | None = None


@dataclass(frozen=True, slots=True)
class FlowRunState:
    """A FlowRun after its events up to ``seq``; times are microseconds, UTC."""

    id: str
    account: str
    created_by: str
    site_id: str
    flow_id: str
    title: str
    end_on_fail: bool
    nodes_json: str
    edges_json: str
    time_created: int
    nodes: tuple[NodeState, ...]  # topological order
    seq: int = 0
    status: str = QUEUED
    attempt: int = 1
    time_started: int | None = None
    time_completed: int | None = None
    time_updated: int = 0
    deleted: bool = False
    logs: tuple[LogLine, ...] = ()

    def node(self, node_id: str) -> NodeState | None:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        return None

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(NODE_STATUSES, 0)
        for node in self.nodes:
            out[node.status] += 1
        return out


# -- the graph ------------------------------------------------------------------------


def _canonical(value: Any, field: str) -> str:
    if c._deeper_than(value, c.MAX_JSON_DEPTH):
        raise InvalidCommand(field, f"{field} is nested deeper than {c.MAX_JSON_DEPTH} levels")
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (ValueError, TypeError, RecursionError) as exc:
        raise InvalidCommand(field, f"{field} is not plain JSON: {exc}") from exc
    if len(text) > c.MAX_JSON:
        raise InvalidCommand(field, f"{field} is larger than {c.MAX_JSON} bytes")
    return text


def _id(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > c.MAX_ID:
        raise InvalidCommand(field, f"{field} must be a non-empty string")
    if not c._utf8(value):
        raise InvalidCommand(field, f"{field} is not valid Unicode text (lone surrogate)")
    return value


def _node(raw: Any, where: str) -> NodeState:
    if not isinstance(raw, dict):
        raise InvalidCommand(where, f"{where} must be an object")
    node_id = _id(raw.get("id"), f"{where}.id")
    data = raw.get("data")
    if not isinstance(data, dict):
        raise InvalidCommand(f"{where}.data", f"{where}.data must be an object")
    task_type = data.get("task_type")
    if task_type not in TASK_TYPES:
        raise InvalidCommand(
            f"{where}.data.task_type", f"task_type must be one of {', '.join(TASK_TYPES)}"
        )
    start_if = data.get("start_if") or START_PASSED
    if start_if not in START_IF:
        raise InvalidCommand(
            f"{where}.data.start_if", f"start_if must be null or one of {', '.join(START_IF)}"
        )
    configs = data.get("configs") or {}
    if not isinstance(configs, dict):
        raise InvalidCommand(f"{where}.data.configs", "configs must be an object")
    threshold = data.get("threshold")
    if threshold is not None and (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not 0 <= threshold <= 100
    ):
        raise InvalidCommand(f"{where}.data.threshold", "threshold must be between 0 and 100")
    return NodeState(
        node_id=node_id,
        task_type=task_type,
        start_if=start_if,
        threshold=None if threshold is None else float(threshold),
        configs_json=_canonical(configs, f"{where}.data.configs"),
        data_json=_canonical(data, f"{where}.data"),
        conditions=_conditions(data.get("conditions"), f"{where}.data.conditions"),
    )


def _conditions(raw: Any, where: str) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_CONDITIONS:
        raise InvalidCommand(where, f"{where} must be a list of at most {MAX_CONDITIONS}")
    out = []
    for j, cond in enumerate(raw):
        if not isinstance(cond, dict) or cond.get("status") not in (PASSED, FAILED):
            raise InvalidCommand(f"{where}[{j}]", f"{where}[{j}] needs a status passed or failed")
        out.append((_id(cond.get("parent"), f"{where}[{j}].parent"), str(cond["status"])))
    return tuple(out)


def read_graph(nodes: Any, edges: Any) -> tuple[NodeState, ...]:
    """Typed nodes, parents and children filled in, in topological order (ties keep the
    definition order). Raises InvalidCommand for a malformed node, an edge to a node that
    does not exist, a self-loop or a cycle."""
    if not isinstance(nodes, list) or not 1 <= len(nodes) <= MAX_NODES:
        raise InvalidCommand("nodes", f"nodes must be a list of 1 to {MAX_NODES} nodes")
    if not isinstance(edges, list) or len(edges) > MAX_EDGES:
        raise InvalidCommand("edges", f"edges must be a list of at most {MAX_EDGES} edges")
    by_id: dict[str, NodeState] = {}
    for i, raw in enumerate(nodes):
        node = _node(raw, f"nodes[{i}]")
        if node.node_id in by_id:
            raise InvalidCommand(f"nodes[{i}].id", f"node id {node.node_id!r} appears twice")
        by_id[node.node_id] = node
    parents: dict[str, list[str]] = {n: [] for n in by_id}
    children: dict[str, list[str]] = {n: [] for n in by_id}
    for i, raw in enumerate(edges):
        where = f"edges[{i}]"
        if not isinstance(raw, dict):
            raise InvalidCommand(where, f"{where} must be an object")
        source, target = raw.get("source"), raw.get("target")
        if source not in by_id or target not in by_id:
            raise InvalidCommand(where, f"{where} must join two nodes of the run")
        if source == target:
            raise InvalidCommand(where, f"{where} joins node {source!r} to itself")
        if source not in parents[target]:
            parents[target].append(source)
            children[source].append(target)
    for i, node in enumerate(by_id.values()):
        for j, (parent, _) in enumerate(node.conditions):
            if parent not in parents[node.node_id]:
                field = f"nodes[{i}].data.conditions[{j}].parent"
                raise InvalidCommand(field, f"{field} must name a parent of the node")
    order: list[str] = []
    waiting = {n: len(parents[n]) for n in by_id}
    ready = [n for n in by_id if waiting[n] == 0]
    while ready:
        current = ready.pop(0)
        order.append(current)
        for child in children[current]:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    if len(order) != len(by_id):
        raise InvalidCommand("edges", "the edges form a cycle")
    return tuple(
        replace(by_id[n], parents=tuple(parents[n]), children=tuple(children[n])) for n in order
    )


def descendants(state: FlowRunState, node_ids: set[str]) -> set[str]:
    """Every node reachable from ``node_ids`` (the nodes themselves excluded)."""
    found: set[str] = set()
    pending = [child for n in node_ids if (node := state.node(n)) for child in node.children]
    while pending:
        current = pending.pop()
        if current not in found:
            found.add(current)
            node = state.node(current)
            pending.extend(node.children if node else ())
    return found


def nodes_to_retry(state: FlowRunState) -> frozenset[str]:
    """The nodes a retry puts back to queued: every node that did not pass, and every
    node downstream of a failed one; passed nodes elsewhere are kept."""
    failed = {n.node_id for n in state.nodes if n.status == FAILED}
    not_passed = {n.node_id for n in state.nodes if n.status != PASSED}
    return frozenset(not_passed | descendants(state, failed))


# -- evolve ---------------------------------------------------------------------------


def _with_node(state: FlowRunState, node_id: str, **changes: Any) -> tuple[NodeState, ...]:
    return tuple(replace(n, **changes) if n.node_id == node_id else n for n in state.nodes)


def _log(state: FlowRunState, t: int, message: str, step: str | None = None) -> tuple:
    return (*state.logs, LogLine(t, message, step))


def evolve(state: FlowRunState | None, event: e.Event) -> FlowRunState:
    """The FlowRun after ``event``. Pure: no clock, no ids, no I/O.

    Raises ValueError for an event that cannot follow ``state``; decide never emits one.
    """
    data = event.data
    t = event.occurred_at
    if state is None:
        if not isinstance(data, FlowRunCreated):
            raise ValueError(f"{event.type} cannot be the first event of a flowrun")
        try:
            nodes = read_graph(json.loads(data.nodes_json), json.loads(data.edges_json))
        except InvalidCommand as exc:
            raise ValueError(f"flowrun.created carries an unusable graph: {exc}") from exc
        return FlowRunState(
            id=event.aggregate_id,
            account=event.account,
            created_by=event.actor,
            site_id=data.site_id,
            flow_id=data.flow_id,
            title=data.title,
            end_on_fail=data.end_on_fail,
            nodes_json=data.nodes_json,
            edges_json=data.edges_json,
            time_created=t,
            nodes=nodes,
            seq=event.seq,
            time_updated=t,
            logs=(LogLine(t, f"system starting up for run_id: {event.aggregate_id}"),),
        )
    return replace(state, seq=event.seq, time_updated=t, **_changes(state, data, t))


def _changes(s: FlowRunState, data: Payload, t: int) -> dict[str, Any]:  # noqa: C901
    if isinstance(data, NodeStarted):
        node = s.node(data.node_id)
        kind = node.task_type if node else "?"
        return dict(
            status=WORKING,
            time_started=s.time_started if s.time_started is not None else t,
            nodes=_with_node(s, data.node_id, status=WORKING, attempt=data.attempt, time_started=t),
            logs=_log(s, t, f"{kind} node started (attempt {data.attempt})", data.node_id),
        )
    if isinstance(data, NodePassed):
        nodes = _with_node(
            s,
            data.node_id,
            status=PASSED,
            time_completed=t,
            result_json=data.result_json,
            object_id=data.object_id,
        )
        return dict(nodes=nodes, logs=_log(s, t, "node passed", data.node_id))
    if isinstance(data, NodeFailed):
        nodes = _with_node(
            s,
            data.node_id,
            status=FAILED,
            time_completed=t,
            exception=data.exception,
            result_json=data.result_json,
            object_id=data.object_id,
        )
        return dict(nodes=nodes, logs=_log(s, t, f"node failed: {data.exception}", data.node_id))
    if isinstance(data, NodeSkipped):
        nodes = _with_node(s, data.node_id, status=SKIPPED, time_completed=t, reason=data.reason)
        return dict(nodes=nodes, logs=_log(s, t, f"node skipped: {data.reason}", data.node_id))
    if isinstance(data, FlowRunLogged):
        return dict(logs=_log(s, t, data.message, data.step))
    if isinstance(data, FlowRunCompleted):
        return dict(status=data.status, time_completed=t, logs=_log(s, t, f"run {data.status}"))
    if isinstance(data, FlowRunCancelled):
        stop = {QUEUED: "cancelled", WORKING: "stopped: run cancelled"}
        nodes = tuple(
            replace(n, status=SKIPPED, time_completed=t, reason=stop[n.status])
            if n.status in stop
            else n
            for n in s.nodes
        )
        message = "run cancelled" + (f": {data.reason}" if data.reason else "")
        return dict(status=CANCELLED, time_completed=t, nodes=nodes, logs=_log(s, t, message))
    if isinstance(data, FlowRunRetried):
        again = nodes_to_retry(s)
        nodes = tuple(
            NodeState(
                n.node_id,
                n.task_type,
                n.start_if,
                n.threshold,
                n.configs_json,
                n.data_json,
                n.parents,
                n.children,
                attempt=n.attempt,
            )
            if n.node_id in again
            else n
            for n in s.nodes
        )
        return dict(
            status=QUEUED,
            attempt=data.attempt,
            time_started=None,
            time_completed=None,
            nodes=nodes,
            logs=_log(s, t, f"run retried (attempt {data.attempt})"),
        )
    if isinstance(data, FlowRunDeleted):
        return dict(deleted=True)
    if isinstance(data, FlowRunCreated):
        raise ValueError(f"flowrun {s.id} is created twice")
    raise ValueError(f"{data.TYPE} is not a flowrun event")


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
            nodes_json=_canonical(nodes, "nodes"),
            edges_json=_canonical(edges, "edges"),
            end_on_fail=_end_on_fail(data),
            title=c._text(data, "title", required=False) or "",
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
