"""How a FlowRun changes with each of its events: ``evolve``, and nothing else.

Pure: the state after an event depends on the state and the event only (no clock, no
ids, no I/O), so the decider, the projector, replay and as-of all fold the same way.
``decide`` in :mod:`streams.domain.flowrun` only emits events that fold here.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from streams.domain import events as e
from streams.domain.command_fields import InvalidCommand
from streams.domain.events import Payload
from streams.domain.flowrun_messages import (
    FlowRunCancelled,
    FlowRunCompleted,
    FlowRunCreated,
    FlowRunDeleted,
    FlowRunLogged,
    FlowRunRetried,
    NodeFailed,
    NodePassed,
    NodeSkipped,
    NodeStarted,
)
from streams.domain.flowrun_state import (
    CANCELLED,
    FAILED,
    PASSED,
    QUEUED,
    SKIPPED,
    WORKING,
    FlowRunState,
    LogLine,
    NodeState,
    nodes_to_retry,
    read_graph,
)


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
        # Only what the last attempt recorded goes: the node's definition (conditions
        # included) and its attempt count stay.
        nodes = tuple(
            replace(
                n,
                status=QUEUED,
                time_started=None,
                time_completed=None,
                exception=None,
                reason=None,
                result_json=None,
                object_id=None,
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
