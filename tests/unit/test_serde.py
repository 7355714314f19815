"""Events, commands and outcomes to bytes and back (``streams.serde``), no broker."""

from __future__ import annotations

import json
from dataclasses import fields, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import DecodeError, default_codec
from schemas.codec import HEADER_LEN
from streams import serde
from streams.domain import caserun as cr
from streams.domain import commands as c
from streams.domain import events as e
from streams.domain import flowrun as fr
from streams.serde import EventPosition, MalformedMessage, Outcome

CODEC = default_codec()
T = 1_767_261_600_000_000  # 2026-01-01T10:00:00Z, microseconds

STEPS = (
    e.StepDefinition("fetch", "Fetch pages", 1),
    e.StepDefinition("audit", "Audit", 2, enabled=False),
)

# One payload per event type, every optional field set (so a dropped field shows).
PAYLOADS: list[e.Payload] = [
    e.ProcessCreated("page_scan", "site-42", '{"url":"https://example.com"}', STEPS),
    e.ProcessStarted(),
    e.ProgressReported(37.5, "15 of 40 pages"),
    e.StepStarted("fetch"),
    e.StepCompleted("fetch", "40 pages"),
    e.StepFailed("audit", "TimeoutError"),
    e.LogAppended("robots.txt disallows /admin", "warning"),
    e.ReviewRequested('{"issues":12}'),
    e.ProcessCompleted("report-88", '{"issues":12}'),
    e.ProcessFailed("step audit failed"),
    e.ProcessCancelled("superseded"),
    e.ProcessRetried(2),
    e.ProcessRestarted("audit", 3),
    e.ProcessDeleted(),
    e.TokenCreated("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "ci"),
    e.TokenRevoked("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
    e.SiteCreated("https://example.com/shop"),
    e.SiteDeleted(),
    e.FlowCreated(
        "two steps",
        '[{"data":{"task_type":"scan"},"id":"1"},{"data":{"task_type":"wait"},"id":"2"}]',
        '[{"id":"e1","source":"1","target":"2"}]',
        '{"end_on_fail":true}',
    ),
    e.FlowDeleted(),
    e.CaseCreated("site-1", "contact form", '[{"action":{"path":"/","type":"navigate"}}]'),
    e.CaseDeleted(),
]

NODES = (
    '[{"data":{"configs":{},"task_type":"scan"},"id":"1"},'
    '{"data":{"configs":{},"task_type":"wait"},"id":"2"}]'
)
EDGES = '[{"id":"e1","source":"1","target":"2"}]'
CASE_STEPS = '[{"action":{"path":"/","type":"navigate"},"assertion":{"type":"exists"}}]'

# FlowRun and CaseRun payloads, defined beside their aggregates.
RUN_PAYLOADS: list[e.Payload] = [
    fr.FlowRunCreated("site-1", "flow-1", NODES, EDGES, False, "two steps"),
    fr.NodeStarted("1", 2),
    fr.NodePassed("1", '{"similarity":99.5}', "scan-1"),
    fr.NodeFailed("2", "TimeoutError", '{"status":500}', "hook-1"),
    fr.NodeSkipped("2", "cancelled"),
    fr.FlowRunLogged("scan done", "1"),
    fr.FlowRunCompleted("passed"),
    fr.FlowRunCancelled("stop"),
    fr.FlowRunRetried(2),
    fr.FlowRunDeleted(),
    cr.CaseRunCreated("site-1", "case-1", CASE_STEPS, "contact", "flowrun-1", "2"),
    cr.CaseStepStarted(0, "action"),
    cr.CaseStepPassed(0, "action"),
    cr.CaseStepFailed(0, "assertion", "not found", "ab" * 16),
    cr.CaseRunCompleted("failed"),
    cr.CaseRunCancelled("stop"),
    cr.CaseRunDeleted(),
]
PAYLOADS += RUN_PAYLOADS

# The same types with every optional field left at its default (None, "{}", ()).
MINIMAL: list[e.Payload] = [
    e.ProcessCreated("page_scan"),
    e.ProgressReported(0.0),
    e.StepCompleted("fetch"),
    e.LogAppended("hello"),
    e.ReviewRequested(),
    e.ProcessCompleted(),
    e.ProcessCancelled(),
    fr.FlowRunCreated("site-1", "flow-1", NODES, EDGES),
    fr.NodePassed("1"),
    fr.NodeFailed("2", "boom"),
    fr.FlowRunLogged("hello"),
    fr.FlowRunCancelled(),
    cr.CaseRunCreated("site-1", "case-1", CASE_STEPS),
    cr.CaseStepFailed(0, "action", "boom"),
    cr.CaseRunCancelled(),
]


def _event(data: e.Payload, seq: int = 4) -> e.Event:
    aggregate = data.TYPE.partition(".")[0]
    return e.Event(
        event_id=e.event_id_for("process", "proc-7f3a", seq),
        aggregate_type=aggregate,
        aggregate_id="proc-7f3a",
        seq=seq,
        type=data.TYPE,
        occurred_at=T + seq,
        account="acme",
        actor="runner:scan-1",
        command_id=f"cmd-{seq}",
        correlation_id="corr-1",
        causation_id="job-1",
        data=data,
    )


def test_the_payload_lists_cover_every_event_type() -> None:
    assert {p.TYPE for p in PAYLOADS} == set(e.PAYLOAD_TYPES)


@pytest.mark.parametrize("data", PAYLOADS + MINIMAL, ids=lambda p: p.TYPE)
def test_every_event_round_trips_through_bytes(data: e.Payload) -> None:
    event = _event(data)
    encoded = serde.encode_event(CODEC, event)
    assert encoded[:HEADER_LEN] == CODEC.registry.latest(data.TYPE).header
    decoded = serde.decode_event(CODEC, encoded)
    assert decoded == event
    assert type(decoded.data) is type(data)
    assert serde.encode_event(CODEC, decoded) == encoded, "encoding is deterministic"


def test_payload_fields_match_their_schema_fields() -> None:
    for kind, names in e.PAYLOAD_FIELDS.items():
        schema_fields = CODEC.registry.latest(kind).field_names
        assert schema_fields[: len(e.ENVELOPE_FIELDS)] == e.ENVELOPE_FIELDS
        assert set(schema_fields[len(e.ENVELOPE_FIELDS) :]) == set(names), kind


def test_a_record_whose_type_does_not_match_its_schema_is_malformed() -> None:
    record = serde.event_to_record(_event(e.ProcessStarted()))
    lying = CODEC.encode("process.started", {**record, "type": "process.cancelled"})
    with pytest.raises(MalformedMessage, match="schema process.started carries an event typed"):
        serde.decode_event(CODEC, lying)


def test_commands_and_outcomes_are_not_events() -> None:
    command = serde.encode_command(CODEC, _command(c.StartProcess()))
    with pytest.raises(MalformedMessage, match="schema command carries an event typed None"):
        serde.decode_event(CODEC, command)
    event = serde.encode_event(CODEC, _event(e.ProcessStarted()))
    with pytest.raises(MalformedMessage, match="expected a command, got a process.started"):
        serde.decode_command(CODEC, event)
    with pytest.raises(MalformedMessage, match="expected an outcome, got a command"):
        serde.decode_outcome(CODEC, command)


def test_event_from_record_refuses_an_unknown_type() -> None:
    record = serde.event_to_record(_event(e.ProcessStarted()))
    with pytest.raises(MalformedMessage, match="unknown event type 'process.teleported'"):
        serde.event_from_record({**record, "type": "process.teleported"})


def test_malformed_message_is_a_decode_error() -> None:
    assert issubclass(MalformedMessage, DecodeError)


# -- commands ----------------------------------------------------------------------------


def _command(body: c.Body, reply_to: str | None = "node-1") -> c.Command:
    aggregate = "account" if body.NAME.startswith("account.") else "process"
    return c.Command(
        command_id="cmd-1",
        aggregate_type=aggregate,
        aggregate_id="proc-7f3a" if aggregate == "process" else "acme",
        issued_at=T,
        account="acme",
        actor="token:ci",
        correlation_id="corr-1",
        causation_id="cmd-0",
        body=body,
        reply_to=reply_to,
    )


# One body per command type, fields as parse_body would produce them (canonical JSON,
# steps sorted by order).
BODIES: list[c.Body] = [
    c.CreateProcess("page_scan", "site-42", '{"a":[1,2],"b":"x"}', STEPS),
    c.CreateProcess("page_scan"),
    c.StartProcess(),
    c.ReportProgress(37.5, "15 of 40"),
    c.ReportProgress(100.0),
    c.StartStep("fetch"),
    c.CompleteStep("fetch", "done"),
    c.CompleteStep("fetch"),
    c.FailStep("audit", "TimeoutError"),
    c.AppendLog("hello", "debug"),
    c.RequestReview('{"issues":12}'),
    c.RequestReview(),
    c.Approve(),
    c.CompleteProcess("report-88", '{"issues":12}'),
    c.CompleteProcess(),
    c.FailProcess("boom"),
    c.CancelProcess("superseded"),
    c.CancelProcess(),
    c.RetryProcess(),
    c.RestartFromStep("audit"),
    c.DeleteProcess(),
    c.CreateToken("ab" * 32, "ci"),
    c.RevokeToken("ab" * 32),
]


def test_the_command_list_covers_every_command_type() -> None:
    # By module contents: slots=True dataclasses leave stale classes in __subclasses__.
    defined = {
        obj
        for obj in vars(c).values()
        if isinstance(obj, type) and issubclass(obj, c.Body) and obj is not c.Body
    }
    assert {type(b) for b in BODIES} == defined


@pytest.mark.parametrize("body", BODIES, ids=lambda b: b.NAME)
@pytest.mark.parametrize("reply_to", [None, "node-1"])
def test_every_command_round_trips_through_bytes(body: c.Body, reply_to: str | None) -> None:
    command = _command(body, reply_to)
    assert serde.decode_command(CODEC, serde.encode_command(CODEC, command)) == command


@pytest.mark.parametrize("body", BODIES, ids=lambda b: b.NAME)
def test_body_to_payload_is_the_inverse_of_parse_body(body: c.Body) -> None:
    payload = c.body_to_payload(body)
    assert c.parse_body(body.NAME, json.loads(json.dumps(payload))) == body


def _raw_command(**changes: Any) -> bytes:
    record = {
        "command_id": "cmd-9",
        "aggregate_type": "process",
        "aggregate_id": "p",
        "name": "process.progress",
        "issued_at": T,
        "account": "acme",
        "actor": "runner",
        "correlation_id": "c",
        "causation_id": "c",
        "payload_json": '{"progress": 10}',
        "reply_to": None,
    }
    return CODEC.encode("command", {**record, **changes})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"payload_json": "not json"}, "command cmd-9: Expecting value"),
        ({"payload_json": "[1, 2]"}, "payload_json must hold a JSON object"),
        ({"payload_json": '{"progress": 101}'}, "progress must be between 0 and 100"),
        ({"payload_json": '{"progress": 1' + "0" * 400 + "}"}, "between 0 and 100"),
        ({"payload_json": '{"progress": NaN}'}, "between 0 and 100"),
        ({"name": "process.teleport"}, "unknown command 'process.teleport'"),
        ({"name": "process.log", "payload_json": '{"message": "\\ud800"}'}, "lone surrogate"),
        ({"name": "process.create", "payload_json": '{"type": "x", "info": {"a": NaN}}'}, "info"),
        ({"name": "process.create", "payload_json": "[" * 100_000 + "]" * 100_000}, "recursion"),
    ],
    ids=[
        "not-json",
        "not-object",
        "progress-range",
        "huge-int",
        "nan",
        "unknown-name",
        "surrogate",
        "nan-in-info",
        "too-deep",
    ],
)
def test_an_unusable_command_is_malformed_never_another_error(
    changes: dict[str, Any], message: str
) -> None:
    # Anything else escaping decode_command would crash the decider on every restart.
    with pytest.raises(MalformedMessage, match=message):
        serde.decode_command(CODEC, _raw_command(**changes))


_json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
_json = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
_keys = st.sampled_from(
    ["type", "site", "info", "steps", "progress", "message", "step_id", "exception",
     "level", "result_summary", "object_id", "reason", "token_hash", "name"]
)  # fmt: skip
_names = st.sampled_from(sorted({b.NAME for b in BODIES}) + ["process.nope"])


@settings(max_examples=200, deadline=None)
@given(name=_names, payload=st.dictionaries(_keys, _json, max_size=5))
def test_any_payload_decodes_to_a_command_that_round_trips_or_is_malformed(
    name: str, payload: dict[str, Any]
) -> None:
    """A producer can put anything in payload_json; the decider only ever sees a valid
    command (that encodes again identically) or a MalformedMessage to dead-letter."""
    try:
        text = json.dumps(payload)
    except ValueError:
        return
    try:
        command = serde.decode_command(CODEC, _raw_command(name=name, payload_json=text))
    except MalformedMessage:
        return
    again = serde.decode_command(CODEC, serde.encode_command(CODEC, command))
    assert again == command


# -- outcomes ----------------------------------------------------------------------------


OUTCOMES = [
    Outcome(
        command_id="cmd-1",
        aggregate_type="process",
        aggregate_id="proc-7f3a",
        command="process.delete",
        decided_at=T,
        account="acme",
        actor="token:ci",
        accepted=True,
        events=(
            EventPosition(5, "process.cancelled", 3, 1207),
            EventPosition(6, "process.deleted", 3, 1208),
        ),
        state_json='{"id":"proc-7f3a"}',
        reply_to="node-1",
    ),
    Outcome(
        command_id="cmd-2",
        aggregate_type="process",
        aggregate_id="proc-7f3a",
        command="process.retry",
        decided_at=T + 1,
        account="acme",
        actor="token:ci",
        accepted=False,
        reason_code="invalid_state",
        reason="cannot retry process proc-7f3a: it is running",
        field=None,
    ),
    Outcome(
        command_id="cmd-1",
        aggregate_type="process",
        aggregate_id="proc-7f3a",
        command="process.delete",
        decided_at=T + 2,
        account="acme",
        actor="token:ci",
        accepted=True,
        duplicate=True,
        events=(EventPosition(5, "process.cancelled", 3, 1207),),
    ),
    Outcome(
        command_id="cmd-3",
        aggregate_type="process",
        aggregate_id="proc-7f3a",
        command="process.restart",
        decided_at=T + 3,
        account="acme",
        actor="token:ci",
        accepted=False,
        reason_code="not_found",
        reason="process proc-7f3a has no step ghost",
        field="step_id",
    ),
]


def test_the_outcomes_set_every_field_somewhere() -> None:
    for f in fields(Outcome):
        assert any(getattr(o, f.name) != f.default for o in OUTCOMES), f.name


@pytest.mark.parametrize("outcome", OUTCOMES, ids=lambda o: o.command_id + str(o.decided_at))
def test_every_outcome_round_trips_through_bytes(outcome: Outcome) -> None:
    decoded = serde.decode_outcome(CODEC, serde.encode_outcome(CODEC, outcome))
    assert decoded == outcome
    assert decoded.position == outcome.position


def test_outcome_position_is_the_last_event_or_none() -> None:
    assert OUTCOMES[0].position == (3, 1208)
    assert OUTCOMES[1].position is None
    assert replace(OUTCOMES[1], events=()).position is None


# -- FlowRun and CaseRun commands ---------------------------------------------------------

RUN_BODIES: list[c.Body] = [
    fr.CreateFlowRun("site-1", "flow-1", NODES, EDGES, False, "two steps"),
    fr.CreateFlowRun("site-1", "flow-1", NODES, "[]"),
    fr.NodeStart("1"),
    fr.NodePass("1", '{"similarity":99.5}', "scan-1"),
    fr.NodePass("1"),
    fr.NodeFail("2", "TimeoutError", '{"status":500}', "hook-1"),
    fr.NodeFail("2", "TimeoutError"),
    fr.NodeSkip("2", "a parent failed"),
    fr.LogFlowRun("scan done", "1"),
    fr.LogFlowRun("hello"),
    fr.CompleteFlowRun("passed"),
    fr.CancelFlowRun("stop"),
    fr.CancelFlowRun(),
    fr.RetryFlowRun(),
    fr.DeleteFlowRun(),
    cr.CreateCaseRun("site-1", "case-1", CASE_STEPS, "contact", "flowrun-1", "2"),
    cr.CreateCaseRun("site-1", "case-1", CASE_STEPS),
    cr.CaseStepStart(0, "action"),
    cr.CaseStepPass(0, "assertion"),
    cr.CaseStepFail(0, "assertion", "not found", "ab" * 16),
    cr.CaseStepFail(0, "action", "boom"),
    cr.CancelCaseRun("stop"),
    cr.CancelCaseRun(),
    cr.DeleteCaseRun(),
]


def test_the_run_command_list_covers_every_run_command_type() -> None:
    assert {type(b) for b in RUN_BODIES} == {*fr.BODIES, *cr.BODIES}


@pytest.mark.parametrize("body", RUN_BODIES, ids=lambda b: b.NAME)
def test_every_run_command_round_trips_through_bytes(body: c.Body) -> None:
    aggregate = body.NAME.partition(".")[0]
    command = replace(_command(body), aggregate_type=aggregate, aggregate_id=f"{aggregate}-1")
    encoded = serde.encode_command(CODEC, command)
    assert serde.decode_command(CODEC, encoded) == command
    payload = c.body_to_payload(body)
    assert c.parse_body(body.NAME, json.loads(json.dumps(payload))) == body
