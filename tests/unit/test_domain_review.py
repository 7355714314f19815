"""A review of the Process aggregate and the command fields, from a demanding user's side.

Each accepted command must leave a state the read model can store and read back as it
was (Avro, the projector's fold, DuckDB); each bad field must be refused as a clear
InvalidCommand instead of a 500 or a projector stuck on its batch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from projections.fold import RawMessage, fold_batch
from projections.store import Store
from schemas import default_codec
from streams.decider import Decider, _Accepted
from streams.decider_rebuild import remember
from streams.domain import commands as c
from streams.domain import events as e
from streams.domain import process as p
from streams.domain.command_fields import AVRO_INT_MAX
from streams.domain.rejection import INVALID_STATE, Rejected
from streams.serde import decode_event, encode_event
from streams.topics import Topics

T0 = 1_767_261_600_000_000
STEPS = (
    e.StepDefinition("fetch", "Fetch", 1),
    e.StepDefinition("audit", "Audit", 2),
    e.StepDefinition("report", "Report", 3),
    e.StepDefinition("notify", "Notify", 4, enabled=False),
)


def command(pid: str, n: int, body: c.Body, *, command_id: str | None = None) -> c.Command:
    return c.Command(
        command_id=command_id or f"{pid}-cmd-{n}",
        aggregate_type=p.AGGREGATE,
        aggregate_id=pid,
        issued_at=T0 + n * 1_000_000,
        account="acme",
        actor="token:ci",
        correlation_id="corr",
        causation_id=f"cause-{n}",
        body=body,
    )


def run(pid: str, bodies: Sequence[c.Body]) -> tuple[p.ProcessState | None, list[e.Event]]:
    """Decide and evolve ``bodies`` in order; every one must be accepted."""
    state: p.ProcessState | None = None
    events: list[e.Event] = []
    for n, body in enumerate(bodies):
        for event in p.decide(state, command(pid, n, body)):
            state = p.evolve(state, event)
            events.append(event)
    return state, events


def stored(tmp_path: Path, events: Sequence[e.Event]) -> dict[str, p.ProcessState]:
    """The Processes as the read model has them after ``events``: Avro encoded, folded
    by the projector, written to DuckDB and loaded back."""
    codec = default_codec()
    messages = [RawMessage(0, i, encode_event(codec, ev)) for i, ev in enumerate(events)]
    assert [decode_event(codec, m.value) for m in messages if m.value] == list(events)
    batch = fold_batch({}, messages, topic="review.ledger.events")
    assert not batch.dead_letters
    ids = sorted({ev.aggregate_id for ev in events})
    with Store(tmp_path / "read.duckdb") as store:
        store.write(batch)
        return store.load_processes(ids)


# -- every command in every status, through to the read model ----------------------------

SETUPS: dict[str, list[c.Body]] = {
    "pending": [c.CreateProcess("scan", steps=STEPS)],
    "running": [c.CreateProcess("scan", steps=STEPS), c.StartStep("fetch")],
    "waiting_review": [
        c.CreateProcess("scan", steps=STEPS),
        c.StartStep("fetch"),
        c.CompleteStep("fetch", "ok"),
        c.RequestReview('{"issues":3}'),
    ],
    "completed": [c.CreateProcess("scan", steps=STEPS), c.CompleteProcess("obj-1", '{"a":1}')],
    "failed": [c.CreateProcess("scan", steps=STEPS), c.StartStep("fetch"), c.FailProcess("x")],
    "cancelled": [c.CreateProcess("scan", steps=STEPS), c.CancelProcess("stop")],
}

# Bodies as parse_body makes them, at the bounds of their fields.
LONG = "ß☃😀" * (c.MAX_TEXT // 3)
VARIANTS: dict[str, c.Body] = {
    "start": c.StartProcess(),
    "progress-0": c.parse_body("process.progress", {"progress": 0}),
    "progress-100": c.parse_body("process.progress", {"progress": 100, "message": ""}),
    "progress-long": c.parse_body("process.progress", {"progress": 99.99, "message": LONG}),
    "log": c.parse_body("process.log", {"message": "a\x00b\n\u202e", "level": "error"}),
    "step-start": c.StartStep("audit"),
    "step-start-new": c.StartStep("ünïcode step"),
    "step-complete": c.CompleteStep("fetch", LONG),
    "step-fail": c.FailStep("fetch", LONG),
    "review": c.parse_body("process.waiting_review", {"result_summary": {"ü": [1, None]}}),
    "approve": c.Approve(),
    "complete": c.parse_body("process.complete", {"object_id": "o" * c.MAX_ID}),
    "fail": c.parse_body("process.fail", {"exception": LONG}),
    "cancel": c.CancelProcess(),
    "retry": c.RetryProcess(),
    "restart-first": c.RestartFromStep("fetch"),
    "restart-last": c.RestartFromStep("report"),
    "delete": c.DeleteProcess(),
}
CASES = [(status, name) for status in SETUPS for name in VARIANTS]


def test_every_accepted_command_in_every_status_is_stored_as_decided(tmp_path: Path) -> None:
    """Decide each variant in each status; the read model must hold exactly the state
    the decider has, for every accepted one (one DuckDB write for all of them)."""
    assert set(SETUPS) == set(p.STATUSES)
    live: dict[str, p.ProcessState] = {}
    everything: list[e.Event] = []
    for status, name in CASES:
        pid = f"{status}-{name}"
        state, events = run(pid, SETUPS[status])
        assert state is not None and state.status == status
        try:
            more = p.decide(state, command(pid, 99, VARIANTS[name]))
        except Rejected as rejected:
            assert rejected.code in (INVALID_STATE, "not_found"), (status, name)
            assert rejected.message, (status, name)
            continue
        assert [ev.seq for ev in more] == list(range(state.seq + 1, state.seq + 1 + len(more)))
        for event in more:
            state = p.evolve(state, event)
            assert 0.0 <= state.progress <= 100.0
        live[pid] = state
        everything += events + more
    assert len(live) > 40  # the table is not all rejections
    assert stored(tmp_path, everything) == live


# -- bugs found by this review ----------------------------------------------------------


def test_a_step_added_when_no_order_is_left_is_refused(tmp_path: Path) -> None:
    """A step the definition lacks goes after the last one (order + 1); after an order
    of 2**31 - 1 there is none left, and the read model's int32 column cannot hold one:
    the projector failed on that batch for good."""
    top = (e.StepDefinition("last", "Last", AVRO_INT_MAX),)
    state, events = run(
        "p-top",
        [
            c.parse_body(
                "process.create", {"type": "scan", "steps": [{"id": "last", "order": AVRO_INT_MAX}]}
            ),
            c.StartProcess(),
        ],
    )
    assert state is not None and state.steps[0].order == top[0].order
    with pytest.raises(Rejected) as info:
        p.decide(state, command("p-top", 5, c.StartStep("extra")))
    assert (info.value.code, info.value.field) == (INVALID_STATE, "step_id")
    assert "extra" in info.value.message
    # the defined step still runs, and all of it is storable
    for event in p.decide(state, command("p-top", 6, c.StartStep("last"))):
        state = p.evolve(state, event)
        events.append(event)
    assert stored(tmp_path, events) == {"p-top": state}


def test_a_step_may_still_be_added_right_below_the_limit() -> None:
    state, _ = run(
        "p-below",
        [
            c.CreateProcess("scan", steps=(e.StepDefinition("last", "Last", AVRO_INT_MAX - 1),)),
            c.StartStep("extra"),
        ],
    )
    assert state is not None and state.step("extra") is not None
    assert state.steps[-1].order == AVRO_INT_MAX


@pytest.mark.parametrize(
    ("name", "data", "field"),
    [
        ("process.create", {"type": "scan", "info": {"a": "\ud800"}}, "info"),
        ("process.create", {"type": "scan", "info": {"\udc00": 1}}, "info"),
        ("process.create", {"type": "scan", "info": {"a": [{"b": "x\udfff"}]}}, "info"),
        ("process.complete", {"result_summary": {"a": "\ud800"}}, "result_summary"),
        ("process.waiting_review", {"result_summary": {"\ud83d": 1}}, "result_summary"),
    ],
)
def test_a_lone_surrogate_inside_a_json_field_is_refused(
    name: str, data: dict[str, Any], field: str
) -> None:
    """JSON allows "\\ud800"; the canonical text escaped it, so the command was accepted,
    and every read of that Process then failed to encode its response as UTF-8 (500)."""
    with pytest.raises(c.InvalidCommand) as info:
        c.parse_body(name, data)
    assert info.value.field == field
    assert "Unicode" in info.value.message


def test_a_json_field_with_real_unicode_is_kept() -> None:
    body = c.parse_body("process.create", {"type": "scan", "info": {"k": "😀 ü \u202e"}})
    assert isinstance(body, c.CreateProcess)
    assert json.loads(body.info_json) == {"k": "😀 ü \u202e"}
    rendered = json.dumps(json.loads(body.info_json), ensure_ascii=False).encode("utf-8")
    assert "😀".encode() in rendered


def test_a_huge_wait_in_a_case_step_is_an_invalid_field() -> None:
    """float() of a huge int raises OverflowError, which is not a ValueError: the API
    answered 500 and the decider's command decoding let it escape."""
    data = {"site_id": "s", "name": "n", "steps": [{"action": {"type": "wait", "value": 10**400}}]}
    with pytest.raises(c.InvalidCommand) as info:
        c.parse_body("case.create", data)
    assert info.value.field == "steps[0].action.value"


def test_retry_clears_the_result_summary_of_the_failed_attempt() -> None:
    """A review that is turned down (fail from waiting_review) and retried: the new
    attempt must not show, or complete with, the rejected attempt's result summary,
    just as it does not keep its object_id."""
    state, _ = run(
        "p-rev",
        [
            c.CreateProcess("scan"),
            c.StartProcess(),
            c.RequestReview('{"issues":3}'),
            c.FailProcess("review turned down"),
            c.RetryProcess(),
        ],
    )
    assert state is not None and (state.status, state.attempt) == ("pending", 2)
    assert state.result_summary_json is None
    for event in p.decide(state, command("p-rev", 9, c.CompleteProcess("obj-2"))):
        state = p.evolve(state, event)
    assert (state.status, state.object_id, state.result_summary_json) == (
        "completed",
        "obj-2",
        None,
    )


@pytest.mark.parametrize("value", [-0.0, 0, 0.0])
def test_progress_zero_is_positive_zero(value: float) -> None:
    """-0.0 is within 0..100 but showed as "progress": -0.0 in every read."""
    body = c.parse_body("process.progress", {"progress": value})
    assert isinstance(body, c.ReportProgress)
    assert body.progress == 0.0 and math.copysign(1.0, body.progress) == 1.0


# -- properties the brief asks for, on the implementation as it is ------------------------


@pytest.mark.parametrize(
    "value", [math.nan, math.inf, -math.inf, -1e-300, 100.00000000000001, 10**400, "50", True]
)
def test_progress_outside_0_to_100_or_not_a_number_is_refused(value: Any) -> None:
    with pytest.raises(c.InvalidCommand) as info:
        c.parse_body("process.progress", {"progress": value})
    assert info.value.field == "progress"


@pytest.mark.parametrize(
    ("name", "data", "field"),
    [
        ("process.fail", {"exception": ""}, "exception"),
        ("process.fail", {"exception": " \n\t"}, "exception"),
        ("process.fail", {"exception": "x" * (c.MAX_TEXT + 1)}, "exception"),
        ("process.step_fail", {"step_id": "s", "exception": ""}, "exception"),
        ("process.step_start", {"step_id": ""}, "step_id"),
        ("process.restart", {"step_id": "s" * (c.MAX_ID + 1)}, "step_id"),
        ("process.complete", {"object_id": "o" * (c.MAX_ID + 1)}, "object_id"),
        ("process.complete", {"object_id": 7}, "object_id"),
        ("process.complete", {"result_summary": [1, 2]}, "result_summary"),
        ("process.complete", {"result_summary": "not json"}, "result_summary"),
        ("process.complete", {"result_summary": {"x": math.nan}}, "result_summary"),
        ("process.log", {"message": "m", "level": "fatal"}, "level"),
        ("process.log", {"message": ""}, "message"),
        ("process.progress", {"progress": 5, "message": "m" * (c.MAX_TEXT + 1)}, "message"),
    ],
)
def test_unusable_fields_are_named(name: str, data: dict[str, Any], field: str) -> None:
    with pytest.raises(c.InvalidCommand) as info:
        c.parse_body(name, data)
    assert info.value.field == field and info.value.message


def test_a_repeated_command_id_adds_no_event_even_after_a_rebuild() -> None:
    """The decider keeps the command ids an aggregate accepted: the same command again
    (a client retry, a redelivery after a crash) answers the first result, no new
    events, also when the decider rebuilt its state from the ledger."""
    decider = Decider("127.0.0.1:1", Topics("review."), default_codec())
    cmds = [
        command("p-idem", 0, c.CreateProcess("scan", steps=STEPS)),
        command("p-idem", 1, c.StartStep("fetch")),
        command("p-idem", 2, c.ReportProgress(10.0)),
    ]
    events: list[e.Event] = []
    for cmd in cmds:
        decided = decider._decide(cmd)
        assert isinstance(decided, _Accepted)
        events += decided.events
    before = decider.aggregates["process:p-idem"].state
    for cmd in cmds:
        again = decider._decide(cmd)
        assert again == (cmd, decider.aggregates["process:p-idem"])
    assert decider.aggregates["process:p-idem"].state == before
    assert [ev.seq for ev in events] == [1, 2, 3, 4]  # create, started, step, progress

    rebuilt = Decider("127.0.0.1:1", Topics("review."), default_codec())
    for offset, event in enumerate(events):
        remember(rebuilt.aggregates, event, 0, offset)
    for cmd in cmds:
        assert rebuilt._decide(cmd) == (cmd, rebuilt.aggregates["process:p-idem"])
    assert rebuilt.aggregates["process:p-idem"].state == before


def test_deciding_twice_on_the_same_state_gives_byte_identical_events() -> None:
    state, _ = run("p-det", SETUPS["running"])
    codec = default_codec()
    cmd = command("p-det", 9, c.DeleteProcess())
    first = [encode_event(codec, ev) for ev in p.decide(state, cmd)]
    second = [encode_event(codec, ev) for ev in p.decide(state, cmd)]
    assert first == second and len(first) == 2


@pytest.mark.parametrize("step_id", ["a/b", "/", ".", ".."])
def test_a_step_id_that_no_url_can_address_is_refused(step_id: str) -> None:
    """Steps are driven and read at /process/{id}/steps/{step_id}/...; the router never
    matches a '/' (not even as %2F) and clients normalise '.' and '..' away."""
    with pytest.raises(c.InvalidCommand) as info:
        c.parse_body("process.create", {"type": "scan", "steps": [{"id": "ok"}, {"id": step_id}]})
    assert info.value.field == "steps[1].id"


@pytest.mark.parametrize("step_id", ["a.b", "...", "a b", "😀", "a%2Fb", "a\\b"])
def test_other_step_ids_are_kept(step_id: str) -> None:
    body = c.parse_body("process.create", {"type": "scan", "steps": [{"id": step_id}]})
    assert isinstance(body, c.CreateProcess) and body.steps[0].step_id == step_id
