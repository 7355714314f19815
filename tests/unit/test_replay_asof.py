"""As-of and audit history, the pure parts (runledger.audit): no broker."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runledger.audit import AuditError, history, iso, parse_time, render_table, state_as_of
from streams.domain import commands as c
from streams.domain.aggregates import decide, evolve
from streams.domain.events import Event, StepDefinition
from streams.domain.rejection import Rejected
from streams.serde import EventPosition, Outcome

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
BODIES: list[c.Body] = [
    c.CreateProcess("scan", None, "{}", (StepDefinition("a", "A", 1),)),
    c.StartStep("a"),
    *[c.ReportProgress(float(p)) for p in range(10, 100, 10)],
    c.CompleteStep("a"),
    c.CompleteProcess("done"),
    c.ReportProgress(50.0),  # rejected: the process has completed
]


def run() -> tuple[list[Event], list[object], list[Outcome]]:
    """Events, the state after each event, and one outcome per command."""
    state = None
    events: list[Event] = []
    states: list[object] = []
    outcomes: list[Outcome] = []
    for i, body in enumerate(BODIES):
        at = T0 + i * 1_000_000
        cmd = c.Command(f"c{i}", "process", "p1", at, "acme", "ann", "r", "r", body)
        try:
            new = decide(state, cmd)
        except Rejected as exc:
            outcomes.append(
                Outcome(
                    f"c{i}",
                    "process",
                    "p1",
                    body.NAME,
                    at,
                    "acme",
                    "ann",
                    False,
                    reason_code=exc.code,
                    reason=str(exc),
                )
            )
            continue
        positions = []
        for ev in new:
            state = evolve(state, ev)
            events.append(ev)
            states.append(state)
            positions.append(EventPosition(ev.seq, ev.type, 0, ev.seq))
        outcomes.append(
            Outcome(
                f"c{i}",
                "process",
                "p1",
                body.NAME,
                at,
                "acme",
                "ann",
                True,
                events=tuple(positions),
            )
        )
    return events, states, outcomes


EVENTS, STATES, OUTCOMES = run()


@given(st.integers(min_value=0, max_value=len(EVENTS) - 1), st.integers(0, 999_999))
def test_as_of_equals_the_state_recorded_after_each_event(i: int, later: int) -> None:
    at = EVENTS[i].occurred_at
    following = EVENTS[i + 1].occurred_at if i + 1 < len(EVENTS) else at + 10**6
    # Events of one command share occurred_at: as-of a time sees all of them.
    last = max(j for j, ev in enumerate(EVENTS) if ev.occurred_at <= at)
    assert state_as_of(EVENTS, at) == STATES[last]
    if at + later < following:
        assert state_as_of(EVENTS, at + later) == STATES[last]


def test_as_of_ignores_a_duplicated_event_and_order() -> None:
    shuffled = [EVENTS[3], *reversed(EVENTS), EVENTS[5]]
    assert state_as_of(shuffled, EVENTS[-1].occurred_at) == STATES[-1]


def test_as_of_before_the_aggregate_existed_says_when_it_was_created() -> None:
    with pytest.raises(AuditError, match="did not exist at .* created at 2026-01-01T00:00:00"):
        state_as_of(EVENTS, T0 - 1)


def test_parse_time() -> None:
    assert parse_time("2026-01-01T00:00:00Z") == T0
    assert parse_time("2026-01-01T01:00:00+01:00") == T0
    assert parse_time("2026-01-01T00:00:00.000001") == T0 + 1  # no zone: UTC
    assert iso(T0 + 1) == "2026-01-01T00:00:00.000001Z"
    for bad in ("yesterday", "2026-13-01", ""):
        with pytest.raises(ValueError, match="ISO 8601"):
            parse_time(bad)


def test_history_has_one_entry_per_command_with_events_or_reason() -> None:
    h = history("process", "p1", EVENTS, OUTCOMES)
    assert [e.command_id for e in h.entries] == [f"c{i}" for i in range(len(BODIES))]
    assert sum(len(e.events) for e in h.entries) == len(EVENTS)
    rejected = h.entries[-1]
    assert rejected.result == "rejected" and not rejected.events
    assert rejected.reason is not None and rejected.reason.startswith("invalid_state")
    text = render_table(h)
    assert "rejected" in text and "#1 process.created" in text
    lines = text.splitlines()
    # Aligned: the RESULT column starts at the same place on every entry line.
    starts = {line.index("accepted") for line in lines if " accepted " in line}
    assert len(starts) == 1


def test_a_command_rejected_then_accepted_shows_its_events_only_once() -> None:
    """Rejections are not remembered, so a command_id may be sent again and accepted:
    its events belong to the accepted decision, not to the earlier rejection too."""
    rejected = OUTCOMES[-1]
    assert not rejected.accepted
    # The same command_id was first rejected, before the create that accepted it.
    early = replace(rejected, command_id="c0", decided_at=T0 - 1)
    h = history("process", "p1", EVENTS, [early, *OUTCOMES])
    first, accepted = h.entries[0], h.entries[1]
    assert (first.command_id, first.result, first.events) == ("c0", "rejected", ())
    assert accepted.command_id == "c0" and accepted.result == "accepted" and accepted.events
    assert sum(len(e.events) for e in h.entries) == len(EVENTS)
