"""The checks of a Flow's graph when it is created: nodes and their task data, edges,
no cycle, and per-parent conditions under which a node can start. Each raises
``InvalidCommand`` naming the first unusable field by its path
(``nodes[2].data.task_type``). Pure; ``streams.domain.flow`` assembles them.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from streams.domain.commands import MAX_ID, InvalidCommand, _utf8
from streams.domain.site import http_url

TASK_TYPES = ("scan", "case", "webhook", "slack", "email", "wait")
START_IF = ("passed", "failed")
CONDITION_STATUSES = ("passed", "failed")
REQUEST_TYPES = ("GET", "POST", "PUT", "PATCH", "DELETE")
MAX_NODES = 100
MAX_EDGES = 500
MAX_CONDITIONS = 4
# The configs a runner reads as seconds; a runner clamps a job to an hour at most.
TIMING_CONFIGS = ("timeout", "min_wait_time", "max_wait_time")
MAX_SECONDS = 3_600
# One address: the runner writes it in a ``To:`` header, so no list, spaces or line breaks.
EMAIL = re.compile(r"[^@\s,;<>\"]+@[^@\s,;<>\"]+")


def _id(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID or not _utf8(value):
        raise InvalidCommand(field, f"{field} must be a non-empty string of at most {MAX_ID}")
    return value


def json_object(value: Any, field: str, *, default: dict[str, Any] | None = None) -> dict[str, Any]:
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
        if not isinstance(email, str) or not EMAIL.fullmatch(email) or len(email) > MAX_ID:
            raise InvalidCommand(f"{where}.email", f"{where}.email must be one email address")


def _check_timing(configs: dict[str, Any], where: str) -> None:
    """``timeout``, ``min_wait_time``, ``max_wait_time``: seconds, or absent. A runner
    silently uses its defaults for anything else, so a typo would go unnoticed."""
    for key in TIMING_CONFIGS:
        value = configs.get(key)
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not 0 <= value <= MAX_SECONDS
            or not math.isfinite(value)
        ):
            raise InvalidCommand(
                f"{where}.{key}", f"{where}.{key} must be seconds from 0 to {MAX_SECONDS}"
            )


def _check_node_data(data: dict[str, Any], where: str) -> None:
    task = data.get("task_type")
    if task not in TASK_TYPES:
        raise InvalidCommand(
            f"{where}.task_type", f"task_type must be one of {', '.join(TASK_TYPES)}"
        )
    _check_timing(
        json_object(data.get("configs"), f"{where}.configs", default={}), f"{where}.configs"
    )
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


def check_nodes(raw: Any) -> list[dict[str, Any]]:
    nodes = _list(raw, "nodes", MAX_NODES)
    if not nodes:
        raise InvalidCommand("nodes", "a flow needs at least one node")
    seen: set[str] = set()
    for i, node in enumerate(nodes):
        where = f"nodes[{i}]"
        node = json_object(node, where)
        node_id = _id(node.get("id"), f"{where}.id")
        if node_id in seen:
            raise InvalidCommand(f"{where}.id", f"node id {node_id!r} appears twice")
        seen.add(node_id)
        _check_node_data(json_object(node.get("data"), f"{where}.data"), f"{where}.data")
    return nodes


def check_edges(raw: Any, node_ids: set[str]) -> dict[str, list[str]]:
    """The parents of each node; InvalidCommand for a dangling, looping or repeated edge."""
    edges = _list(raw if raw is not None else [], "edges", MAX_EDGES)
    parents: dict[str, list[str]] = {node_id: [] for node_id in node_ids}
    seen: set[str] = set()
    for i, edge in enumerate(edges):
        where = f"edges[{i}]"
        edge = json_object(edge, where)
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


def check_acyclic(parents: dict[str, list[str]]) -> None:
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


def check_conditions(nodes: list[dict[str, Any]], parents: dict[str, list[str]]) -> None:
    for i, node in enumerate(nodes):
        where = f"nodes[{i}].data.conditions"
        raw = node["data"].get("conditions")
        if raw is None:
            continue
        for j, cond in enumerate(_list(raw, where, MAX_CONDITIONS)):
            cond = json_object(cond, f"{where}[{j}]")
            parent = cond.get("parent")
            if parent not in parents[node["id"]]:
                raise InvalidCommand(
                    f"{where}[{j}].parent", f"{where}[{j}].parent must name a parent of the node"
                )
            if cond.get("status") not in CONDITION_STATUSES:
                raise InvalidCommand(
                    f"{where}[{j}].status", f"status must be one of {CONDITION_STATUSES}"
                )
        _check_startable(node, parents[node["id"]], where)


def _check_startable(node: dict[str, Any], parents: list[str], where: str) -> None:
    """Refuse conditions under which the orchestrator could never start the node (it
    would always be skipped): see ``_verdict`` in :mod:`streams.orchestration`."""
    start_if = node["data"].get("start_if") or "passed"
    wanted: dict[str, str] = {}
    for j, cond in enumerate(node["data"]["conditions"]):
        parent, status = cond["parent"], cond["status"]
        if wanted.setdefault(parent, status) != status:
            raise InvalidCommand(
                f"{where}[{j}]",
                f"node {node['id']!r} could never start: it wants parent {parent!r} "
                "both passed and failed",
            )
        if start_if == "passed" and status == "failed":
            raise InvalidCommand(
                f"{where}[{j}]",
                f"node {node['id']!r} could never start: with start_if passed a failed "
                f"parent skips it, so it cannot wait for {parent!r} to fail "
                '(use start_if "failed")',
            )
    if start_if == "failed" and parents and all(wanted.get(p) == "passed" for p in parents):
        raise InvalidCommand(
            where,
            f"node {node['id']!r} could never start: start_if failed needs a failed parent, "
            "but its conditions want every parent passed",
        )
