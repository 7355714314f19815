"""Folding an aggregate's recorded events: the state after each one, or as of a time.

Pure: the same ``evolve`` as the decider and the projector, over events the caller
read (from the log, or from a node's ``events`` table).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from streams.domain.aggregates import evolve
from streams.domain.events import Event


class NotYetCreated(ValueError):
    """The aggregate has no event at or before the asked time: it did not exist then."""


def unique_events(events: Iterable[Event]) -> list[Event]:
    """In seq order, each seq once: the decider may write an event twice after a crash
    (same id, same seq); the fold, like the projector's, keeps the first."""
    seen: dict[int, Event] = {}
    for ev in events:
        seen.setdefault(ev.seq, ev)
    return [seen[s] for s in sorted(seen)]


def states_after(events: Iterable[Event], state: Any = None) -> Iterator[tuple[Event, Any]]:
    """Each event (in the order given) with the state right after it, folded onto ``state``."""
    for ev in events:
        state = evolve(state, ev)
        yield ev, state


def state_as_of(events: Sequence[Event], at: int) -> Any:
    """The state after every event with ``occurred_at <= at`` (microseconds).

    NotYetCreated when there is no event or ``at`` is before the first one.
    """
    ordered = unique_events(events)
    if not ordered or at < ordered[0].occurred_at:
        raise NotYetCreated("the aggregate did not exist at that time")
    state: Any = None
    for ev in ordered:
        if ev.occurred_at > at:
            break
        state = evolve(state, ev)
    return state
