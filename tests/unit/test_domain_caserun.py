"""The CaseRun state machine: steps in order, the first failure fails the run, cancel,
delete; and, by property, any sequence of reports keeps the invariants."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.domain import caserun as cr
from streams.domain import commands as c
from streams.domain import events as e
from streams.domain.rejection import ALREADY_EXISTS, INVALID_STATE, NOT_FOUND, Rejected

RID = "caserun-1"
T0 = 1_767_261_600_000_000
SHOT = "ab" * 32

STEPS = [
    {"action": {"type": "navigate", "path": "/"}, "assertion": {"type": "", "value": ""}},
    {
        "action": {"type": "click", "element": {"selector": "#go", "xpath": ""}},
        "assertion": {"type": "visible", "element": {"selector": "#done"}},
    },
    {"action": {"type": "change", "value": "hi"}, "assertion": {"type": "match", "value": "hi"}},
]


class Run:
    def __init__(self, steps: list[dict] | None = None) -> None:
        self.state: cr.CaseRunState | None = None
        self.events: list[e.Event] = []
        self.clock = T0
        self.do("caserun.create", site_id="site-1", case_id="case-1", steps=steps or STEPS)

    def cmd(self, body: c.Body, account: str = "acme") -> c.Command:
        self.clock += 1_000_000
        n = len(self.events)
        return c.Command(f"c{n}", cr.AGGREGATE, RID, self.clock, account, "runner", "k", "x", body)

    def do(self, name: str, account: str = "acme", **payload: Any) -> list[str]:
        events = cr.decide(self.state, self.cmd(cr.parse_caserun_body(name, payload), account))
        for event in events:
            self.state = cr.evolve(self.state, event)
        self.events += events
        return [ev.type for ev in events]

    def reject(self, name: str, account: str = "acme", **payload: Any) -> Rejected:
        before = self.state
        with pytest.raises(Rejected) as info:
            cr.decide(self.state, self.cmd(cr.parse_caserun_body(name, payload), account))
        assert self.state is before
        return info.value

    @property
    def s(self) -> cr.CaseRunState:
        assert self.state is not None
        return self.state


def test_create_copies_the_steps_all_queued() -> None:
    run = Run()
    s = run.s
    assert (s.status, s.case_id, s.site_id, len(s.steps)) == ("queued", "case-1", "site-1", 3)
    assert s.steps[0].assertion is None, "an assertion without a type asserts nothing"
    assert s.steps[1].assertion == cr.PartState()
    assert [p[:2] for p in s.parts()] == [
        (0, "action"),
        (1, "action"),
        (1, "assertion"),
        (2, "action"),
        (2, "assertion"),
    ]
    assert run.reject("caserun.create", site_id="s", case_id="c", steps=STEPS).code == (
        ALREADY_EXISTS
    )


def test_every_part_passes_in_order_and_the_last_passes_the_run() -> None:
    run = Run()
    parts = [p[:2] for p in run.s.parts()]
    for n, (index, part) in enumerate(parts):
        run.do("caserun.step_start", index=index, part=part)
        assert run.s.status == "working"
        types = run.do("caserun.step_pass", index=index, part=part)
        last = n == len(parts) - 1
        assert types == (
            ["caserun.step_passed", "caserun.completed"] if last else ["caserun.step_passed"]
        )
    s = run.s
    assert s.status == "passed" and s.time_completed == run.clock and s.time_started
    step = s.steps[1]
    assert step.action.time_started and step.action.time_completed
    assert run.reject("caserun.step_start", index=0, part="action").code == INVALID_STATE


def test_the_first_failed_part_fails_the_run_with_its_exception_and_screenshot() -> None:
    run = Run()
    run.do("caserun.step_start", index=0, part="action")
    run.do("caserun.step_pass", index=0, part="action")
    run.do("caserun.step_start", index=1, part="action")
    run.do("caserun.step_pass", index=1, part="action")
    run.do("caserun.step_start", index=1, part="assertion")
    types = run.do(
        "caserun.step_fail",
        index=1,
        part="assertion",
        exception="#done not visible",
        screenshot=SHOT,
    )
    assert types == ["caserun.step_failed", "caserun.completed"]
    s = run.s
    assert (s.status, s.exception) == ("failed", "#done not visible")
    assert s.steps[1].assertion is not None and s.steps[1].assertion.status == "failed"
    assert s.steps[1].screenshot == SHOT
    assert s.steps[2].action.status == "queued", "the run stops at the first failure"
    assert run.reject("caserun.step_start", index=2, part="action").code == INVALID_STATE


def test_steps_run_strictly_in_order_and_each_fact_is_recorded_once() -> None:
    run = Run()
    assert run.reject("caserun.step_start", index=1, part="action").code == INVALID_STATE
    assert run.reject("caserun.step_pass", index=0, part="action").code == INVALID_STATE
    assert run.reject("caserun.step_start", index=0, part="assertion").code == NOT_FOUND
    assert run.reject("caserun.step_start", index=7, part="action").code == NOT_FOUND
    run.do("caserun.step_start", index=0, part="action")
    assert run.reject("caserun.step_start", index=0, part="action").code == INVALID_STATE
    assert run.reject("caserun.step_start", index=1, part="action").code == INVALID_STATE
    run.do("caserun.step_pass", index=0, part="action")
    assert run.reject("caserun.step_pass", index=0, part="action").code == INVALID_STATE


def test_cancel_fails_the_working_part_and_refuses_late_reports() -> None:
    run = Run()
    run.do("caserun.step_start", index=0, part="action")
    assert run.do("caserun.cancel", reason="user") == ["caserun.cancelled"]
    s = run.s
    assert s.status == "cancelled" and s.time_completed == run.clock
    assert (s.steps[0].action.status, s.steps[0].action.exception) == ("failed", "cancelled")
    assert run.reject("caserun.step_pass", index=0, part="action").code == INVALID_STATE
    assert run.reject("caserun.cancel").code == INVALID_STATE


def test_delete_hides_the_run_and_other_accounts_see_nothing() -> None:
    run = Run()
    assert run.reject("caserun.cancel", account="globex").code == NOT_FOUND
    assert run.do("caserun.delete") == ["caserun.cancelled", "caserun.deleted"]
    assert run.reject("caserun.step_start", index=0, part="action").code == NOT_FOUND


@pytest.mark.parametrize(
    ("name", "payload", "field"),
    [
        ("caserun.create", {"site_id": "s", "case_id": "c", "steps": []}, "steps"),
        ("caserun.create", {"site_id": "s", "case_id": "c", "steps": [{}]}, "steps[0].action"),
        ("caserun.create", {"case_id": "c", "steps": STEPS}, "site_id"),
        ("caserun.step_start", {"index": -1, "part": "action"}, "index"),
        ("caserun.step_start", {"index": True, "part": "action"}, "index"),
        ("caserun.step_pass", {"index": 0, "part": "both"}, "part"),
        ("caserun.step_fail", {"index": 0, "part": "action"}, "exception"),
        (
            "caserun.step_fail",
            {"index": 0, "part": "action", "exception": "x", "screenshot": "../x"},
            "screenshot",
        ),
        ("caserun.teleport", {}, None),
    ],
)
def test_bodies_that_cannot_be_used_are_refused(
    name: str, payload: dict, field: str | None
) -> None:
    with pytest.raises(c.InvalidCommand) as info:
        cr.parse_caserun_body(name, payload)
    assert info.value.field == field


def test_bodies_survive_the_wire_form_and_payloads_are_avro_primitives() -> None:
    bodies = [
        cr.parse_caserun_body(
            "caserun.create",
            {"site_id": "s", "case_id": "c", "steps": STEPS, "flowrun_id": "r", "node_id": "2"},
        ),
        cr.CaseStepStart(0, "action"),
        cr.CaseStepPass(1, "assertion"),
        cr.CaseStepFail(1, "assertion", "boom", SHOT),
        cr.CancelCaseRun("user"),
        cr.DeleteCaseRun(),
    ]
    assert {type(b) for b in bodies} == set(cr.BODIES)
    for body in bodies:
        assert cr.parse_caserun_body(body.NAME, c.body_to_payload(body)) == body
    allowed = {"str", "int", "bool", "str | None"}
    types = [cls.TYPE for cls in cr.PAYLOADS]
    assert len(set(types)) == len(types)
    assert all(e.PAYLOAD_TYPES[cls.TYPE] is cls for cls in cr.PAYLOADS), "registered"
    for cls in cr.PAYLOADS:
        assert {str(fl.type) for fl in fields(cls)} <= allowed, cls


# -- properties -------------------------------------------------------------------------

_reports = st.tuples(
    st.sampled_from(
        ["caserun.step_start"] * 4
        + ["caserun.step_pass"] * 3
        + ["caserun.step_fail", "caserun.cancel", "caserun.delete"]
    ),
    st.integers(0, 3),
    st.sampled_from(["action", "assertion"]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    reports=st.lists(_reports, max_size=40),
    follow=st.lists(st.booleans(), min_size=40, max_size=40),
)
def test_any_reports_keep_the_invariants(reports: list, follow: list[bool]) -> None:
    run = Run()
    for n, (name, index, part) in enumerate(reports):
        current = run.s.current() if not run.s.deleted else None
        if follow[n] and current is not None:  # mostly report on the part that runs now
            index, part = current[0], current[1]
        payload: dict[str, Any] = {"index": index, "part": part}
        if name == "caserun.step_fail":
            payload["exception"] = "boom"
        if name in ("caserun.cancel", "caserun.delete"):
            payload = {}
        before = run.s
        try:
            run.do(name, **payload)
        except Rejected as rejected:
            assert rejected.message and run.s is before
            continue
        assert not before.deleted
        if before.status in cr.RUN_TERMINAL:
            assert name == "caserun.delete"
        s = run.s
        parts = [p[2].status for p in s.parts()]
        assert s.status in cr.RUN_STATUSES
        assert parts.count("working") <= 1
        assert (s.status == "passed") == all(p == "passed" for p in parts)
        if s.status == "failed":
            assert parts.count("failed") == 1
            assert all(p == "queued" for p in parts[parts.index("failed") + 1 :])
        done = [p for p in parts if p != "queued"]
        assert done == parts[: len(done)], "parts run in order"
    replayed = None
    for event in run.events:
        replayed = cr.evolve(replayed, event)
    assert replayed == run.s
    assert [ev.seq for ev in run.events] == list(range(1, len(run.events) + 1))
