"""A bounded map of committed aggregate states, so most batches need no store lookups."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from itertools import islice

from projections.fold import State, StreamId


class StateCache(dict[StreamId, State]):
    """States known to be committed to the store, the least recently written evicted first.

    A dict (so the fold's lookups cost a dict lookup); fill it only through
    :meth:`remember`, and only after the store committed what is remembered.
    """

    def __init__(self, max_size: int) -> None:
        super().__init__()
        if max_size < 1:
            raise ValueError("a state cache holds at least one state")
        self.max_size = max_size

    def remember(self, states: Mapping[StreamId, State]) -> None:
        for key, state in states.items():
            self.pop(key, None)  # re-insert at the end: recently written stays longest
            self[key] = state
        excess = len(self) - self.max_size
        if excess > 0:
            for key in list(islice(iter(self), excess)):
                del self[key]


class Layered(Mapping[StreamId, State]):
    """``top`` over ``base``: the states of a batch still being written over the cache."""

    def __init__(self, top: Mapping[StreamId, State], base: Mapping[StreamId, State]) -> None:
        self._top = top
        self._base = base

    def __getitem__(self, key: StreamId) -> State:
        found = self._top.get(key)
        return self._base[key] if found is None else found

    def get(self, key: StreamId, default: State | None = None) -> State | None:  # type: ignore[override]
        found = self._top.get(key)
        return self._base.get(key, default) if found is None else found

    def __contains__(self, key: object) -> bool:
        return key in self._top or key in self._base

    def __iter__(self) -> Iterator[StreamId]:
        yield from self._top
        yield from (key for key in self._base if key not in self._top)

    def __len__(self) -> int:
        return len(self._top) + sum(1 for key in self._base if key not in self._top)
