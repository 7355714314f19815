"""The orchestrator's pure decision, by example and by property.

Examples follow the issue's end-to-end scenarios without a broker: a Flow
scan → case → webhook runs to passed; end_on_fail skips the rest; a condition on a
failed parent runs its branch; cancel mid-run; retry from the failed node. Properties
drive random graphs with random node outcomes through ``next_steps`` and the FlowRun
decider, as the orchestrator and the runners would.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams import orchestration as o
from streams.domain import caserun as cr
from streams.domain import commands as c
from streams.domain import events as e
from streams.domain import flowrun as f

RID = "run-1"
T0 = 1_767_261_600_000_000


def node(node_id: str, task_type: str = "scan", start_if: str | None = None) -> dict:
    return {"id": node_id, "data": {"task_type": task_type, "start_if": start_if, "configs": {}}}


class Driver:
    """A FlowRun with the orchestrator's loop: apply next_steps, runners report outcomes."""

    def __init__(self, nodes: list[dict], edges: list[tuple[str, str]], end_on_fail: bool) -> None:
        self.state: f.FlowRunState | None = None
        self.events: list[e.Event] = []
        self.clock = T0
        self.jobs: list[o.Job] = []
        self.apply(
            f.parse_flowrun_body(
                "flowrun.create",
                {
                    "site_id": "site-1",
                    "flow_id": "flow-1",
                    "nodes": nodes,
                    "edges": [{"source": s, "target": t} for s, t in edges],
                    "end_on_fail": end_on_fail,
                },
            )
        )

    @property
    def s(self) -> f.FlowRunState:
        assert self.state is not None
        return self.state

    def apply(self, body: c.Body, command_id: str | None = None) -> None:
        """Decide and evolve; a Rejected propagates (the orchestrator's own commands
        must always fit)."""
        self.clock += 1_000
        cmd = c.Command(
            command_id or f"cmd-{len(self.events)}",
            f.AGGREGATE,
            RID,
            self.clock,
            "acme",
            "orchestrator",
            "corr",
            "cause",
            body,
        )
        for event in f.decide(self.state, cmd):
            if isinstance(event.data, f.NodeStarted):  # never before the parents finished
                started = self.s.node(event.data.node_id)
                assert started is not None
                assert all(self.status(p) in f.NODE_FINAL for p in started.parents)
            self.state = f.evolve(self.state, event)
            self.events.append(event)

    def orchestrate(self) -> list[o.Action]:
        actions = o.next_steps(self.s)
        for action in actions:
            if isinstance(action, o.StartNode):
                self.jobs.append(action.job)
            self.apply(o.body_for(action), o.command_id_for(self.s, action))
        return actions

    def status(self, node_id: str) -> str:
        found = self.s.node(node_id)
        assert found is not None
        return found.status

    def working(self) -> list[str]:
        return [n.node_id for n in self.s.nodes if n.status == f.WORKING]

    def report(self, node_id: str, passed: bool) -> None:
        if passed:
            self.apply(f.NodePass(node_id))
        else:
            self.apply(f.NodeFail(node_id, "it broke"))

    def run(self, outcomes: dict[str, bool]) -> None:
        """Orchestrate until the run ends, each working node reporting its outcome."""
        self.orchestrate()
        while self.s.status in f.RUN_ACTIVE:
            working = self.working()
            assert working, "an active run with nothing working must have actions"
            self.report(working[0], outcomes.get(working[0], True))
            self.orchestrate()


def statuses(d: Driver) -> dict[str, str]:
    return {n.node_id: n.status for n in d.s.nodes}


# -- examples --------------------------------------------------------------------------


def test_scan_case_webhook_runs_to_passed() -> None:
    d = Driver([node("1"), node("2", "case"), node("3", "webhook")], [("1", "2"), ("2", "3")], True)
    first = d.orchestrate()
    assert [type(a) for a in first] == [o.StartNode]
    job = first[0].job  # type: ignore[union-attr]
    assert (job.kind, job.node_id, job.attempt, job.site_id) == ("scan", "1", 1, "site-1")
    assert job.job_id == o.job_id_for(RID, "1", 1) == o.job_for(d.s, "1", 1).job_id
    assert o.next_steps(d.s) == [], "nothing new while node 1 works"
    d.run({})
    assert d.s.status == "passed"
    assert set(statuses(d).values()) == {"passed"}
    assert [j.kind for j in d.jobs] == ["scan", "case", "webhook"]


def test_end_on_fail_skips_the_rest_and_fails_the_run() -> None:
    nodes = [node("1"), node("2"), node("3"), node("4")]
    d = Driver(nodes, [("1", "2"), ("1", "3"), ("2", "4")], True)
    d.orchestrate()
    d.report("1", True)
    assert [a.node_id for a in d.orchestrate()] == ["2", "3"]  # type: ignore[union-attr]
    d.report("2", False)
    actions = d.orchestrate()
    assert actions == [o.SkipNode("4", "end_on_fail: node 2 failed")]  # 3 still works
    d.report("3", True)
    assert d.orchestrate() == [o.CompleteRun("failed")]
    assert statuses(d) == {"1": "passed", "2": "failed", "3": "passed", "4": "skipped"}
    assert d.s.status == "failed"


def test_without_end_on_fail_other_branches_go_on() -> None:
    nodes = [node("1"), node("2"), node("3"), node("4"), node("5")]
    d = Driver(nodes, [("1", "2"), ("1", "3"), ("2", "4"), ("3", "5")], False)
    d.run({"2": False})
    assert statuses(d) == {
        "1": "passed",
        "2": "failed",
        "3": "passed",
        "4": "skipped",
        "5": "passed",
    }
    assert d.s.status == "failed"
    assert d.s.node("4").reason == "a parent failed"  # type: ignore[union-attr]


def test_a_condition_on_a_failed_parent_runs_its_branch_even_with_end_on_fail() -> None:
    nodes = [node("scan"), node("ok", "webhook"), node("alert", "slack", "failed"), node("after")]
    edges = [("scan", "ok"), ("scan", "alert"), ("alert", "after")]
    d = Driver(nodes, edges, True)
    d.run({"scan": False})
    assert statuses(d) == {"scan": "failed", "ok": "skipped", "alert": "passed", "after": "passed"}
    assert d.s.status == "failed"
    # The same Flow when the scan passes: the failure branch and what hangs off it skip.
    d = Driver(nodes, edges, True)
    d.run({})
    assert statuses(d) == {"scan": "passed", "ok": "passed", "alert": "skipped", "after": "skipped"}
    assert d.s.status == "passed"


def test_always_joins_after_either_branch() -> None:
    nodes = [node("a"), node("b"), node("c", start_if="failed"), node("z", "email", "always")]
    d = Driver(nodes, [("a", "b"), ("a", "c"), ("b", "z"), ("c", "z")], False)
    d.run({})
    assert statuses(d) == {"a": "passed", "b": "passed", "c": "skipped", "z": "passed"}


def test_per_parent_conditions_narrow_the_start() -> None:
    z = node("z", "email", "always")
    z["data"]["conditions"] = [
        {"parent": "a", "status": "passed"},
        {"parent": "b", "status": "failed"},
    ]
    d = Driver([node("a"), node("b"), z], [("a", "z"), ("b", "z")], False)
    d.run({"b": False})
    assert statuses(d) == {"a": "passed", "b": "failed", "z": "passed"}
    d = Driver([node("a"), node("b"), z], [("a", "z"), ("b", "z")], False)
    d.run({})
    assert d.status("z") == "skipped"
    assert d.s.node("z").reason == "condition not met: b is passed, not failed"  # type: ignore[union-attr]


def test_cancel_mid_run_then_nothing_more() -> None:
    d = Driver([node("1"), node("2"), node("3")], [("1", "2"), ("2", "3")], True)
    d.orchestrate()
    d.report("1", True)
    d.orchestrate()
    d.apply(f.CancelFlowRun("user"))
    assert statuses(d) == {"1": "passed", "2": "skipped", "3": "skipped"}
    assert o.next_steps(d.s) == []


def test_retry_from_the_failed_node_keeps_passed_nodes() -> None:
    d = Driver([node("1"), node("2"), node("3")], [("1", "2"), ("2", "3")], True)
    d.run({"2": False})
    assert statuses(d) == {"1": "passed", "2": "failed", "3": "skipped"}
    d.apply(f.RetryFlowRun())
    first_jobs = list(d.jobs)
    d.run({})
    assert d.s.status == "passed" and d.s.attempt == 2
    retried = d.jobs[len(first_jobs) :]
    assert [(j.node_id, j.attempt) for j in retried] == [("2", 2), ("3", 1)]
    assert len({j.job_id for j in d.jobs}) == len(d.jobs), "a new attempt, a new job id"


def test_the_same_state_gives_the_same_actions_and_ids() -> None:
    d = Driver([node("1"), node("2")], [], True)
    a, b = o.next_steps(d.s), o.next_steps(d.s)
    assert a == b and [o.command_id_for(d.s, x) for x in a] == [o.command_id_for(d.s, x) for x in b]


def test_nothing_to_do_for_a_finished_or_deleted_run() -> None:
    d = Driver([node("1")], [], True)
    d.run({})
    assert o.next_steps(d.s) == []
    d.apply(f.DeleteFlowRun())
    assert o.next_steps(d.s) == []


# -- properties -------------------------------------------------------------------------


@st.composite
def flows(draw: st.DrawFn) -> tuple[list[dict], list[tuple[str, str]], bool]:
    """A random DAG: edges only from a lower to a higher index, ids shuffled."""
    size = draw(st.integers(1, 8))
    ids = draw(st.permutations([f"n{i}" for i in range(size)]))
    conditions = st.sampled_from([None, "passed", "failed", "always"])
    nodes = [node(i, draw(st.sampled_from(f.TASK_TYPES)), draw(conditions)) for i in ids]
    pairs = [(ids[i], ids[j]) for i in range(size) for j in range(i + 1, size)]
    edges = draw(st.lists(st.sampled_from(pairs), max_size=12)) if pairs else []
    draw(st.randoms()).shuffle(nodes)
    return nodes, edges, draw(st.booleans())


def _replay(log: list[e.Event]) -> f.FlowRunState | None:
    state = None
    for event in log:
        state = f.evolve(state, event)
    return state


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flow=flows(), data=st.data())
def test_any_outcomes_end_the_run_with_every_node_final(flow: Any, data: st.DataObject) -> None:
    nodes, edges, end_on_fail = flow
    d = Driver(nodes, edges, end_on_fail)
    retries = 0
    for _ in range(10 * len(nodes) + 10):  # each round starts, reports or ends something
        if d.s.status == f.FAILED and retries < 2 and data.draw(st.booleans()):
            passed_before = {n.node_id for n in d.s.nodes if n.status == f.PASSED}
            reset = f.nodes_to_retry(d.s)
            d.apply(f.RetryFlowRun())
            retries += 1
            assert {n.node_id for n in d.s.nodes if n.status == f.PASSED} == passed_before - reset
        if d.s.status not in f.RUN_ACTIVE:
            break
        d.orchestrate()
        if d.s.status not in f.RUN_ACTIVE:
            continue
        working = d.working()
        assert working, "an active run after orchestrating has a node working"
        if data.draw(st.integers(0, 19)) == 0:
            d.apply(f.CancelFlowRun())
        else:
            d.report(data.draw(st.sampled_from(working)), data.draw(st.booleans()))
    s = d.s
    assert s.status in f.RUN_TERMINAL, "the run ended"
    assert all(n.status in f.NODE_FINAL for n in s.nodes)
    if s.status != f.CANCELLED:
        assert s.status == f.outcome(s)
        if not end_on_fail:
            # Without end_on_fail a node is skipped only when its condition does not hold.
            assert not any((n.reason or "").startswith("end_on_fail") for n in s.nodes)
    assert o.next_steps(s) == []
    assert _replay(d.events) == s, "replaying the events gives the same state"
    assert [ev.seq for ev in d.events] == list(range(1, len(d.events) + 1))
    jobs = {(j.node_id, j.attempt): j.job_id for j in d.jobs}
    assert len(set(jobs.values())) == len(d.jobs), "one job id per node attempt"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flow=flows(), data=st.data())
def test_a_node_starts_only_when_its_condition_holds(flow: Any, data: st.DataObject) -> None:
    nodes, edges, end_on_fail = flow
    d = Driver(nodes, edges, end_on_fail)
    for _ in range(10 * len(nodes)):
        if d.s.status not in f.RUN_ACTIVE:
            break
        seen = {n.node_id: n.status for n in d.s.nodes}  # with this batch's skips applied
        for action in o.next_steps(d.s):
            if isinstance(action, o.SkipNode):
                seen[action.node_id] = f.SKIPPED
            if isinstance(action, o.StartNode):
                n = d.s.node(action.node_id)
                assert n is not None
                ran = [seen[p] for p in n.parents if seen[p] != f.SKIPPED]
                assert all(seen[p] in f.NODE_FINAL for p in n.parents)
                if n.parents and n.start_if == f.START_PASSED:
                    assert ran and all(r == f.PASSED for r in ran)
                if n.parents and n.start_if == f.START_FAILED:
                    assert f.FAILED in ran
        d.orchestrate()
        working = d.working()
        if working:
            d.report(data.draw(st.sampled_from(working)), data.draw(st.booleans()))
    assert d.s.status in f.RUN_TERMINAL


# -- standalone CaseRuns --------------------------------------------------------------


def created(flowrun_id: str | None = None) -> cr.CaseRunCreated:
    steps = '[{"action":{"type":"click","element":{"selector":"#a"}},"assertion":null}]'
    node_id = "n1" if flowrun_id else None
    return cr.CaseRunCreated("site-1", "case-1", steps, "t", flowrun_id, node_id)


def test_a_standalone_caserun_gets_a_case_job_with_a_derived_id() -> None:
    job = o.caserun_job("cr-1", "acme", created())
    assert job is not None
    assert (job.kind, job.run_id, job.account, job.site_id, job.node_id, job.attempt) == (
        "case",
        "cr-1",
        "acme",
        "site-1",
        "",
        1,
    )
    assert job == o.caserun_job("cr-1", "acme", created()), "the same job every time"
    assert job.job_id == o.caserun_job_id("cr-1", 1)
    assert job.job_id != o.caserun_job_id("cr-2", 1) != o.caserun_job_id("cr-1", 2)
    assert job.job_id not in {o.job_id_for("cr-1", "", 1), o.process_job_id("cr-1", 1)}
    assert json.loads(job.data_json) == {"case_id": "case-1"}
    assert json.loads(job.configs_json)["timeout"] == o.CASERUN_CONFIGS["timeout"]


def test_a_caserun_of_a_flowrun_node_gets_no_job_of_its_own() -> None:
    assert o.caserun_job("cr-1", "acme", created(flowrun_id="run-1")) is None
