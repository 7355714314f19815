"""When an SSE reconnect may skip reading and folding an aggregate's history:
``caught_up`` (one object's stream) and ``_states_of`` (the account-wide stream).

Pure logic over a fake read model; the streams themselves are tested end to end in
``tests/integration/test_api_streams.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from api import stream_kinds as streams
from api.broadcaster import Applied
from api.stream_kinds import KINDS, caught_up
from projections.rows import EventRow
from streams.domain.process import ProcessState


def row(seq: int, partition: int = 1, offset: int = 0) -> EventRow:
    return EventRow(
        "process", "p1", seq, f"e{seq}", "process.progress", seq, "acme", "me",
        f"c{seq}", "corr", "cause", "{}", partition, offset, "running",
    )  # fmt: skip


@dataclass
class Reads:
    newest: EventRow | None
    state: ProcessState | None
    asked: list[tuple[str, ...]] = field(default_factory=list)

    def last_event(self, account: str, aggregate_id: str, aggregate_type: str) -> Any:
        self.asked.append(("last_event", account, aggregate_id, aggregate_type))
        return self.newest

    def get_process(self, account: str, process_id: str) -> ProcessState | None:
        self.asked.append(("get_process", account, process_id))
        return self.state


def state(seq: int) -> ProcessState:
    return ProcessState("p1", "acme", "scan", "me", None, "{}", 0, seq=seq, status="running")


def ctx(reads: Reads) -> Any:
    return SimpleNamespace(
        deps=SimpleNamespace(reads=reads), principal=SimpleNamespace(account="acme")
    )


def test_a_client_that_saw_the_newest_event_gets_it_with_the_current_state() -> None:
    reads = Reads(row(5, offset=40), state(5))
    found = caught_up(ctx(reads), KINDS["process"], "p1", (1, 40))
    assert found is not None and found.row.seq == 5 and found.state.seq == 5
    assert reads.asked == [("last_event", "acme", "p1", "process"), ("get_process", "acme", "p1")]


def test_a_position_past_the_newest_event_counts_as_seen() -> None:
    reads = Reads(row(5, offset=40), state(5))
    assert caught_up(ctx(reads), KINDS["process"], "p1", (1, 99)) is not None


def test_a_client_that_missed_events_gets_the_full_fold() -> None:
    reads = Reads(row(5, offset=40), state(5))
    assert caught_up(ctx(reads), KINDS["process"], "p1", (1, 39)) is None
    assert reads.asked == [("last_event", "acme", "p1", "process")]  # no state read


def test_a_state_ahead_of_the_newest_event_read_falls_back() -> None:
    # Committed between the two reads: its event would be announced with a stale id.
    assert (
        caught_up(ctx(Reads(row(5, offset=40), state(6))), KINDS["process"], "p1", (1, 40)) is None
    )


def test_an_unknown_or_hidden_aggregate_falls_back() -> None:
    assert caught_up(ctx(Reads(None, None)), KINDS["process"], "p1", (1, 40)) is None
    # Deleted: the events remain, reads hide the state; the fold says done.
    assert caught_up(ctx(Reads(row(5, offset=40), None)), KINDS["process"], "p1", (1, 40)) is None


def folds(monkeypatch: pytest.MonkeyPatch, states: dict[int, ProcessState]) -> list[str]:
    """Replace the history fold by one that records which aggregates it folded."""
    folded: list[str] = []

    def history(ctx: Any, noun: str, aggregate_id: str) -> list[Applied]:
        folded.append(aggregate_id)
        return [Applied(row(seq), s) for seq, s in sorted(states.items())]

    monkeypatch.setattr(streams, "history", history)
    return folded


def test_one_missed_event_with_the_current_state_after_it_needs_no_fold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folded = folds(monkeypatch, {})
    found = streams.states_of(ctx(Reads(None, state(5))), [row(5)])
    assert folded == [] and [(a.row.seq, a.state.seq) for a in found] == [(5, 5)]


def test_several_missed_events_or_a_newer_state_fold_the_history(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folded = folds(monkeypatch, {4: state(4), 5: state(5), 6: state(6)})
    found = streams.states_of(ctx(Reads(None, state(6))), [row(4), row(5)])
    assert folded == ["p1"] and [(a.row.seq, a.state.seq) for a in found] == [(4, 4), (5, 5)]
    folded.clear()
    found = streams.states_of(ctx(Reads(None, state(6))), [row(5)])
    assert folded == ["p1"] and [a.state.seq for a in found] == [5]
