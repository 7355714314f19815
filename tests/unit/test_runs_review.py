"""A review of FlowRun, CaseRun and the orchestrator against issue 3: each test here
failed on a bug found in the review (named in its docstring) or pins a case the other
tests did not (diamond-shaped graphs, ids that stay the same on a redelivered job)."""

from __future__ import annotations

from typing import Any

import pytest

from streams import orchestration as o
from streams.domain import aggregates, case
from streams.domain import caserun as cr
from streams.domain import commands as c
from streams.domain import events as e
from streams.domain import flowrun as f
from streams.domain.rejection import INVALID_STATE, Rejected
from tests.unit import test_orchestration as orchestration_tests

RID = "run-1"
T0 = 1_767_261_600_000_000


# -- a FlowRun driven by the orchestrator's decision -----------------------------------


def node(
    node_id: str, start_if: str | None = None, conditions: list[tuple[str, str]] | None = None
) -> dict:
    data: dict[str, Any] = {"task_type": "scan", "start_if": start_if, "configs": {}}
    if conditions is not None:
        data["conditions"] = [{"parent": p, "status": s} for p, s in conditions]
    return {"id": node_id, "data": data}


class Driver(orchestration_tests.Driver):
    """The orchestration tests' driver (``orchestrate`` applies ``next_steps``,
    ``report`` plays a runner), with every node's status at once."""

    def statuses(self) -> dict[str, str]:
        return {n.node_id: n.status for n in self.s.nodes}


# -- end_on_fail and failures a child cannot start on -----------------------------------


@pytest.mark.parametrize(
    "child",
    [
        # start_if passed (the default) with a condition on the parent failing: the child
        # is skipped whatever the parent does, so it cannot start on the failure.
        node("b", None, [("a", "failed")]),
        node("b", "passed", [("a", "failed")]),
        # start_if always narrowed to the parent passing: not on its failure either.
        node("b", "always", [("a", "passed")]),
        # start_if failed narrowed to the parent passing: never startable.
        node("b", "failed", [("a", "passed")]),
    ],
)
def test_end_on_fail_stops_the_rest_when_no_child_can_start_on_the_failure(child: dict) -> None:
    """Bug: ``handled`` counted a child with a condition ``{a: failed}`` (or ``start_if``
    always/failed) as handling a's failure even when the child's other condition rules
    the failure out, so with ``end_on_fail`` the rest of the run went on after a failure
    nothing in the Flow expects."""
    d = Driver([node("a"), child, node("x"), node("y")], [("a", "b"), ("x", "y")], True)
    d.orchestrate()  # a and x start
    d.report("a", False)
    d.orchestrate()
    assert d.status("b") == "skipped"
    assert d.status("y") == "skipped", "end_on_fail: y must not start after a failed"
    assert d.s.node("y").reason == "end_on_fail: node a failed"  # type: ignore[union-attr]
    d.report("x", True)
    assert d.orchestrate() == [o.CompleteRun("failed")]
    assert d.statuses() == {"a": "failed", "b": "skipped", "x": "passed", "y": "skipped"}


@pytest.mark.parametrize(
    "child",
    [
        node("b", "failed"),
        node("b", "always"),
        node("b", "failed", [("a", "failed")]),
        node("b", "always", [("a", "failed")]),
    ],
)
def test_a_child_that_starts_on_the_failure_keeps_the_run_going(child: dict) -> None:
    d = Driver([node("a"), child, node("x"), node("y")], [("a", "b"), ("x", "y")], True)
    d.orchestrate()
    d.report("a", False)
    d.orchestrate()
    assert d.status("b") == "working", "the failure branch runs"
    d.report("x", True)
    d.orchestrate()
    assert d.status("y") == "working", "a handled failure does not end the run"


# -- diamonds: two parents, one failed and one passed ------------------------------------


DIAMOND = [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]


@pytest.mark.parametrize(
    ("start_if", "conditions", "end_on_fail", "d_status"),
    [
        (None, None, False, "skipped"),
        ("passed", None, False, "skipped"),
        ("failed", None, False, "passed"),
        ("always", None, False, "passed"),
        ("failed", None, True, "passed"),
        ("always", None, True, "passed"),
        (None, None, True, "skipped"),
        ("always", [("b", "passed"), ("c", "failed")], False, "passed"),
        ("always", [("b", "failed")], False, "skipped"),
        ("failed", [("b", "passed")], False, "passed"),
    ],
)
def test_a_diamond_with_one_parent_failed_and_one_passed(
    start_if: str | None,
    conditions: list[tuple[str, str]] | None,
    end_on_fail: bool,
    d_status: str,
) -> None:
    nodes = [node("a"), node("b"), node("c"), node("d", start_if, conditions)]
    d = Driver(nodes, DIAMOND, end_on_fail)
    d.orchestrate()
    d.report("a", True)
    d.orchestrate()
    d.report("b", True)
    d.orchestrate()
    assert d.status("d") == "queued", "d waits for both parents"
    d.report("c", False)
    d.orchestrate()
    if d.status("d") == "working":
        d.report("d", True)
        d.orchestrate()
    assert d.statuses() == {"a": "passed", "b": "passed", "c": "failed", "d": d_status}
    assert d.s.status == "failed", "a node failed, so the run fails"
    assert d.s.time_completed is not None


def test_a_diamond_retried_reruns_the_failed_parent_and_the_join_only() -> None:
    nodes = [node("a"), node("b"), node("c"), node("d")]
    d = Driver(nodes, DIAMOND, False)
    d.orchestrate()
    d.report("a", True)
    d.orchestrate()
    d.report("b", True)
    d.report("c", False)
    d.orchestrate()
    assert d.statuses() == {"a": "passed", "b": "passed", "c": "failed", "d": "skipped"}
    kept = {n: d.s.node(n) for n in ("a", "b")}
    d.apply(f.RetryFlowRun())
    assert {n: d.s.node(n) for n in ("a", "b")} == kept, "passed nodes keep their results"
    actions = d.orchestrate()
    assert [(type(a), getattr(a, "node_id", None)) for a in actions] == [(o.StartNode, "c")]
    assert actions[0].job.attempt == 2  # type: ignore[union-attr]
    d.report("c", True)
    d.orchestrate()
    d.report("d", True)
    assert d.orchestrate() == [o.CompleteRun("passed")]
    assert d.s.status == "passed" and d.s.attempt == 2


# -- CaseRun: a Case step with an assertion and no action --------------------------------


ASSERT_ONLY = [
    {"action": {"type": "navigate", "path": "/"}, "assertion": None},
    {"assertion": {"type": "exists", "element": {"selector": "h1"}}},
    {"action": {"type": ""}, "assertion": {"type": "visible", "element": {"selector": "p"}}},
]


class CaseRun:
    def __init__(self, steps: list[dict]) -> None:
        self.state: cr.CaseRunState | None = None
        self.clock = T0
        self.do("caserun.create", site_id="site-1", case_id="case-1", steps=steps)

    def do(self, name: str, **payload: Any) -> list[str]:
        self.clock += 1_000_000
        body = cr.parse_caserun_body(name, payload)
        cmd = c.Command(
            f"c{self.clock}", cr.AGGREGATE, "cr-1", self.clock, "acme", "r", "k", "x", body
        )
        events = cr.decide(self.state, cmd)
        for event in events:
            self.state = cr.evolve(self.state, event)
        return [ev.type for ev in events]

    @property
    def s(self) -> cr.CaseRunState:
        assert self.state is not None
        return self.state


def test_a_case_step_without_an_action_runs_its_assertion_only() -> None:
    """Bug: a Case accepts a step with an assertion and no action (or an action of empty
    type) but a CaseRun refused those steps ("steps[1].action must have a type"), so
    such a Case could not be run at all, standalone or as a FlowRun's case node."""
    case.parse_create({"site_id": "site-1", "name": "n", "steps": ASSERT_ONLY})  # a valid Case
    run = CaseRun(ASSERT_ONLY)
    assert [p[:2] for p in run.s.parts()] == [(0, "action"), (1, "assertion"), (2, "assertion")]
    assert run.s.steps[1].action is None and run.s.steps[2].action is None
    with pytest.raises(Rejected) as info:
        run.do("caserun.step_start", index=1, part="action")
    assert info.value.code == "not_found"
    for index, part in [(0, "action"), (1, "assertion")]:
        run.do("caserun.step_start", index=index, part=part)
        run.do("caserun.step_pass", index=index, part=part)
    run.do("caserun.step_start", index=2, part="assertion")
    assert run.do("caserun.step_pass", index=2, part="assertion") == [
        "caserun.step_passed",
        "caserun.completed",
    ]
    assert run.s.status == "passed"


def test_a_cancelled_caserun_without_actions_keeps_the_later_steps_queued() -> None:
    run = CaseRun(ASSERT_ONLY)
    run.do("caserun.step_start", index=0, part="action")
    run.do("caserun.step_pass", index=0, part="action")
    run.do("caserun.step_start", index=1, part="assertion")
    run.do("caserun.cancel", reason="user")
    s = run.s
    assert s.status == "cancelled" and s.time_completed is not None
    assert s.steps[1].assertion == cr.PartState(
        "failed",
        s.steps[1].assertion.time_started,
        s.time_completed,
        "cancelled",  # type: ignore[union-attr]
    )
    assert s.steps[2].assertion == cr.PartState(), "a later step stays queued"
    with pytest.raises(Rejected) as info:
        run.do("caserun.step_pass", index=1, part="assertion")
    assert info.value.code == INVALID_STATE


# -- cancel of a FlowRun whose case node is working ------------------------------------


class Log:
    """Events of several aggregates decided in order, as the decider would append them."""

    def __init__(self) -> None:
        self.states: dict[str, Any] = {}
        self.events: list[e.Event] = []
        self.clock = T0

    def do(self, aggregate: str, aggregate_id: str, body: c.Body) -> list[e.Event]:
        self.clock += 1_000
        decide, evolve = aggregates.decide, aggregates.evolve
        cmd = c.Command(
            f"{aggregate}/{aggregate_id}/{len(self.events)}",
            aggregate, aggregate_id, self.clock, "acme", "t", "corr", "cause", body,
        )  # fmt: skip
        events = decide(self.states.get(aggregate_id), cmd)
        for event in events:
            self.states[aggregate_id] = evolve(self.states.get(aggregate_id), event)
        self.events += events
        return events


CASE_STEPS = '[{"action":{"type":"click","element":{"selector":"#a"}},"assertion":null}]'


def case_flow(log: Log) -> None:
    """FlowRun run-1: scan ``s`` → case ``k``, with ``s`` passed and ``k`` working; its
    job created CaseRun cr-k and started its first part."""
    nodes = [
        {"id": "s", "data": {"task_type": "scan"}},
        {"id": "k", "data": {"task_type": "case", "case_id": "case-1"}},
    ]
    create = f.parse_flowrun_body(
        "flowrun.create",
        {"site_id": "site-1", "flow_id": "flow-1", "nodes": nodes,
         "edges": [{"source": "s", "target": "k"}]},
    )  # fmt: skip
    log.do(f.AGGREGATE, RID, create)
    for body in (f.NodeStart("s"), f.NodePass("s"), f.NodeStart("k")):
        log.do(f.AGGREGATE, RID, body)


def test_cancelling_a_flowrun_cancels_the_caserun_of_its_working_case_node() -> None:
    """Bug: a FlowRun cancelled (or deleted) while a ``case`` node worked left that node's
    CaseRun ``working`` for ever: the runner stops the cancelled job, which reports
    nothing more, and nothing cancelled the CaseRun."""
    from streams.orchestrator_memory import Memory

    log = Log()
    case_flow(log)
    log.do(cr.AGGREGATE, "cr-k", cr.CreateCaseRun("site-1", "case-1", CASE_STEPS, "t", RID, "k"))
    log.do(cr.AGGREGATE, "cr-k", cr.CaseStepStart(0, "action"))
    memory = Memory()
    for event in log.events:
        memory.fold(event)
    run = memory.run_state(RID)
    assert run is not None
    assert memory.caseruns_to_cancel(run) == [], "nothing while the run is active"
    log.do(f.AGGREGATE, RID, f.CancelFlowRun("user"))
    memory.fold(log.events[-1])
    run = memory.run_state(RID)
    assert run is not None and run.status == "cancelled"
    assert memory.caseruns_to_cancel(run) == ["cr-k"]
    cmd_id = o.caserun_cancel_command_id("cr-k")
    assert cmd_id == o.caserun_cancel_command_id("cr-k") != o.caserun_cancel_command_id("x")


def test_a_caserun_created_after_its_flowrun_was_cancelled_is_cancelled_too() -> None:
    """The runner may create the node's CaseRun just before its job is stopped, after
    the orchestrator saw the cancel: that CaseRun is cancelled when it appears."""
    from streams.orchestrator_memory import Memory

    log = Log()
    case_flow(log)
    log.do(f.AGGREGATE, RID, f.DeleteFlowRun())  # cancels the active run, then deletes it
    created = log.do(
        cr.AGGREGATE, "cr-k", cr.CreateCaseRun("site-1", "case-1", CASE_STEPS, "t", RID, "k")
    )
    memory = Memory()
    for event in log.events:
        memory.fold(event)
    assert memory.stopped_caserun(created[0]) is True
    other = Log()
    case_flow(other)  # the same run, still active
    other.do(cr.AGGREGATE, "cr-k", cr.CreateCaseRun("site-1", "case-1", CASE_STEPS, "t", RID, "k"))
    memory = Memory()
    for event in other.events:
        memory.fold(event)
    assert memory.stopped_caserun(other.events[-1]) is False


def test_a_case_node_that_never_started_has_no_caserun_to_cancel() -> None:
    from streams.orchestrator_memory import Memory

    log = Log()
    nodes = [{"id": "k", "data": {"task_type": "case", "case_id": "case-1"}}]
    create = f.parse_flowrun_body(
        "flowrun.create", {"site_id": "site-1", "flow_id": "flow-1", "nodes": nodes, "edges": []}
    )
    log.do(f.AGGREGATE, RID, create)
    log.do(f.AGGREGATE, RID, f.CancelFlowRun())
    memory = Memory()
    for event in log.events:
        memory.fold(event)
    run = memory.run_state(RID)
    assert run is not None and memory.caseruns_to_cancel(run) == []


class _Txn:
    def __init__(self, sends: list[tuple[str, bytes, bytes | None]]) -> None:
        self.sends = sends

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


class _Publisher:
    """What ``Orchestrator._process`` uses of the transactional publisher."""

    def __init__(self) -> None:
        self.sends: list[tuple[str, bytes, bytes | None]] = []

    def transaction(self) -> _Txn:
        return _Txn(self.sends)

    async def send(self, topic: str, key: bytes | None, value: bytes, headers: Any = ()) -> None:
        self.sends.append((topic, value, key))

    async def send_offsets(self, offsets: Any, group_id: str) -> None:
        pass


def _orchestrate(batches: list[list[e.Event]]) -> list[c.Command]:
    """Run the orchestrator's batch step over ``batches``; the commands it published."""
    import asyncio

    from aiokafka.structs import TopicPartition

    from schemas import default_codec
    from streams import serde
    from streams.domain import aggregates
    from streams.orchestrator import Orchestrator
    from streams.topics import Topics
    from tests.unit.test_orchestrator_loop import Msg

    codec = default_codec()
    topics = Topics("review.")
    orch = Orchestrator("fake:9092", topics, codec, clock=lambda: T0)
    publisher = _Publisher()
    orch._publisher = publisher  # type: ignore[assignment]
    tp = TopicPartition(topics.events, 0)
    offset = 0

    async def main() -> None:
        nonlocal offset
        for events in batches:
            msgs = []
            for event in events:
                key = aggregates.stream_key(event.aggregate_type, event.aggregate_id).encode()
                value = serde.encode_event(codec, event)
                msgs.append(Msg(offset, key, value, (("type", event.type.encode()),)))
                offset += 1
            await orch._process({tp: msgs})

    asyncio.run(main())
    return [
        serde.decode_command(codec, value)
        for topic, value, _ in publisher.sends
        if topic == topics.commands
    ]


def _caserun_cancels(commands: list[c.Command]) -> list[tuple[str, str]]:
    return [
        (cmd.aggregate_id, cmd.command_id)
        for cmd in commands
        if isinstance(cmd.body, cr.CancelCaseRun)
    ]


def test_the_orchestrator_sends_the_caserun_cancel_once_per_caserun() -> None:
    log = Log()
    case_flow(log)
    log.do(cr.AGGREGATE, "cr-k", cr.CreateCaseRun("site-1", "case-1", CASE_STEPS, "t", RID, "k"))
    before = list(log.events)
    log.do(f.AGGREGATE, RID, f.CancelFlowRun("user"))
    cancel = log.events[len(before) :]
    commands = _orchestrate([before, cancel])
    expected = [("cr-k", o.caserun_cancel_command_id("cr-k"))]
    assert _caserun_cancels(commands) == expected
    (cmd,) = [x for x in commands if isinstance(x.body, cr.CancelCaseRun)]
    assert (cmd.aggregate_type, cmd.account, cmd.actor) == ("caserun", "acme", "orchestrator")
    # The CaseRun's decider takes it: the run ends cancelled, its part failed "cancelled".
    state = log.states["cr-k"]
    for event in cr.decide(state, cmd):
        state = cr.evolve(state, event)
    assert state.status == "cancelled"
    # All in one batch, and the CaseRun created after the cancel: the same single command.
    assert _caserun_cancels(_orchestrate([log.events])) == expected
    late = Log()
    case_flow(late)
    late.do(f.AGGREGATE, RID, f.CancelFlowRun("user"))
    late.do(cr.AGGREGATE, "cr-k", cr.CreateCaseRun("site-1", "case-1", CASE_STEPS, "t", RID, "k"))
    assert _caserun_cancels(_orchestrate([late.events[:-1], late.events[-1:]])) == expected
    # A run that goes on sends none.
    assert _caserun_cancels(_orchestrate([before])) == []


def test_a_node_of_a_run_whose_site_was_deleted_gets_no_site_url() -> None:
    """Bug: a FlowRun node started after its Site was deleted was sent off with the
    deleted Site's URL (a standalone CaseRun or a generate job gets none, and the runner
    fails the node: "site … has no URL (deleted or unknown)")."""
    from streams.domain import site
    from streams.orchestrator_memory import Memory

    site_events: list[e.Event] = []
    state = None
    for n, body in enumerate((site.CreateSite("https://x.io/"), site.DeleteSite())):
        cmd = c.Command(f"s{n}", "site", "site-1", T0 + n, "acme", "t", "k", "x", body)
        for event in site.decide(state, cmd):
            state = site.evolve(state, event)
            site_events.append(event)
    created, deleted = site_events[:1], site_events[1:]
    memory = Memory()
    for event in created:
        memory.fold(event)
    log = Log()
    case_flow(log)
    for event in log.events:
        memory.fold(event)
    run = memory.run_state(RID)
    assert run is not None
    assert memory.dispatch_for(run, "s", 1).site_url == "https://x.io/"
    for event in deleted:
        memory.fold(event)
    assert memory.dispatch_for(run, "s", 1).site_url == ""


def test_a_job_never_gets_another_accounts_site_or_case() -> None:
    """Bug: the orchestrator looked Sites and Cases up by id alone, so a run, a
    standalone CaseRun or a case.generate Process naming another account's Site (or a
    node naming its Case) was sent to that Site with those steps."""
    from streams.domain import site
    from streams.orchestrator_memory import Memory

    def decided(account: str, aggregate: str, aggregate_id: str, body: c.Body) -> list[e.Event]:
        cmd = c.Command(
            f"{aggregate_id}/0", aggregate, aggregate_id, T0, account, "t", "k", "x", body
        )
        return aggregates.decide(None, cmd)

    theirs = [
        *decided("other", "site", "site-1", site.CreateSite("https://theirs.example/")),
        *decided("other", "case", "case-1", case.CreateCase("site-1", "theirs", CASE_STEPS)),
    ]
    memory = Memory()
    for event in theirs:
        memory.fold(event)
    log = Log()  # account acme
    case_flow(log)
    log.do(cr.AGGREGATE, "cr-1", cr.CreateCaseRun("site-1", "case-1", CASE_STEPS, "t"))
    log.do("process", "p-1", c.CreateProcess("case.generate", "site-1", "{}"))
    for event in log.events:
        memory.fold(event)
    run = memory.run_state(RID)
    assert run is not None
    node = memory.dispatch_for(run, "k", 1)
    assert (node.site_url, node.case_steps_json) == ("", None)
    created = next(ev for ev in log.events if ev.aggregate_id == "cr-1")
    standalone = memory.caserun_dispatch(created)
    assert standalone is not None and standalone.site_url == ""
    generate = memory.generate_dispatch("p-1", 1)
    assert generate is not None and generate.site_url == ""
    # The same lookups for the Site's own account find it.
    assert memory.site_url("site-1", "other") == "https://theirs.example/"


def test_a_restarted_case_generate_process_gets_a_job_for_its_new_attempt() -> None:
    """Bug: only created and retried case.generate Processes got a job; one restarted
    from a step (allowed once it has ended) stayed pending for ever."""
    from streams.orchestrator_memory import Memory
    from streams.orchestrator_plan import Plan

    log = Log()
    steps = (e.StepDefinition("explore", "Explore", 1),)
    log.do("process", "p-1", c.CreateProcess("case.generate", "site-1", "{}", steps))
    log.do("process", "p-1", c.StartProcess())
    log.do("process", "p-1", c.CancelProcess("user"))
    log.do("process", "p-1", c.RestartFromStep("explore"))
    memory, plan = Memory(), Plan()
    for event in log.events:
        memory.fold(event)
        plan.add(event, memory)
    assert plan.generate == [("p-1", 1), ("p-1", 2)]
    first, again = (memory.generate_dispatch(pid, n) for pid, n in plan.generate)
    assert first is not None and again is not None and first.job.job_id != again.job.job_id


def test_a_node_whose_caserun_is_cancelled_on_its_own_fails_instead_of_working_for_ever() -> None:
    """Bug: POST /caserun/{id}/cancel on the CaseRun of a working case node stopped the
    node's job, which then reports nothing: the node and its FlowRun stayed working."""
    log = Log()
    case_flow(log)
    log.do(cr.AGGREGATE, "cr-k", cr.CreateCaseRun("site-1", "case-1", CASE_STEPS, "t", RID, "k"))
    before = list(log.events)
    log.do(cr.AGGREGATE, "cr-k", cr.CancelCaseRun("not needed"))
    commands = _orchestrate([before, log.events[len(before) :]])
    fails = [x for x in commands if isinstance(x.body, f.NodeFail)]
    assert [(x.aggregate_id, x.body.node_id) for x in fails] == [(RID, "k")]  # type: ignore[attr-defined]
    (fail,) = fails
    assert "its CaseRun cr-k was cancelled" in fail.body.exception  # type: ignore[attr-defined]
    assert fail.command_id == o.node_fail_command_id(RID, "k", 1)
    assert _orchestrate([log.events]) == commands  # the same, redelivered in one batch
    # The run's decider takes it: the node fails, and the run goes on from there.
    for event in f.decide(log.states[RID], fail):
        log.states[RID] = f.evolve(log.states[RID], event)
    assert log.states[RID].node("k").status == "failed"
    # A CaseRun stopped by its FlowRun's own cancel fails no node: it is not working.
    cancelled = Log()
    case_flow(cancelled)
    cancelled.do(
        cr.AGGREGATE, "cr-k", cr.CreateCaseRun("site-1", "case-1", CASE_STEPS, "t", RID, "k")
    )
    cancelled.do(f.AGGREGATE, RID, f.CancelFlowRun("user"))
    cancelled.do(cr.AGGREGATE, "cr-k", cr.CancelCaseRun("flowrun cancelled"))
    assert not [x for x in _orchestrate([cancelled.events]) if isinstance(x.body, f.NodeFail)]
