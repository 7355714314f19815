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
which must hold. A root node (no parents) starts when the run starts. Conditions under
which a node could never start (a parent wanted failed with ``start_if`` passed, one
parent wanted both ways, ``start_if`` failed with every parent wanted passed) are
refused at create; Flows already recorded are read as they are.

That a ``case`` node's ``case_id`` names a Case of the account is checked by the API
against the read model: ``decide`` sees one aggregate only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from streams.domain import commands as c
from streams.domain import events as e
from streams.domain.commands import MAX_ID, InvalidCommand
from streams.domain.definition import canonical_json, decoded, require_live, require_new
from streams.domain.envelope import event
from streams.domain.flow_graph import (  # noqa: F401  (the limits, part of this module's API)
    CONDITION_STATUSES,
    MAX_CONDITIONS,
    MAX_EDGES,
    MAX_NODES,
    MAX_SECONDS,
    REQUEST_TYPES,
    START_IF,
    TASK_TYPES,
    TIMING_CONFIGS,
    check_acyclic,
    check_conditions,
    check_edges,
    check_nodes,
    json_object,
)
from streams.domain.rejection import INVALID, Rejected

AGGREGATE = "flow"


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


def parse_create(data: Mapping[str, Any]) -> CreateFlow:
    """A CreateFlow from ``{name, nodes, edges, configs?}``; InvalidCommand naming the
    first unusable field by its path (``nodes[2].data.task_type``)."""
    name = c._text(data, "name", required=True, limit=MAX_ID)
    nodes = check_nodes(decoded("nodes", data.get("nodes")))
    edges = decoded("edges", data.get("edges"))
    parents = check_edges(edges, {n["id"] for n in nodes})
    check_acyclic(parents)
    check_conditions(nodes, parents)
    configs = json_object(decoded("configs", data.get("configs")), "configs", default={})
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
