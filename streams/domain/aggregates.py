"""Dispatch by aggregate type: which ``decide`` and ``evolve`` own a command or event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.domain import account, case, caserun, flow, flowrun, process, site
from streams.domain.commands import Command
from streams.domain.events import Event
from streams.domain.rejection import INVALID, Rejected

State = Any  # ProcessState | AccountState | ...; each aggregate's functions know their own

DECIDERS: dict[str, Callable[[State, Command], list[Event]]] = {
    process.AGGREGATE: process.decide,
    account.AGGREGATE: account.decide,
    site.AGGREGATE: site.decide,
    flow.AGGREGATE: flow.decide,
    case.AGGREGATE: case.decide,
    flowrun.AGGREGATE: flowrun.decide,
    caserun.AGGREGATE: caserun.decide,
}
EVOLVERS: dict[str, Callable[[State, Event], State]] = {
    process.AGGREGATE: process.evolve,
    account.AGGREGATE: account.evolve,
    site.AGGREGATE: site.evolve,
    flow.AGGREGATE: flow.evolve,
    case.AGGREGATE: case.evolve,
    flowrun.AGGREGATE: flowrun.evolve,
    caserun.AGGREGATE: caserun.evolve,
}

# Definition states are flat (no nested values): ``cls(**asdict(state))`` restores one,
# which is how outcomes and the faust changelog carry them.
DEFINITION_STATES: dict[str, type] = {
    site.AGGREGATE: site.SiteState,
    flow.AGGREGATE: flow.FlowState,
    case.AGGREGATE: case.CaseState,
}


def decide(state: State, cmd: Command) -> list[Event]:
    """Route ``cmd`` to its aggregate's decide; Rejected for an unknown aggregate type."""
    fn = DECIDERS.get(cmd.aggregate_type)
    if fn is None:
        raise Rejected(INVALID, f"unknown aggregate type {cmd.aggregate_type!r}")
    return fn(state, cmd)


def evolve(state: State, event: Event) -> State:
    """Route ``event`` to its aggregate's evolve; ValueError for an unknown type."""
    fn = EVOLVERS.get(event.aggregate_type)
    if fn is None:
        raise ValueError(f"unknown aggregate type {event.aggregate_type!r}")
    return fn(state, event)


def stream_key(aggregate_type: str, aggregate_id: str) -> str:
    """The key shared by an aggregate's commands and events (one partition, in order)."""
    return f"{aggregate_type}:{aggregate_id}"
