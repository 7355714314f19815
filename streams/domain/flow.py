"""The Flow aggregate: a DAG of task nodes, validated once when it is created.

A node is ``{"id", "data": {"task_type", "configs", "start_if", "conditions",
"threshold", ...}, "position", ...}`` and an edge ``{"id", "source", "target", ...}``,
as in the reference FlowRun. Fields the validation does not know (``position``,
``measured``, ``type`` of an edge) are kept as given.

Start condition, checked by the orchestrator when every parent has finished:
``data.start_if`` is ``"passed"`` (the default, also for null: every parent passed)
or ``"failed"`` (at least one parent failed). ``data.conditions`` optionally narrows
it per parent: a list of at most ``MAX_CONDITIONS`` ``{"parent": <node id>, "status":
"passed" | "failed"}``, each naming a parent of the node (an edge into it), all of
which must hold. A root node (no parents) starts when the run starts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from streams.domain import commands as c
from streams.domain import events as e
from streams.domain.commands import MAX_ID, InvalidCommand, _utf8
from streams.domain.definition import canonical_json, decoded, require_live, require_new
from streams.domain.envelope import event
from streams.domain.rejection import INVALID, Rejected
from streams.domain.site import http_url

AGGREGATE = "flow"

TASK_TYPES = ("scan", "case", "webhook", "slack", "email", "wait")
START_IF = ("passed", "failed")
CONDITION_STATUSES = ("passed", "failed")
REQUEST_TYPES = ("GET", "POST", "PUT", "PATCH", "DELETE")
MAX_NODES = 100
MAX_EDGES = 500
MAX_CONDITIONS = 4


@dataclass(frozen=True, slots=True)
class CreateFlow(c.Body):
    NAME: ClassVar[str] = "flow.create"
    name: str
    nodes_json: str
    edges_json: str
    configs_json: str = "{}"


@dataclass(frozen=True, slots=True)
class DeleteFlow(c.Body):
    NAME: ClassVar[str] = "flow.delete"


# -- validation -------------------------------------------------------------------------


def _id(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID or not _utf8(value):
        raise InvalidCommand(field, f"{field} must be a non-empty string of at most {MAX_ID}")
    return value


def _object(value: Any, field: str, *, default: dict[str, Any] | None = None) -> dict[str, Any]:
    if value is None and default is not None:
        return default
    if not isinstance(value, dict):
        raise InvalidCommand(field, f"{field} must be an object")
    return value


def _list(value: Any, field: str, limit: int) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidCommand(field, f"{field} must be a list")
    if len(value) > limit:
        raise InvalidCommand(field, f"{field} has more than {limit} items")
    return value


def _json_object_or_text(data: dict[str, Any], key: str, where: str) -> None:
    """``headers`` and ``payload`` may be an object or JSON text of one (as in the reference)."""
    value = data.get(key)
    if value is None or isinstance(value, dict):
        return
    if isinstance(value, str):
        try:
            parsed = json.loads(value) if value.strip() else {}
        except (ValueError, RecursionError):
            parsed = None
        if isinstance(parsed, dict):
            return
    raise InvalidCommand(f"{where}.{key}", f"{where}.{key} must be a JSON object")


def _check_task(data: dict[str, Any], where: str) -> None:
    """What each task type needs from the node's ``data``."""
    task = data["task_type"]
    if task == "case":
        _id(data.get("case_id"), f"{where}.case_id")
    if task in ("webhook", "slack"):
        http_url(data.get("uri"), f"{where}.uri")
        method = data.get("request_type", "POST" if task == "slack" else "GET")
        if method not in REQUEST_TYPES:
            raise InvalidCommand(
                f"{where}.request_type", f"request_type must be one of {', '.join(REQUEST_TYPES)}"
            )
        _json_object_or_text(data, "headers", where)
        _json_object_or_text(data, "payload", where)
    if task == "email":
        email = data.get("email")
        if not isinstance(email, str) or "@" not in email or len(email) > MAX_ID:
            raise InvalidCommand(f"{where}.email", f"{where}.email must be an email address")


def _check_node_data(data: dict[str, Any], where: str) -> None:
    task = data.get("task_type")
    if task not in TASK_TYPES:
        raise InvalidCommand(
            f"{where}.task_type", f"task_type must be one of {', '.join(TASK_TYPES)}"
        )
    _object(data.get("configs"), f"{where}.configs", default={})
    kinds = data.get("type")
    if kinds is not None:
        for j, kind in enumerate(_list(kinds, f"{where}.type", 20)):
            if not isinstance(kind, str) or not kind or len(kind) > MAX_ID:
                raise InvalidCommand(f"{where}.type[{j}]", f"{where}.type[{j}] must be a string")
    threshold = data.get("threshold")
    if threshold is not None and (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not 0 <= threshold <= 100
    ):
        raise InvalidCommand(f"{where}.threshold", "threshold must be a number from 0 to 100")
    start_if = data.get("start_if")
    if start_if is not None and start_if not in START_IF:
        raise InvalidCommand(f"{where}.start_if", f"start_if must be null or one of {START_IF}")
    _check_task(data, where)


def _check_nodes(raw: Any) -> list[dict[str, Any]]:
    nodes = _list(raw, "nodes", MAX_NODES)
    if not nodes:
        raise InvalidCommand("nodes", "a flow needs at least one node")
    seen: set[str] = set()
    for i, node in enumerate(nodes):
        where = f"nodes[{i}]"
        node = _object(node, where)
        node_id = _id(node.get("id"), f"{where}.id")
        if node_id in seen:
            raise InvalidCommand(f"{where}.id", f"node id {node_id!r} appears twice")
        seen.add(node_id)
        _check_node_data(_object(node.get("data"), f"{where}.data"), f"{where}.data")
    return nodes


def _check_edges(raw: Any, node_ids: set[str]) -> dict[str, list[str]]:
    """The parents of each node; InvalidCommand for a dangling, looping or repeated edge."""
    edges = _list(raw if raw is not None else [], "edges", MAX_EDGES)
    parents: dict[str, list[str]] = {node_id: [] for node_id in node_ids}
    seen: set[str] = set()
    for i, edge in enumerate(edges):
        where = f"edges[{i}]"
        edge = _object(edge, where)
        edge_id = _id(edge.get("id"), f"{where}.id")
        if edge_id in seen:
            raise InvalidCommand(f"{where}.id", f"edge id {edge_id!r} appears twice")
        seen.add(edge_id)
        source = _id(edge.get("source"), f"{where}.source")
        target = _id(edge.get("target"), f"{where}.target")
        for key, end in (("source", source), ("target", target)):
            if end not in node_ids:
                raise InvalidCommand(f"{where}.{key}", f"{where}.{key} names no node ({end!r})")
        if source == target:
            raise InvalidCommand(f"{where}.target", f"{where} connects node {source!r} to itself")
        if source in parents[target]:
            raise InvalidCommand(where, f"{where} repeats the edge {source!r} → {target!r}")
        parents[target].append(source)
    return parents


def _check_acyclic(parents: dict[str, list[str]]) -> None:
    """Kahn's algorithm: whatever cannot be ordered lies on (or after) a cycle."""
    children: dict[str, list[str]] = {node: [] for node in parents}
    waiting = {node: len(ps) for node, ps in parents.items()}
    for node, ps in parents.items():
        for parent in ps:
            children[parent].append(node)
    ready = [node for node, n in waiting.items() if n == 0]
    while ready:
        node = ready.pop()
        for child in children[node]:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    stuck = sorted(node for node, n in waiting.items() if n > 0)
    if stuck:
        raise InvalidCommand("edges", f"the edges form a cycle through nodes {', '.join(stuck)}")


def _check_conditions(nodes: list[dict[str, Any]], parents: dict[str, list[str]]) -> None:
    for i, node in enumerate(nodes):
        where = f"nodes[{i}].data.conditions"
        raw = node["data"].get("conditions")
        if raw is None:
            continue
        for j, cond in enumerate(_list(raw, where, MAX_CONDITIONS)):
            cond = _object(cond, f"{where}[{j}]")
            parent = cond.get("parent")
            if parent not in parents[node["id"]]:
                raise InvalidCommand(
                    f"{where}[{j}].parent", f"{where}[{j}].parent must name a parent of the node"
                )
            if cond.get("status") not in CONDITION_STATUSES:
                raise InvalidCommand(
                    f"{where}[{j}].status", f"status must be one of {CONDITION_STATUSES}"
                )


def parse_create(data: Mapping[str, Any]) -> CreateFlow:
    """A CreateFlow from ``{name, nodes, edges, configs?}``; InvalidCommand naming the
    first unusable field by its path (``nodes[2].data.task_type``)."""
    name = c._text(data, "name", required=True, limit=MAX_ID)
    nodes = _check_nodes(decoded("nodes", data.get("nodes")))
    edges = decoded("edges", data.get("edges"))
    parents = _check_edges(edges, {n["id"] for n in nodes})
    _check_acyclic(parents)
    _check_conditions(nodes, parents)
    configs = _object(decoded("configs", data.get("configs")), "configs", default={})
    end_on_fail = configs.get("end_on_fail", False)
    if not isinstance(end_on_fail, bool):
        raise InvalidCommand("configs.end_on_fail", "configs.end_on_fail must be true or false")
    return CreateFlow(
        name=name,
        nodes_json=canonical_json("nodes", nodes),
        edges_json=canonical_json("edges", edges if edges is not None else []),
        configs_json=canonical_json("configs", configs),
    )


BODY_PARSERS: dict[str, Callable[[Mapping[str, Any]], c.Body]] = {
    CreateFlow.NAME: parse_create,
    DeleteFlow.NAME: lambda data: DeleteFlow(),
}


# -- state --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlowState:
    """A Flow after its events; nodes, edges and configs are canonical JSON text."""

    id: str
    account: str
    name: str
    nodes_json: str
    edges_json: str
    configs_json: str
    created_by: str
    time_created: int
    seq: int = 0
    deleted: bool = False
    time_deleted: int | None = None


def evolve(state: FlowState | None, ev: e.Event) -> FlowState:
    """The Flow after ``ev``; ValueError for an event that cannot follow ``state``."""
    data = ev.data
    if state is None:
        if not isinstance(data, e.FlowCreated):
            raise ValueError(f"{ev.type} cannot be the first event of a flow")
        return FlowState(
            ev.aggregate_id,
            ev.account,
            data.name,
            data.nodes_json,
            data.edges_json,
            data.configs_json,
            ev.actor,
            ev.occurred_at,
            ev.seq,
        )
    if isinstance(data, e.FlowDeleted):
        return replace(state, seq=ev.seq, deleted=True, time_deleted=ev.occurred_at)
    raise ValueError(f"{ev.type} cannot follow seq {state.seq} of flow {state.id}")


def decide(state: FlowState | None, cmd: c.Command) -> list[e.Event]:
    """The events of a flow command; Rejected when it does not fit ``state``."""
    body = cmd.body
    if isinstance(body, CreateFlow):
        require_new(AGGREGATE, state, cmd)
        created = e.FlowCreated(body.name, body.nodes_json, body.edges_json, body.configs_json)
        return [event(AGGREGATE, 1, cmd, created)]
    if isinstance(body, DeleteFlow):
        live: FlowState = require_live(AGGREGATE, state, cmd)
        return [event(AGGREGATE, live.seq + 1, cmd, e.FlowDeleted())]
    raise Rejected(INVALID, f"{cmd.name} is not a flow command")
