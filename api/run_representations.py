"""The JSON shapes of FlowRun and CaseRun (``../shared/reference/flowrun-api.txt``).

A FlowRun's nodes are the Flow's nodes as copied into the run, in the Flow's order,
each with its run state written into ``data`` (``status``, ``time_started``,
``time_completed``, and ``attempt``, ``exception``, ``reason``, ``object_id``,
``result``). A CaseRun's steps are the Case's steps, each ``action`` and ``assertion``
with its own ``status``, times and ``exception``. Choices are in ``docs/api.md``.
"""

from __future__ import annotations

import json
from typing import Any

from api.representations import _duration, iso
from streams.domain.caserun import CaseRunState, CaseStepState, PartState
from streams.domain.flowrun import FlowRunState, NodeState


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _node_json(raw: Any, node: NodeState | None) -> Any:
    if not isinstance(raw, dict) or node is None:
        return raw
    data = dict(raw.get("data") or {})
    data.update(
        id=node.node_id,
        status=node.status,
        attempt=node.attempt,
        time_started=iso(node.time_started),
        time_completed=iso(node.time_completed),
        exception=node.exception,
        reason=node.reason,
        object_id=node.object_id,
        result=_loads(node.result_json),
    )
    return {**raw, "data": data}


def flowrun_json(r: FlowRunState) -> dict[str, Any]:
    by_id = {n.node_id: n for n in r.nodes}
    raw_nodes = json.loads(r.nodes_json)
    nodes = [
        _node_json(raw, by_id.get(str(raw.get("id"))) if isinstance(raw, dict) else None)
        for raw in raw_nodes
    ]
    return {
        "id": r.id,
        "user": r.created_by,
        "account": r.account,
        "site": r.site_id,
        "flow": r.flow_id,
        "title": r.title,
        "status": r.status,
        "attempt": r.attempt,
        "nodes": nodes,
        "edges": json.loads(r.edges_json),
        "logs": [
            {"timestamp": iso(line.timestamp), "message": line.message, "step": line.step}
            for line in r.logs
        ],
        "configs": {"end_on_fail": r.end_on_fail},
        "time_created": iso(r.time_created),
        "time_started": iso(r.time_started),
        "time_completed": iso(r.time_completed),
        "time_updated": iso(r.time_updated),
    }


def flowrun_runstatus_json(r: FlowRunState) -> dict[str, Any]:
    return {
        "id": r.id,
        "status": r.status,
        "attempt": r.attempt,
        "time_started": iso(r.time_started),
        "time_completed": iso(r.time_completed),
        "duration_seconds": _duration(r.time_started, r.time_completed),
        "counts": r.counts(),
        "nodes": [
            {
                "id": n.node_id,
                "task_type": n.task_type,
                "status": n.status,
                "attempt": n.attempt,
                "time_started": iso(n.time_started),
                "time_completed": iso(n.time_completed),
                "duration_seconds": _duration(n.time_started, n.time_completed),
                "exception": n.exception,
                "reason": n.reason,
            }
            for n in r.nodes
        ],
    }


def _part_json(raw_json: str | None, part: PartState | None) -> Any:
    raw = _loads(raw_json)
    if part is None:
        return raw
    return {
        **(raw if isinstance(raw, dict) else {}),
        "status": part.status,
        "time_started": iso(part.time_started),
        "time_completed": iso(part.time_completed),
        "exception": part.exception,
    }


def _step_json(step: CaseStepState, raw: Any) -> dict[str, Any]:
    out = dict(raw) if isinstance(raw, dict) else {}
    out["index"] = step.index
    out["action"] = _part_json(step.action_json, step.action)
    out["assertion"] = (
        _part_json(step.assertion_json, step.assertion)
        if step.assertion is not None
        else out.get("assertion")
    )
    out["screenshot"] = step.screenshot
    return out


def caserun_json(r: CaseRunState) -> dict[str, Any]:
    raw_steps = json.loads(r.steps_json)
    return {
        "id": r.id,
        "user": r.created_by,
        "account": r.account,
        "site": r.site_id,
        "case": r.case_id,
        "title": r.title,
        "status": r.status,
        "exception": r.exception,
        "flowrun": r.flowrun_id,
        "node": r.node_id,
        "steps": [_step_json(s, raw) for s, raw in zip(r.steps, raw_steps, strict=True)],
        "time_created": iso(r.time_created),
        "time_started": iso(r.time_started),
        "time_completed": iso(r.time_completed),
        "time_updated": iso(r.time_updated),
    }
