"""A command record that decodes but whose ``payload_json`` body does not parse: serde
says so with the record's envelope, and the outcome built from it rejects the command
(code ``invalid``, the offending field), so an outside producer waiting on
``ledger.outcomes`` gets an answer. Anything that is not a command record at all stays
a plain decode error: there is nobody to answer."""

from __future__ import annotations

from typing import Any

import pytest

from schemas import DecodeError, default_codec
from streams import serde
from streams.domain.rejection import INVALID
from streams.outcome import unusable_body_outcome
from streams.serde import CommandEnvelope, MalformedMessage, UnusableBody

CODEC = default_codec()
T0 = 1_767_225_600_000_000


def raw_command(**changes: Any) -> bytes:
    record = {
        "command_id": "cmd-7",
        "aggregate_type": "process",
        "aggregate_id": "p-1",
        "name": "process.progress",
        "issued_at": T0,
        "account": "acme",
        "actor": "outside",
        "correlation_id": "corr-1",
        "causation_id": "cause-1",
        "payload_json": '{"progress": 10}',
        "reply_to": "worker-3",
    }
    return CODEC.encode("command", {**record, **changes})


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"payload_json": "{not json"}, "payload_json", "payload_json is not JSON"),
        ({"payload_json": "[1, 2]"}, "payload_json", "payload_json must hold a JSON object"),
        ({"payload_json": '{"progress": 101}'}, "progress", "progress must be between 0 and 100"),
        ({"payload_json": "[" * 100_000 + "]" * 100_000}, "payload_json", "is not JSON"),
        ({"name": "process.fly", "payload_json": "{}"}, None, "unknown command 'process.fly'"),
    ],
    ids=["not-json", "not-object", "invalid-field", "too-deep", "unknown-name"],
)
def test_a_bad_body_is_rejected_by_its_envelope(
    changes: dict[str, Any], field: str | None, reason: str
) -> None:
    with pytest.raises(UnusableBody) as caught:
        serde.decode_command(CODEC, raw_command(**changes))
    bad = caught.value
    # Still a MalformedMessage (dead-lettered), with the reason operators saw before.
    assert isinstance(bad, MalformedMessage)
    assert str(bad).startswith("command cmd-7: ")
    assert bad.envelope == CommandEnvelope(
        command_id="cmd-7",
        aggregate_type="process",
        aggregate_id="p-1",
        name=changes.get("name", "process.progress"),
        issued_at=T0,
        account="acme",
        actor="outside",
        correlation_id="corr-1",
        causation_id="cause-1",
        reply_to="worker-3",
    )

    outcome = unusable_body_outcome(bad, decided_at=T0 + 5)

    assert outcome == serde.Outcome(
        command_id="cmd-7",
        aggregate_type="process",
        aggregate_id="p-1",
        command=changes.get("name", "process.progress"),
        decided_at=T0 + 5,
        account="acme",
        actor="outside",
        accepted=False,
        reason_code=INVALID,
        reason=outcome.reason,
        field=field,
        reply_to="worker-3",
    )
    assert reason in (outcome.reason or "")
    # It goes on the wire like any other outcome.
    assert serde.decode_outcome(CODEC, serde.encode_outcome(CODEC, outcome)) == outcome


def test_the_rejection_code_is_the_one_the_api_answers_422_for() -> None:
    from api.errors import REJECTION_STATUS

    with pytest.raises(UnusableBody) as caught:
        serde.decode_command(CODEC, raw_command(payload_json='{"progress": -1}'))
    outcome = unusable_body_outcome(caught.value, decided_at=T0)
    assert REJECTION_STATUS[outcome.reason_code or ""] == 422


def test_a_reply_to_left_out_stays_left_out() -> None:
    with pytest.raises(UnusableBody) as caught:
        serde.decode_command(CODEC, raw_command(payload_json="nope", reply_to=None))
    assert unusable_body_outcome(caught.value, decided_at=T0).reply_to is None


@pytest.mark.parametrize(
    "value",
    [
        None,  # a tombstone
        b"\xc3\x01" + b"\x00" * 8 + b"junk",  # an unknown fingerprint
        b"not avro at all",
    ],
    ids=["tombstone", "unknown-schema", "not-avro"],
)
def test_bytes_that_are_no_command_record_are_no_unusable_body(value: bytes | None) -> None:
    with pytest.raises(DecodeError) as caught:
        serde.decode_command(CODEC, value)  # type: ignore[arg-type]
    assert not isinstance(caught.value, UnusableBody)


def test_another_record_on_the_commands_topic_is_no_unusable_body() -> None:
    outcome = serde.Outcome("c", "process", "p", "process.start", T0, "a", "b", True)
    with pytest.raises(MalformedMessage) as caught:
        serde.decode_command(CODEC, serde.encode_outcome(CODEC, outcome))
    assert not isinstance(caught.value, UnusableBody)
