"""A node whose ``schemas/`` is older than the decider's (no pure broker needed): the
event written with the newer schema is dead-lettered as ``unknown_fingerprint``, every
later event of its aggregate as ``sequence_gap`` (the aggregate is frozen), and the
projector's log says in one line what it means and what to do. An upgraded codec folds
the same messages whole, which is what ``runledger replay`` does after the upgrade
(tests/integration/test_dlq_schema_skew.py runs that on the broker)."""

from __future__ import annotations

import json
import logging

import pytest

from projections.dead_letters import log_dead_letters
from projections.fold import SEQUENCE_GAP, UNKNOWN_FINGERPRINT, RawMessage, fold_batch
from schemas import Codec, Registry, default_codec
from streams.domain import events as e
from streams.domain.aggregates import stream_key
from streams.domain.caserun_messages import (
    CaseRunCompleted,
    CaseRunCreated,
    CaseStepPassed,
    CaseStepStarted,
)
from streams.serde import encode_event

T0 = 1_767_225_600_000_000
TOPIC = "t.ledger.events"
STEPS = [{"action": {"type": "navigate", "path": "/"}, "assertion": None}]
NEWER = ("caserun.created", 2)  # what the old node lacks: the newest caserun.created


def old_codec() -> Codec:
    """The codec of a node released before ``caserun.created`` version 2."""
    return Codec(Registry([s for s in Registry.load() if (s.name, s.version) != NEWER]))


def caserun_events(run_id: str) -> list[e.Event]:
    """A whole CaseRun; its first event is written with caserun.created v2 (newest)."""
    payloads: list[e.Payload] = [
        CaseRunCreated("site-1", "case-1", json.dumps(STEPS), "home", site_url="https://x.test"),
        CaseStepStarted(0, "action"),
        CaseStepPassed(0, "action"),
        CaseRunCompleted("passed"),
    ]
    return [
        e.Event(
            event_id=e.event_id_for("caserun", run_id, seq),
            aggregate_type="caserun",
            aggregate_id=run_id,
            seq=seq,
            type=data.TYPE,
            occurred_at=T0 + seq * 1000,
            account="acme",
            actor="tester",
            command_id=f"cmd-{run_id}-{seq}",
            correlation_id="corr",
            causation_id="cause",
            data=data,
        )
        for seq, data in enumerate(payloads, 1)
    ]


def encoded(events: list[e.Event]) -> list[tuple[bytes, bytes]]:
    codec = default_codec()
    return [
        (stream_key(ev.aggregate_type, ev.aggregate_id).encode(), encode_event(codec, ev))
        for ev in events
    ]


def test_the_old_codec_really_lacks_only_the_newest_caserun_created() -> None:
    new, old = default_codec(), old_codec()
    assert new.registry.latest("caserun.created").version == 2
    assert old.registry.latest("caserun.created").version == 1
    assert len(list(new.registry)) == len(list(old.registry)) + 1


def test_an_unknown_fingerprint_freezes_the_aggregate_of_an_old_node() -> None:
    records = [
        RawMessage(0, offset, value, key)
        for offset, (key, value) in enumerate(encoded(caserun_events("cr-1")))
    ]
    old = fold_batch({}, records, topic=TOPIC, codec=old_codec())
    assert [(d.reason, d.message.offset) for d in old.dead_letters] == [
        (UNKNOWN_FINGERPRINT, 0),
        (SEQUENCE_GAP, 1),
        (SEQUENCE_GAP, 2),
        (SEQUENCE_GAP, 3),
    ]
    assert "no released schema has fingerprint" in old.dead_letters[0].error
    assert "caserun cr-1 is at seq 0; seq 2 leaves a gap" in old.dead_letters[1].error
    assert old.states == {} and old.positions == {0: 4}

    upgraded = fold_batch({}, records, topic=TOPIC, codec=default_codec())
    assert upgraded.dead_letters == ()
    state = upgraded.states[("caserun", "cr-1")]
    assert state.seq == 4 and getattr(state, "status", None) == "passed"


def test_the_projector_log_says_what_an_unknown_fingerprint_means_and_what_to_do(
    caplog: pytest.LogCaptureFixture,
) -> None:
    records = [
        RawMessage(1, 10 + i, value, key)
        for i, (key, value) in enumerate(encoded(caserun_events("cr-2")))
    ]
    batch = fold_batch({}, records, topic=TOPIC, codec=old_codec())
    with caplog.at_level(logging.WARNING, logger="projections.projector"):
        log_dead_letters(TOPIC, "t.ledger.dlq", batch.dead_letters)
    summary, advice = caplog.records
    assert summary.levelno == logging.WARNING
    assert summary.getMessage().startswith(
        "projector: dead-lettered 4 messages of t.ledger.events to t.ledger.dlq "
        "(3 sequence_gap, 1 unknown_fingerprint); the first at partition 1 offset 10: "
    )
    text = advice.getMessage()
    assert advice.levelno == logging.ERROR and "\n" not in text
    assert "partition 1 offset 10 of t.ledger.events" in text
    assert "schemas/ are probably older than the writer's" in text
    for step in ("upgrade this node", "runledger verify", "runledger replay", "swap"):
        assert step in text, step


def test_other_dead_letters_get_the_summary_line_only(caplog: pytest.LogCaptureFixture) -> None:
    batch = fold_batch({}, [RawMessage(0, 5, b"\x00junk", b"k")], topic=TOPIC)
    with caplog.at_level(logging.WARNING, logger="projections.projector"):
        log_dead_letters(TOPIC, "t.ledger.dlq", batch.dead_letters)
    (only,) = caplog.records
    assert "(1 undecodable)" in only.getMessage() and "runledger dlq" in only.getMessage()
