"""A FlowRun's state and its graph: statuses, nodes, and reading a Flow's nodes and edges.

:func:`read_graph` validates a graph (known task types, edges between existing nodes, no
cycle, limits on nodes, edges and conditions) and returns typed :class:`NodeState`
values in topological order; ``evolve`` and ``decide`` in :mod:`streams.domain.flowrun`
build on them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from streams.domain import commands as c
from streams.domain.commands import InvalidCommand

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
        configs_json=c.canonical(configs, f"{where}.data.configs"),
        data_json=c.canonical(data, f"{where}.data"),
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
