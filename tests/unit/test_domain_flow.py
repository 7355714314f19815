"""Flow validation (graph, task types, limits, conditions) and its decide/evolve."""

from __future__ import annotations

import json
from typing import Any

import pytest

from streams.domain import aggregates, flow
from streams.domain.commands import Command, InvalidCommand, body_to_payload, parse_body
from streams.domain.rejection import Rejected


def _node(node_id: str, task: str = "scan", **data: Any) -> dict[str, Any]:
    return {"id": node_id, "data": {"task_type": task, **data}, "position": {"x": 0, "y": 0}}


def _edge(edge_id: str, source: str, target: str) -> dict[str, Any]:
    return {"id": edge_id, "source": source, "target": target, "type": "smoothstep"}


def _fields(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "name": "scan then notify",
        "nodes": [
            _node("1", threshold=95, type=["html", "vrt"], configs={"timeout": 30}),
            _node("2", "webhook", uri="https://hooks.example.com/x", request_type="POST"),
            _node("3", "slack", uri="https://hooks.slack.com/x", start_if="failed"),
        ],
        "edges": [_edge("e1", "1", "2"), _edge("e2", "1", "3")],
        "configs": {"end_on_fail": True},
    }
    fields.update(changes)
    return fields


def _invalid(fields: dict[str, Any]) -> InvalidCommand:
    with pytest.raises(InvalidCommand) as info:
        parse_body("flow.create", fields)
    return info.value


def test_a_valid_flow_parses_to_canonical_json_and_round_trips() -> None:
    body = parse_body("flow.create", _fields())
    assert isinstance(body, flow.CreateFlow)
    nodes = json.loads(body.nodes_json)
    assert [n["id"] for n in nodes] == ["1", "2", "3"]
    assert nodes[0]["position"] == {"x": 0, "y": 0}, "unknown fields are kept"
    assert json.loads(body.configs_json) == {"end_on_fail": True}
    assert parse_body("flow.create", body_to_payload(body)) == body


def test_a_cycle_is_refused() -> None:
    edges = [_edge("e1", "1", "2"), _edge("e2", "2", "3"), _edge("e3", "3", "1")]
    error = _invalid(_fields(edges=edges))
    assert error.field == "edges"
    assert "cycle" in error.message


def test_a_self_loop_and_a_repeated_edge_are_refused() -> None:
    assert _invalid(_fields(edges=[_edge("e1", "2", "2")])).field == "edges[0].target"
    twice = [_edge("e1", "1", "2"), _edge("e2", "1", "2")]
    assert _invalid(_fields(edges=twice)).field == "edges[1]"


def test_a_dangling_edge_names_its_end() -> None:
    assert _invalid(_fields(edges=[_edge("e1", "1", "9")])).field == "edges[0].target"
    assert _invalid(_fields(edges=[_edge("e1", "9", "1")])).field == "edges[0].source"


def test_duplicate_ids_are_refused() -> None:
    nodes = [_node("1"), _node("1")]
    assert _invalid(_fields(nodes=nodes, edges=[])).field == "nodes[1].id"
    edges = [_edge("e1", "1", "2"), _edge("e1", "1", "3")]
    assert _invalid(_fields(edges=edges)).field == "edges[1].id"


def test_an_unknown_task_type_is_refused_with_its_path() -> None:
    error = _invalid(_fields(nodes=[_node("1", "teleport")], edges=[]))
    assert error.field == "nodes[0].data.task_type"


@pytest.mark.parametrize(
    ("node", "field"),
    [
        (_node("1", "case"), "nodes[0].data.case_id"),
        (_node("1", "webhook"), "nodes[0].data.uri"),
        (_node("1", "webhook", uri="ftp://x.example"), "nodes[0].data.uri"),
        (
            _node("1", "webhook", uri="https://x.example", request_type="BREW"),
            "nodes[0].data.request_type",
        ),
        (_node("1", "webhook", uri="https://x.example", headers="{nope"), "nodes[0].data.headers"),
        (_node("1", "email"), "nodes[0].data.email"),
        (_node("1", threshold=101), "nodes[0].data.threshold"),
        (_node("1", start_if="sometimes"), "nodes[0].data.start_if"),
        (_node("1", configs=[1]), "nodes[0].data.configs"),
        ({"id": "1"}, "nodes[0].data"),
    ],
)
def test_task_fields_are_checked(node: dict[str, Any], field: str) -> None:
    assert _invalid(_fields(nodes=[node], edges=[])).field == field


def test_limits_on_nodes_and_conditions() -> None:
    many = [_node(str(i)) for i in range(flow.MAX_NODES + 1)]
    assert _invalid(_fields(nodes=many, edges=[])).field == "nodes"
    assert _invalid(_fields(nodes=[], edges=[])).field == "nodes"
    conditions = [{"parent": "1", "status": "passed"}] * (flow.MAX_CONDITIONS + 1)
    nodes = [_node("1"), _node("2", "wait", conditions=conditions)]
    error = _invalid(_fields(nodes=nodes, edges=[_edge("e1", "1", "2")]))
    assert error.field == "nodes[1].data.conditions"


def test_a_condition_must_name_a_parent_and_a_status() -> None:
    nodes = [
        _node("1"),
        _node("2"),
        _node("3", "wait", conditions=[{"parent": "2", "status": "passed"}]),
    ]
    edges = [_edge("e1", "1", "3")]
    assert _invalid(_fields(nodes=nodes, edges=edges)).field == "nodes[2].data.conditions[0].parent"
    nodes[2]["data"]["conditions"] = [{"parent": "1", "status": "maybe"}]
    assert _invalid(_fields(nodes=nodes, edges=edges)).field == "nodes[2].data.conditions[0].status"
    nodes[2]["data"].update(start_if="failed", conditions=[{"parent": "1", "status": "failed"}])
    parse_body("flow.create", _fields(nodes=nodes, edges=edges))


def test_flow_fields_are_checked() -> None:
    assert _invalid(_fields(name="")).field == "name"
    assert _invalid(_fields(configs={"end_on_fail": "yes"})).field == "configs.end_on_fail"
    assert _invalid(_fields(nodes="[")).field == "nodes"
    assert _invalid(_fields(edges={"id": "e1"})).field == "edges"


def _cmd(body: Any, account: str = "acme", seq_time: int = 1_000) -> Command:
    return Command("c1", "flow", "f1", seq_time, account, "token:ci", "c1", "c1", body)


def test_decide_and_evolve_create_then_delete() -> None:
    body = parse_body("flow.create", _fields())
    (created,) = aggregates.decide(None, _cmd(body))
    state = aggregates.evolve(None, created)
    assert isinstance(state, flow.FlowState)
    assert (state.seq, state.name, state.created_by, state.deleted) == (
        1,
        body.name,
        "token:ci",
        False,
    )
    with pytest.raises(Rejected) as twice:
        aggregates.decide(state, _cmd(body))
    assert twice.value.code == "already_exists"
    with pytest.raises(Rejected) as other:
        aggregates.decide(state, _cmd(flow.DeleteFlow(), account="other"))
    assert other.value.code == "not_found"
    (deleted,) = aggregates.decide(state, _cmd(flow.DeleteFlow(), seq_time=2_000))
    gone = aggregates.evolve(state, deleted)
    assert (gone.seq, gone.deleted, gone.time_deleted) == (2, True, 2_000)
    with pytest.raises(Rejected) as again:
        aggregates.decide(gone, _cmd(flow.DeleteFlow()))
    assert again.value.code == "not_found"
    with pytest.raises(ValueError):
        aggregates.evolve(None, deleted)
