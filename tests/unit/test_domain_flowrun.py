"""The FlowRun state machine by example: creation from a Flow's graph, node reports,
completion, cancel, retry from the failed nodes, delete, and what is refused."""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

import pytest

from streams.domain import commands as c
from streams.domain import events as e
from streams.domain import flowrun as f
from streams.domain.rejection import ALREADY_EXISTS, INVALID, INVALID_STATE, NOT_FOUND, Rejected

RID = "run-1"
T0 = 1_767_261_600_000_000


def node(node_id: str, task_type: str = "scan", start_if: str | None = None, **data: Any) -> dict:
    configs = {"end_on_fail": True, "timeout": 300, "min_wait_time": 3, "max_wait_time": 30}
    body = {"task_type": task_type, "start_if": start_if, "configs": configs, "status": "queued"}
    return {"id": node_id, "type": "basic", "data": {**body, **data}}


def edge(source: str, target: str) -> dict:
    return {"id": f"{source}-{target}", "source": source, "target": target}


def create_payload(nodes: list[dict], edges: list[dict], end_on_fail: bool = True) -> dict:
    return {
        "site_id": "site-1",
        "flow_id": "flow-1",
        "title": "Dual Step Flow",
        "nodes": nodes,
        "edges": edges,
        "configs": {"end_on_fail": end_on_fail},
    }


class Run:
    """One FlowRun driven through decide/evolve, keeping every event."""

    def __init__(self) -> None:
        self.state: f.FlowRunState | None = None
        self.events: list[e.Event] = []
        self.clock = T0

    def cmd(self, body: c.Body, account: str = "acme") -> c.Command:
        self.clock += 1_000_000
        n = len(self.events) + 1
        return c.Command(f"cmd-{n}", f.AGGREGATE, RID, self.clock, account, "t", "corr", "x", body)

    def do(self, name: str, account: str = "acme", **payload: Any) -> list[str]:
        events = f.decide(self.state, self.cmd(f.parse_flowrun_body(name, payload), account))
        for event in events:
            self.state = f.evolve(self.state, event)
        self.events += events
        return [ev.type for ev in events]

    def reject(self, name: str, account: str = "acme", **payload: Any) -> Rejected:
        before = self.state
        with pytest.raises(Rejected) as info:
            f.decide(self.state, self.cmd(f.parse_flowrun_body(name, payload), account))
        assert self.state is before
        return info.value

    @property
    def s(self) -> f.FlowRunState:
        assert self.state is not None
        return self.state

    def status(self, node_id: str) -> str:
        found = self.s.node(node_id)
        assert found is not None
        return found.status


def chain() -> Run:
    run = Run()
    nodes = [node("1"), node("2", "case", case_id="case-1"), node("3", "webhook")]
    run.do("flowrun.create", **create_payload(nodes, [edge("1", "2"), edge("2", "3")]))
    return run


def test_create_copies_the_graph_with_every_node_queued() -> None:
    run = chain()
    s = run.s
    assert (s.status, s.site_id, s.flow_id, s.end_on_fail, s.seq) == (
        "queued",
        "site-1",
        "flow-1",
        True,
        1,
    )
    assert [n.node_id for n in s.nodes] == ["1", "2", "3"]
    assert all(n.status == "queued" and n.time_started is None for n in s.nodes)
    assert s.node("2") is not None and s.node("2").parents == ("1",)  # type: ignore[union-attr]
    assert json.loads(s.node("2").data_json)["case_id"] == "case-1"  # type: ignore[union-attr]
    assert json.loads(s.node("1").configs_json)["timeout"] == 300  # type: ignore[union-attr]
    assert s.logs[0].message == f"system starting up for run_id: {RID}"
    assert run.reject("flowrun.create", **create_payload([node("1")], [])).code == ALREADY_EXISTS


def test_nodes_are_kept_in_topological_order() -> None:
    run = Run()
    nodes = [node("c"), node("b"), node("a")]
    run.do("flowrun.create", **create_payload(nodes, [edge("a", "b"), edge("b", "c")]))
    assert [n.node_id for n in run.s.nodes] == ["a", "b", "c"]


def test_a_chain_runs_to_passed_with_times() -> None:
    run = chain()
    for node_id in ("1", "2", "3"):
        run.do("flowrun.node_start", node_id=node_id)
        assert run.s.status == "working" and run.status(node_id) == "working"
        run.do("flowrun.node_pass", node_id=node_id, result={"similarity": 99.5})
    assert run.do("flowrun.complete", status="passed") == ["flowrun.completed"]
    s = run.s
    assert s.status == "passed" and s.time_completed == run.clock
    assert all(n.time_started and n.time_completed and n.attempt == 1 for n in s.nodes)
    assert s.time_started == s.nodes[0].time_started
    assert [ev.seq for ev in run.events] == list(range(1, len(run.events) + 1))


def test_reports_that_do_not_fit_are_refused() -> None:
    run = chain()
    assert run.reject("flowrun.node_pass", node_id="1").code == INVALID_STATE  # not working
    assert run.reject("flowrun.node_start", node_id="2").code == INVALID_STATE  # parent queued
    assert run.reject("flowrun.node_start", node_id="9").code == NOT_FOUND
    run.do("flowrun.node_start", node_id="1")
    assert run.reject("flowrun.node_start", node_id="1").code == INVALID_STATE  # twice
    assert run.reject("flowrun.node_skip", node_id="1", reason="x").code == INVALID_STATE
    assert run.reject("flowrun.complete", status="passed").code == INVALID_STATE  # busy
    run.do("flowrun.node_fail", node_id="1", exception="HTTP 500")
    run.do("flowrun.node_skip", node_id="2", reason="a parent failed")
    run.do("flowrun.node_skip", node_id="3", reason="no parent ran")
    assert run.reject("flowrun.complete", status="passed").code == INVALID_STATE  # it failed
    run.do("flowrun.complete", status="failed")
    assert run.reject("flowrun.log", message="late").code == INVALID_STATE
    assert run.reject("flowrun.cancel").code == INVALID_STATE
    assert run.reject("flowrun.node_start", node_id="2", account="globex").code == NOT_FOUND


def test_cancel_stops_working_nodes_and_skips_queued_ones() -> None:
    run = chain()
    run.do("flowrun.node_start", node_id="1")
    assert run.do("flowrun.cancel", reason="user") == ["flowrun.cancelled"]
    s = run.s
    assert s.status == "cancelled" and s.time_completed == run.clock
    assert [(n.status, n.reason) for n in s.nodes] == [
        ("skipped", "stopped: run cancelled"),
        ("skipped", "cancelled"),
        ("skipped", "cancelled"),
    ]
    # A runner's late report after the cancel is refused, not applied.
    assert run.reject("flowrun.node_pass", node_id="1").code == INVALID_STATE
    assert run.reject("flowrun.retry").code == INVALID_STATE


def test_retry_keeps_passed_nodes_and_requeues_the_failed_ones_and_below() -> None:
    run = Run()
    nodes = [node("a"), node("b"), node("c"), node("d"), node("e", "slack", "failed")]
    edges = [edge("a", "b"), edge("a", "c"), edge("c", "d"), edge("c", "e")]
    run.do("flowrun.create", **create_payload(nodes, edges, end_on_fail=False))
    run.do("flowrun.node_start", node_id="a")
    run.do("flowrun.node_pass", node_id="a")
    run.do("flowrun.node_start", node_id="b")
    run.do("flowrun.node_start", node_id="c")
    run.do("flowrun.node_pass", node_id="b")
    run.do("flowrun.node_fail", node_id="c", exception="boom")
    run.do("flowrun.node_skip", node_id="d", reason="a parent failed")
    run.do("flowrun.node_start", node_id="e")
    run.do("flowrun.node_pass", node_id="e")  # the failure branch ran
    run.do("flowrun.complete", status="failed")
    assert f.nodes_to_retry(run.s) == {"c", "d", "e"}
    assert run.do("flowrun.retry") == ["flowrun.retried"]
    s = run.s
    assert (s.status, s.attempt, s.time_completed) == ("queued", 2, None)
    assert [run.status(n) for n in "abcde"] == ["passed", "passed", "queued", "queued", "queued"]
    c_node = s.node("c")
    assert c_node is not None and c_node.exception is None and c_node.attempt == 1
    run.do("flowrun.node_start", node_id="c")
    assert run.s.node("c").attempt == 2  # type: ignore[union-attr]
    assert run.reject("flowrun.retry").code == INVALID_STATE


def test_retry_keeps_a_requeued_nodes_definition_and_clears_its_last_attempt() -> None:
    run = Run()
    conditions = [{"parent": "a", "status": "failed"}]
    nodes = [node("a"), node("b"), node("c", start_if="always", conditions=conditions)]
    run.do("flowrun.create", **create_payload(nodes, [edge("a", "c"), edge("b", "c")], False))
    run.do("flowrun.node_start", node_id="a")
    run.do("flowrun.node_fail", node_id="a", exception="x")
    run.do("flowrun.node_start", node_id="b")
    run.do("flowrun.node_pass", node_id="b")
    run.do("flowrun.node_start", node_id="c")
    run.do("flowrun.node_fail", node_id="c", exception="y")
    run.do("flowrun.complete", status="failed")
    before = run.s.node("c")
    assert before is not None and before.conditions == (("a", "failed"),)
    run.do("flowrun.retry")
    after = run.s.node("c")
    assert after is not None
    # The definition stays (the orchestrator reads the conditions to start the node) ...
    assert (after.conditions, after.start_if, after.parents, after.data_json) == (
        before.conditions, before.start_if, before.parents, before.data_json,
    )  # fmt: skip
    # ... and what the failed attempt recorded goes.
    assert (after.status, after.exception, after.time_started, after.time_completed) == (
        "queued", None, None, None,
    )  # fmt: skip
    assert after.attempt == before.attempt == 1


def test_delete_cancels_an_active_run_then_hides_it() -> None:
    run = chain()
    assert run.do("flowrun.delete") == ["flowrun.cancelled", "flowrun.deleted"]
    assert run.reject("flowrun.node_start", node_id="1").code == NOT_FOUND
    assert run.reject("flowrun.delete").code == NOT_FOUND
    assert run.reject("flowrun.create", **create_payload([node("1")], [])).code == ALREADY_EXISTS


def test_log_lines_carry_time_message_and_step() -> None:
    run = chain()
    run.do("flowrun.log", message="hello", step="1")
    line = run.s.logs[-1]
    assert (line.timestamp, line.message, line.step) == (run.clock, "hello", "1")
    assert run.reject("flowrun.log", message="x", step="nope").code == NOT_FOUND


def test_an_unknown_body_is_refused() -> None:
    run = chain()
    with pytest.raises(Rejected) as info:
        f.decide(run.state, run.cmd(c.StartProcess()))
    assert info.value.code == INVALID


@pytest.mark.parametrize(
    ("nodes", "edges", "field"),
    [
        ([], [], "nodes"),
        ([node("1"), node("1")], [], "nodes[1].id"),
        ([node("1", "fax")], [], "nodes[0].data.task_type"),
        ([node("1", start_if="sometimes")], [], "nodes[0].data.start_if"),
        ([node("1", threshold=101)], [], "nodes[0].data.threshold"),
        ([{"id": "1"}], [], "nodes[0].data"),
        ([node("1")], [edge("1", "2")], "edges[0]"),
        ([node("1")], [edge("1", "1")], "edges[0]"),
        ([node("1"), node("2")], [edge("1", "2"), edge("2", "1")], "edges"),
        (
            [node("1"), node("2", conditions=[{"parent": "9", "status": "passed"}])],
            [edge("1", "2")],
            "nodes[1].data.conditions[0].parent",
        ),
        (
            [node("1", conditions=[{"parent": "1", "status": "maybe"}])],
            [],
            "nodes[0].data.conditions[0]",
        ),
    ],
)
def test_create_refuses_a_graph_that_cannot_run(nodes: list, edges: list, field: str) -> None:
    with pytest.raises(c.InvalidCommand) as info:
        f.parse_flowrun_body("flowrun.create", create_payload(nodes, edges))
    assert info.value.field == field


def test_bodies_survive_the_wire_form() -> None:
    """parse(body_to_payload(body)) == body: the decider reads what the API wrote."""
    nodes = [node("1", threshold=95), node("2", "slack", "always")]
    bodies = [
        f.parse_flowrun_body("flowrun.create", create_payload(nodes, [edge("1", "2")], False)),
        f.NodeStart("1"),
        f.NodePass("1", '{"a":1}', "caserun-1"),
        f.NodeFail("1", "boom", None, None),
        f.NodeSkip("2", "a parent failed"),
        f.LogFlowRun("hi", "1"),
        f.CompleteFlowRun("failed"),
        f.CancelFlowRun("user"),
        f.RetryFlowRun(),
        f.DeleteFlowRun(),
    ]
    assert {type(b) for b in bodies} == set(f.BODIES)
    for body in bodies:
        assert f.parse_flowrun_body(body.NAME, c.body_to_payload(body)) == body
    with pytest.raises(c.InvalidCommand):
        f.parse_flowrun_body("flowrun.teleport", {})


def test_payload_fields_are_avro_primitives_and_types_unique() -> None:
    """Each payload maps onto an Avro record without serde special cases."""
    allowed = {"str", "int", "bool", "float", "str | None", "int | None", "float | None"}
    types = [cls.TYPE for cls in f.PAYLOADS]
    assert len(set(types)) == len(types) and all(t.startswith("flowrun.") for t in types)
    assert all(e.PAYLOAD_TYPES[cls.TYPE] is cls for cls in f.PAYLOADS), "registered"
    for cls in f.PAYLOADS:
        assert {str(fl.type) for fl in fields(cls)} <= allowed, cls
