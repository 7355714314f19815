"""The Process state machine, by example: every command in every status, then the
lifecycles that matter (retry, restart from a step, delete, implied start)."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest

from streams.domain import aggregates
from streams.domain import commands as c
from streams.domain import events as e
from streams.domain import process as p
from streams.domain.rejection import ALREADY_EXISTS, INVALID, INVALID_STATE, NOT_FOUND, Rejected
from streams.domain.snapshot import process_from_dict, process_to_dict

PID = "proc-1"
T0 = 1_767_261_600_000_000  # 2026-01-01T10:00:00Z, microseconds

STEPS = (
    e.StepDefinition("fetch", "Fetch", 1),
    e.StepDefinition("audit", "Audit", 2),
    e.StepDefinition("report", "Report", 3),
    e.StepDefinition("notify", "Notify", 4, enabled=False),
)


class Ledger:
    """One Process driven through decide/evolve, keeping every event it emitted."""

    def __init__(self) -> None:
        self.state: p.ProcessState | None = None
        self.events: list[e.Event] = []
        self.clock = T0

    def cmd(self, body: c.Body, *, account: str = "acme", actor: str = "token:ci") -> c.Command:
        self.clock += 1_000_000
        n = len(self.events) + 1
        return c.Command(
            command_id=f"cmd-{n}-{body.NAME}",
            aggregate_type=p.AGGREGATE,
            aggregate_id=PID,
            issued_at=self.clock,
            account=account,
            actor=actor,
            correlation_id="corr-1",
            causation_id=f"cause-{n}",
            body=body,
        )

    def do(self, body: c.Body, **kw: Any) -> list[e.Event]:
        events = p.decide(self.state, self.cmd(body, **kw))
        for event in events:
            self.state = p.evolve(self.state, event)
        self.events += events
        return events

    def reject(self, body: c.Body, **kw: Any) -> Rejected:
        before = self.state
        with pytest.raises(Rejected) as info:
            p.decide(self.state, self.cmd(body, **kw))
        assert self.state is before
        return info.value

    @property
    def s(self) -> p.ProcessState:
        assert self.state is not None
        return self.state


def types(events: list[e.Event]) -> list[str]:
    return [ev.type for ev in events]


# -- every command in every status --------------------------------------------------------

SETUPS: dict[str, list[c.Body]] = {
    "absent": [],
    "pending": [c.CreateProcess("scan", steps=STEPS)],
    "running": [c.CreateProcess("scan", steps=STEPS), c.StartProcess()],
    "waiting_review": [
        c.CreateProcess("scan", steps=STEPS),
        c.StartProcess(),
        c.RequestReview(),
    ],
    "completed": [c.CreateProcess("scan", steps=STEPS), c.CompleteProcess()],
    "failed": [c.CreateProcess("scan", steps=STEPS), c.StartProcess(), c.FailProcess("boom")],
    "cancelled": [c.CreateProcess("scan", steps=STEPS), c.CancelProcess()],
    "deleted": [c.CreateProcess("scan", steps=STEPS), c.DeleteProcess()],
}

COMMANDS: dict[str, c.Body] = {
    "create": c.CreateProcess("scan"),
    "start": c.StartProcess(),
    "progress": c.ReportProgress(50.0),
    "log": c.AppendLog("hello"),
    "step_start": c.StartStep("fetch"),
    "step_complete": c.CompleteStep("fetch"),  # fetch is pending in every setup
    "step_fail": c.FailStep("fetch", "boom"),
    "review": c.RequestReview(),
    "approve": c.Approve(),
    "complete": c.CompleteProcess(),
    "fail": c.FailProcess("boom"),
    "cancel": c.CancelProcess(),
    "retry": c.RetryProcess(),
    "restart": c.RestartFromStep("audit"),
    "delete": c.DeleteProcess(),
}

STARTED = "process.started"
CANCELLED = "process.cancelled"
DELETED = "process.deleted"
X = INVALID_STATE

# status → command → the event types it emits, or the rejection code.
EXPECTED: dict[str, dict[str, list[str] | str]] = {
    "absent": {
        **{name: NOT_FOUND for name in COMMANDS},
        "create": ["process.created"],
    },
    "pending": {
        "create": ALREADY_EXISTS,
        "start": [STARTED],
        "progress": [STARTED, "process.progress"],
        "log": ["process.log"],
        "step_start": [STARTED, "process.step_started"],
        "step_complete": X,
        "step_fail": X,
        "review": X,
        "approve": X,
        "complete": [STARTED, "process.completed"],
        "fail": ["process.failed"],
        "cancel": [CANCELLED],
        "retry": X,
        "restart": X,
        "delete": [CANCELLED, DELETED],
    },
    "running": {
        "create": ALREADY_EXISTS,
        "start": X,
        "progress": ["process.progress"],
        "log": ["process.log"],
        "step_start": ["process.step_started"],
        "step_complete": X,  # the step is pending, not running
        "step_fail": X,
        "review": ["process.waiting_review"],
        "approve": X,
        "complete": ["process.completed"],
        "fail": ["process.failed"],
        "cancel": [CANCELLED],
        "retry": X,
        "restart": ["process.restarted"],
        "delete": [CANCELLED, DELETED],
    },
    "waiting_review": {
        "create": ALREADY_EXISTS,
        "start": X,
        "progress": X,
        "log": ["process.log"],
        "step_start": X,
        "step_complete": X,
        "step_fail": X,
        "review": X,
        "approve": ["process.completed"],
        "complete": X,
        "fail": ["process.failed"],
        "cancel": [CANCELLED],
        "retry": X,
        "restart": ["process.restarted"],
        "delete": [CANCELLED, DELETED],
    },
    **{
        terminal: {
            **{name: X for name in COMMANDS},
            "create": ALREADY_EXISTS,
            "retry": ["process.retried"] if terminal == "failed" else X,
            "restart": ["process.restarted"],
            "delete": [DELETED],
        }
        for terminal in ("completed", "failed", "cancelled")
    },
    "deleted": {
        **{name: NOT_FOUND for name in COMMANDS},
        "create": ALREADY_EXISTS,  # an id is never reused: its seq and event ids are taken
    },
}

CASES = [(status, name) for status in SETUPS for name in COMMANDS]


def test_the_table_covers_every_status_and_every_command_type() -> None:
    assert set(EXPECTED) == set(SETUPS)
    assert all(set(row) == set(COMMANDS) for row in EXPECTED.values())
    reachable = {s for s in SETUPS if s not in ("absent", "deleted")}
    assert reachable == set(p.STATUSES)
    process_bodies = {
        obj
        for obj in vars(c).values()
        if isinstance(obj, type) and issubclass(obj, c.Body) and obj.NAME.startswith("process.")
    }
    assert {type(b) for b in COMMANDS.values()} == process_bodies


def _ledger(status: str) -> Ledger:
    ledger = Ledger()
    for body in SETUPS[status]:
        ledger.do(body)
    if ledger.state is not None:
        expected = "cancelled" if status == "deleted" else status
        assert ledger.s.status == expected
        assert ledger.s.deleted is (status == "deleted")
    return ledger


@pytest.mark.parametrize(("status", "command"), CASES, ids=[f"{s}-{n}" for s, n in CASES])
def test_command_in_status(status: str, command: str) -> None:
    ledger = _ledger(status)
    expected = EXPECTED[status][command]
    body = COMMANDS[command]
    if isinstance(expected, str):
        rejected = ledger.reject(body)
        assert rejected.code == expected
        assert rejected.message and rejected.message == str(rejected)
        if expected == INVALID_STATE and ledger.state is not None and command != "step_complete":
            assert status in rejected.message or "step" in rejected.message
    else:
        assert types(ledger.do(body)) == expected


@pytest.mark.parametrize("command", list(COMMANDS))
def test_another_account_sees_no_process(command: str) -> None:
    ledger = _ledger("running")
    rejected = ledger.reject(COMMANDS[command], account="globex")
    # Creating an id that is taken conflicts whoever asks; everything else is not found.
    assert rejected.code == (ALREADY_EXISTS if command == "create" else NOT_FOUND)


def test_an_account_command_sent_to_a_process_is_invalid() -> None:
    ledger = _ledger("running")
    assert ledger.reject(c.CreateToken("ab" * 32, "ci")).code == INVALID
    with pytest.raises(Rejected) as info:
        aggregates.decide(None, replace(ledger.cmd(c.StartProcess()), aggregate_type="flow"))
    assert info.value.code == INVALID


# -- envelope: seq, ids, time --------------------------------------------------------------


def _full_life() -> Ledger:
    ledger = Ledger()
    ledger.do(c.CreateProcess("scan", "site-1", '{"a":1}', STEPS), actor="token:ci")
    ledger.do(c.StartStep("fetch"), actor="runner:1")  # + implied started
    ledger.do(c.ReportProgress(10.0, "fetching"), actor="runner:1")
    ledger.do(c.CompleteStep("fetch", "40 pages"), actor="runner:1")
    ledger.do(c.StartStep("audit"), actor="runner:1")
    ledger.do(c.FailStep("audit", "timeout"), actor="runner:1")
    ledger.do(c.FailProcess("audit failed"), actor="runner:1")
    ledger.do(c.RetryProcess())
    ledger.do(c.CompleteProcess("report-1"), actor="runner:2")  # + implied started
    ledger.do(c.RestartFromStep("audit"))
    ledger.do(c.DeleteProcess())  # pending: cancelled + deleted
    return ledger


def test_events_carry_a_gapless_seq_from_one() -> None:
    ledger = _full_life()
    assert [ev.seq for ev in ledger.events] == list(range(1, len(ledger.events) + 1))
    assert ledger.s.seq == len(ledger.events) == 14


def test_event_ids_are_deterministic_and_unique() -> None:
    ledger = _full_life()
    ids = [ev.event_id for ev in ledger.events]
    assert ids == [e.event_id_for("process", PID, ev.seq) for ev in ledger.events]
    assert len(set(ids)) == len(ids)


def test_the_same_command_on_the_same_state_gives_identical_events() -> None:
    ledger = _ledger("running")
    cmd = ledger.cmd(c.DeleteProcess())
    first = p.decide(ledger.state, cmd)
    # A decider restarted after a crash rebuilds the state from the log and decides again.
    rebuilt = None
    for event in ledger.events:
        rebuilt = p.evolve(rebuilt, event)
    assert rebuilt == ledger.state
    assert p.decide(rebuilt, cmd) == first
    assert p.decide(ledger.state, cmd) == first


def test_every_event_takes_its_time_and_ids_from_the_command() -> None:
    ledger = Ledger()
    for body in SETUPS["pending"] + [c.StartStep("fetch"), c.DeleteProcess()]:
        cmd = ledger.cmd(body, actor="runner:7")
        events = p.decide(ledger.state, cmd)
        for ev in events:
            assert ev.occurred_at == cmd.issued_at
            assert (ev.account, ev.actor, ev.command_id) == ("acme", "runner:7", cmd.command_id)
            assert (ev.correlation_id, ev.causation_id) == (cmd.correlation_id, cmd.causation_id)
            assert (ev.aggregate_type, ev.aggregate_id) == (p.AGGREGATE, PID)
            assert ev.type == ev.data.TYPE
            ledger.state = p.evolve(ledger.state, ev)
        assert ledger.s.time_updated == cmd.issued_at


def test_created_state() -> None:
    ledger = Ledger()
    [created] = ledger.do(c.CreateProcess("scan", "site-1", '{"a":1}', STEPS), actor="token:ci")
    s = ledger.s
    assert created.data == e.ProcessCreated("scan", "site-1", '{"a":1}', STEPS)
    assert (s.id, s.account, s.type, s.created_by, s.site, s.info_json) == (
        PID,
        "acme",
        "scan",
        "token:ci",
        "site-1",
        '{"a":1}',
    )
    assert (s.status, s.progress, s.attempt, s.seq, s.success) == ("pending", 0.0, 1, 1, False)
    assert s.time_created == s.time_updated == created.occurred_at
    assert s.time_started is None and s.time_completed is None
    assert [(st.step_id, st.order, st.enabled, st.status) for st in s.steps] == [
        ("fetch", 1, True, "pending"),
        ("audit", 2, True, "pending"),
        ("report", 3, True, "pending"),
        ("notify", 4, False, "pending"),
    ]


# -- implied start, progress ---------------------------------------------------------------


@pytest.mark.parametrize(
    "body", [c.ReportProgress(5.0), c.StartStep("fetch"), c.CompleteProcess()], ids=str
)
def test_a_report_on_a_pending_process_implies_it_started(body: c.Body) -> None:
    ledger = _ledger("pending")
    events = ledger.do(body)
    assert events[0].type == STARTED
    assert events[0].seq + 1 == events[1].seq
    assert ledger.s.time_started == events[0].occurred_at


def test_start_time_is_the_first_start_only() -> None:
    ledger = _ledger("running")
    started = ledger.s.time_started
    ledger.do(c.ReportProgress(1.0))
    assert ledger.s.time_started == started


def test_progress_and_message() -> None:
    ledger = _ledger("running")
    ledger.do(c.ReportProgress(12.5, "12 of 100"))
    assert (ledger.s.progress, ledger.s.message) == (12.5, "12 of 100")
    ledger.do(c.ReportProgress(20.0))  # no message: the last one stays
    assert (ledger.s.progress, ledger.s.message) == (20.0, "12 of 100")
    ledger.do(c.AppendLog("half way", "info"))
    assert ledger.s.message == "half way"
    ledger.do(c.CompleteProcess("obj-1", '{"n":1}'))
    s = ledger.s
    assert (s.status, s.progress, s.success, s.object_id) == ("completed", 100.0, True, "obj-1")
    assert s.result_summary_json == '{"n":1}'
    assert s.time_completed == ledger.events[-1].occurred_at


@pytest.mark.parametrize("value", [0, 100, 0.0, 100.0, 37.5, 42, 1e-9])
def test_progress_in_range_is_accepted(value: float) -> None:
    body = c.parse_body("process.progress", {"progress": value})
    assert body == c.ReportProgress(float(value))
    assert isinstance(body, c.ReportProgress) and type(body.progress) is float


@pytest.mark.parametrize(
    "value",
    [-1, -0.001, 100.001, 101, math.nan, math.inf, -math.inf, 10**400, True, "50", [50], None],
    ids=lambda v: repr(v)[:12],
)
def test_progress_out_of_range_or_not_a_finite_number_is_invalid(value: Any) -> None:
    with pytest.raises(c.InvalidCommand) as info:
        c.parse_body("process.progress", {"progress": value})
    assert info.value.field == "progress"


def test_progress_is_required() -> None:
    with pytest.raises(c.InvalidCommand, match="progress is required"):
        c.parse_body("process.progress", {"message": "x"})


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"steps": [{"id": "a"}, {"id": "a"}]}, "steps[1].id"),
        ({"steps": [{"id": "a", "order": 2**31}]}, "steps[0].order"),  # Avro int is 32 bits
        ({"steps": [{"id": "a", "order": 1.5}]}, "steps[0].order"),
        ({"steps": [{"id": "\ud800"}]}, "steps[0].id"),
        ({"steps": [{"id": "a", "name": "\udfff"}]}, "steps[0].name"),
        ({"steps": [{"id": "a", "enabled": "yes"}]}, "steps[0].enabled"),
        ({"steps": [{"id": " "}]}, "steps[0].id"),
        ({"steps": {"id": "a"}}, "steps"),
        ({"info": {"ratio": math.nan}}, "info"),
        ({"info": '{"ratio": Infinity}'}, "info"),
        ({"info": "[1, 2]"}, "info"),
        ({"info": "{" * 3}, "info"),
        ({"site": "\ud800"}, "site"),
        ({"type": ""}, "type"),
    ],
    ids=lambda v: str(v)[:24] if isinstance(v, dict) else v,
)
def test_create_validation_names_the_unusable_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(c.InvalidCommand) as info:
        c.parse_body("process.create", {"type": "scan", **data})
    assert info.value.field == field


def test_steps_are_ordered_by_order_then_id_and_order_defaults_to_position() -> None:
    steps = [{"id": "b", "order": 2}, {"id": "c", "order": 1}, {"id": "a", "order": 1}]
    body = c.parse_body("process.create", {"type": "scan", "steps": steps})
    assert isinstance(body, c.CreateProcess)
    assert [(s.step_id, s.order) for s in body.steps] == [("a", 1), ("c", 1), ("b", 2)]
    body = c.parse_body("process.create", {"type": "scan", "steps": [{"id": "x"}, {"id": "y"}]})
    assert isinstance(body, c.CreateProcess)
    assert [(s.step_id, s.name, s.order, s.enabled) for s in body.steps] == [
        ("x", "x", 1, True),
        ("y", "y", 2, True),
    ]


# -- review -----------------------------------------------------------------------------------


def test_review_then_approve_completes() -> None:
    ledger = _ledger("running")
    ledger.do(c.RequestReview('{"issues":3}'))
    assert (ledger.s.status, ledger.s.result_summary_json) == ("waiting_review", '{"issues":3}')
    ledger.do(c.Approve())
    s = ledger.s
    assert (s.status, s.success, s.progress, s.result_summary_json) == (
        "completed",
        True,
        100.0,
        '{"issues":3}',
    )


# -- steps ---------------------------------------------------------------------------------


def test_a_step_runs_and_completes() -> None:
    ledger = _ledger("running")
    [started] = ledger.do(c.StartStep("fetch"))
    step = ledger.s.step("fetch")
    assert step is not None
    assert (step.status, step.time_started) == ("running", started.occurred_at)
    [done] = ledger.do(c.CompleteStep("fetch", "40 pages"))
    step = ledger.s.step("fetch")
    assert step is not None
    assert (step.status, step.time_completed, step.message) == (
        "completed",
        done.occurred_at,
        "40 pages",
    )
    assert ledger.s.status == "running"


def test_a_failed_step_does_not_fail_the_process_and_may_run_again() -> None:
    ledger = _ledger("running")
    ledger.do(c.StartStep("fetch"))
    ledger.do(c.FailStep("fetch", "timeout"))
    step = ledger.s.step("fetch")
    assert step is not None and (step.status, step.exception) == ("failed", "timeout")
    assert ledger.s.status == "running"
    ledger.do(c.StartStep("fetch"))
    step = ledger.s.step("fetch")
    assert step is not None and (step.status, step.exception) == ("running", None)


@pytest.mark.parametrize(
    ("setup", "body", "code"),
    [
        ([c.StartStep("fetch")], c.StartStep("fetch"), INVALID_STATE),  # already running
        ([c.StartStep("fetch"), c.CompleteStep("fetch")], c.StartStep("fetch"), INVALID_STATE),
        ([], c.StartStep("notify"), INVALID_STATE),  # disabled
        ([], c.CompleteStep("ghost"), NOT_FOUND),
        ([], c.FailStep("ghost", "x"), NOT_FOUND),
        ([], c.RestartFromStep("ghost"), NOT_FOUND),
        ([], c.RestartFromStep("notify"), INVALID_STATE),  # disabled
        ([c.StartStep("fetch"), c.CompleteStep("fetch")], c.CompleteStep("fetch"), X),
        ([c.StartStep("fetch"), c.CompleteStep("fetch")], c.FailStep("fetch", "x"), X),
    ],
    ids=[
        "start-running",
        "start-completed",
        "start-disabled",
        "complete-unknown",
        "fail-unknown",
        "restart-unknown",
        "restart-disabled",
        "complete-twice",
        "fail-completed",
    ],
)
def test_step_rejections(setup: list[c.Body], body: c.Body, code: str) -> None:
    ledger = _ledger("running")
    for before in setup:
        ledger.do(before)
    rejected = ledger.reject(body)
    assert rejected.code == code
    if code == NOT_FOUND:
        assert rejected.field == "step_id"


def test_a_step_not_in_the_definition_is_added_after_the_last() -> None:
    ledger = _ledger("running")
    ledger.do(c.StartStep("extra"))
    step = ledger.s.steps[-1]
    assert (step.step_id, step.name, step.order, step.status) == ("extra", "extra", 5, "running")
    ledger.do(c.CompleteStep("extra"))
    assert ledger.s.steps[-1].status == "completed"


@pytest.mark.parametrize(
    ("body", "status"), [(c.FailProcess("x"), "failed"), (c.CancelProcess(), "cancelled")]
)
def test_ending_a_process_ends_its_running_steps(body: c.Body, status: str) -> None:
    ledger = _ledger("running")
    ledger.do(c.StartStep("fetch"))
    ledger.do(c.CompleteStep("fetch"))
    ledger.do(c.StartStep("audit"))
    [end] = ledger.do(body)
    by_id = {st.step_id: st for st in ledger.s.steps}
    assert by_id["fetch"].status == "completed"
    assert (by_id["audit"].status, by_id["audit"].time_completed) == (status, end.occurred_at)
    assert by_id["report"].status == "pending"
    assert ledger.s.time_completed == end.occurred_at


# -- retry ---------------------------------------------------------------------------------


def _failed_mid_run() -> Ledger:
    ledger = _ledger("running")
    ledger.do(c.ReportProgress(40.0))
    ledger.do(c.StartStep("fetch"))
    ledger.do(c.CompleteStep("fetch", "ok"))
    ledger.do(c.StartStep("audit"))
    ledger.do(c.FailProcess("audit crashed"))
    assert (ledger.s.status, ledger.s.exception) == ("failed", "audit crashed")
    return ledger


def test_retry_from_failed_starts_over_with_the_next_attempt() -> None:
    ledger = _failed_mid_run()
    [retried] = ledger.do(c.RetryProcess())
    assert retried.data == e.ProcessRetried(attempt=2)
    s = ledger.s
    assert (s.status, s.attempt, s.progress, s.success, s.exception, s.object_id) == (
        "pending",
        2,
        0.0,
        False,
        None,
        None,
    )
    assert s.time_started is None and s.time_completed is None
    fresh = {d.step_id: p.StepState(d.step_id, d.name, d.order, d.enabled) for d in STEPS}
    assert {st.step_id: st for st in s.steps} == fresh
    assert (s.id, s.type, s.time_created, s.created_by) == (PID, "scan", T0 + 1_000_000, "token:ci")

    ledger.do(c.StartProcess())
    ledger.do(c.FailProcess("again"))
    [again] = ledger.do(c.RetryProcess())
    assert again.data == e.ProcessRetried(attempt=3)
    assert ledger.s.attempt == 3


@pytest.mark.parametrize(
    "status", ["pending", "running", "waiting_review", "completed", "cancelled"]
)
def test_retry_only_from_failed(status: str) -> None:
    rejected = _ledger(status).reject(c.RetryProcess())
    assert (rejected.code, rejected.message) == (
        INVALID_STATE,
        f"cannot retry process {PID}: it is {status}",
    )


# -- restart from a step --------------------------------------------------------------------


def _failed_at_report() -> Ledger:
    ledger = _ledger("running")
    for step in ("fetch", "audit"):
        ledger.do(c.StartStep(step))
        ledger.do(c.CompleteStep(step, f"{step} ok"))
    ledger.do(c.StartStep("report"))
    ledger.do(c.FailStep("report", "disk full"))
    ledger.do(c.FailProcess("report failed"))
    return ledger


@pytest.mark.parametrize("from_step", ["fetch", "audit", "report"])
def test_restart_keeps_the_steps_before_and_resets_that_step_and_later(from_step: str) -> None:
    ledger = _failed_at_report()
    before = {st.step_id: st for st in ledger.s.steps}
    [restarted] = ledger.do(c.RestartFromStep(from_step))
    assert restarted.data == e.ProcessRestarted(from_step, attempt=2)
    s = ledger.s
    assert (s.status, s.attempt, s.success, s.exception, s.time_completed) == (
        "pending",
        2,
        False,
        None,
        None,
    )
    cut = before[from_step].order
    for step in s.steps:
        if step.order < cut:
            assert step == before[step.step_id], f"{step.step_id} keeps its result"
        else:
            assert step == p.StepState(step.step_id, step.name, step.order, step.enabled)
    assert ledger.s.step(from_step) == p.StepState(from_step, before[from_step].name, cut)

    # and runs again from there
    ledger.do(c.StartStep(from_step))
    assert ledger.s.status == "running"
    ledger.do(c.CompleteStep(from_step))
    [again] = ledger.do(c.RestartFromStep(from_step))
    assert again.data == e.ProcessRestarted(from_step, attempt=3)


@pytest.mark.parametrize("status", ["running", "waiting_review", "completed", "cancelled"])
def test_restart_from_any_started_status(status: str) -> None:
    ledger = _ledger(status)
    ledger.do(c.RestartFromStep("fetch"))
    assert (ledger.s.status, ledger.s.attempt) == ("pending", 2)


def test_restart_goes_on_with_the_run_and_keeps_its_result_until_a_new_one() -> None:
    """Unlike retry, a restart continues the run: its start time, progress, object id and
    result summary stay until the restarted run reports new ones (docs/events.md)."""
    ledger = _ledger("running")
    ledger.do(c.StartStep("fetch"))
    ledger.do(c.CompleteProcess("obj-1", '{"pages": 3}'))
    done = ledger.s
    ledger.do(c.RestartFromStep("fetch"))
    s = ledger.s
    assert (s.status, s.success, s.exception, s.time_completed) == ("pending", False, None, None)
    assert (s.time_started, s.progress, s.object_id, s.result_summary_json) == (
        done.time_started,
        100.0,
        "obj-1",
        '{"pages": 3}',
    )
    ledger.do(c.StartStep("fetch"))
    assert ledger.s.time_started == done.time_started
    ledger.do(c.CompleteProcess("obj-2", None))
    assert (ledger.s.object_id, ledger.s.result_summary_json) == ("obj-2", '{"pages": 3}')


def test_restart_of_a_pending_process_is_refused() -> None:
    rejected = _ledger("pending").reject(c.RestartFromStep("fetch"))
    assert rejected.code == INVALID_STATE


# -- delete --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["pending", "running", "waiting_review"])
def test_deleting_an_active_process_cancels_it_first(status: str) -> None:
    ledger = _ledger(status)
    ledger.do(c.StartStep("fetch")) if status != "waiting_review" else None
    cmd = ledger.cmd(c.DeleteProcess())
    events = p.decide(ledger.state, cmd)
    assert types(events) == [CANCELLED, DELETED]
    assert events[0].data == e.ProcessCancelled("deleted")
    assert events[1].seq == events[0].seq + 1
    assert {ev.command_id for ev in events} == {cmd.command_id}
    state = ledger.state
    state = p.evolve(state, events[0])
    assert state.status == "cancelled" and not state.deleted
    if status != "waiting_review":
        assert state.step("fetch").status == "cancelled"  # type: ignore[union-attr]
    state = p.evolve(state, events[1])
    assert state.deleted and state.status == "cancelled"


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
def test_deleting_an_ended_process_keeps_its_status(status: str) -> None:
    ledger = _ledger(status)
    assert types(ledger.do(c.DeleteProcess())) == [DELETED]
    assert ledger.s.status == status and ledger.s.deleted


def test_after_delete_every_command_is_not_found() -> None:
    ledger = _ledger("deleted")
    for name, body in COMMANDS.items():
        expected = ALREADY_EXISTS if name == "create" else NOT_FOUND
        assert ledger.reject(body).code == expected, name


# -- evolve guards, snapshots ---------------------------------------------------------------


def test_evolve_refuses_events_that_cannot_follow() -> None:
    ledger = _ledger("running")
    first = ledger.events[0]
    with pytest.raises(ValueError, match="created twice"):
        p.evolve(ledger.state, first)
    with pytest.raises(ValueError, match="cannot be the first event"):
        p.evolve(None, ledger.events[1])
    token = replace(first, type="account.token_revoked", data=e.TokenRevoked("ab"))
    with pytest.raises(ValueError, match="not a process event"):
        p.evolve(ledger.state, token)


def test_aggregates_route_by_aggregate_type() -> None:
    ledger = _full_life()
    state = None
    for event in ledger.events:
        state = aggregates.evolve(state, event)
    assert state == ledger.state
    with pytest.raises(ValueError, match="unknown aggregate type"):
        aggregates.evolve(None, replace(ledger.events[0], aggregate_type="nonesuch"))
    assert aggregates.stream_key("process", PID) == f"process:{PID}"


def test_a_snapshot_round_trips() -> None:
    ledger = _full_life()
    assert process_from_dict(process_to_dict(ledger.s)) == ledger.s


@pytest.mark.parametrize(
    ("ending", "status"),
    [
        (c.CompleteProcess(), "completed"),
        (c.FailProcess("boom"), "failed"),
        (c.CancelProcess(), "cancelled"),
    ],
)
def test_a_step_still_running_when_the_process_ends_ends_with_it(
    ending: c.Body, status: str
) -> None:
    """No ended Process keeps a step ``running`` (its duration would grow for ever):
    the step takes the Process's end; finished and pending steps keep theirs."""
    ledger = _ledger("running")
    ledger.do(c.StartStep("fetch"))
    ledger.do(c.CompleteStep("fetch"))
    ledger.do(c.StartStep("audit"))
    ledger.do(ending)
    ended = ledger.events[-1].occurred_at
    steps = {s.step_id: s for s in ledger.s.steps}
    assert ledger.s.status == status
    assert (steps["audit"].status, steps["audit"].time_completed) == (status, ended)
    assert steps["fetch"].status == "completed" and steps["fetch"].time_completed != ended
    assert steps["report"].status == "pending" and steps["report"].time_completed is None
