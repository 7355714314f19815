"""Committed Process states kept in memory, so a read by id needs no DuckDB query.

The cache holds only what the read model itself answered (so only committed state), and
drops a Process as soon as the projector has committed a new event of it. A read that
started before such a commit is not remembered (see :attr:`ProcessCache.version`), so the
cache never shows a state older than what the read model would show at that moment.
Next to a state it keeps the state's rendered JSON once a response has rendered it.
Use it from the event loop's thread only: the node calls :meth:`forget` from the
projector's listener, the API calls the rest.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from streams.domain.events import Event
from streams.domain.process import AGGREGATE, ProcessState


@dataclass(slots=True)
class _Entry:
    state: ProcessState
    rendered: bytes | None = None


class ProcessCache:
    """Process states by id, the oldest entry evicted first beyond ``max_size``."""

    def __init__(self, max_size: int = 50_000) -> None:
        if max_size < 1:
            raise ValueError("a process cache holds at least one state")
        self.max_size = max_size
        self._entries: dict[str, _Entry] = {}
        self._version = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def version(self) -> int:
        """Moves on every :meth:`forget`; take it before reading the store, give it to
        :meth:`put` after."""
        return self._version

    def get(self, account: str, process_id: str) -> ProcessState | None:
        """The cached state of ``process_id`` if it belongs to ``account``, else None."""
        entry = self._entries.get(process_id)
        if entry is None or entry.state.account != account:
            return None
        return entry.state

    def rendered(self, account: str, process_id: str) -> bytes | None:
        """The JSON body kept by :meth:`keep_rendered` for the cached state, else None."""
        entry = self._entries.get(process_id)
        if entry is None or entry.state.account != account:
            return None
        return entry.rendered

    def put(self, state: ProcessState, version: int) -> None:
        """Remember ``state`` as read from the store when :attr:`version` was ``version``;
        ignored if the projector committed anything since (the read may predate it)."""
        if version != self._version or state.deleted:
            return
        entries = self._entries
        entries.pop(state.id, None)
        if len(entries) >= self.max_size:
            del entries[next(iter(entries))]
        entries[state.id] = _Entry(state)

    def keep_rendered(self, state: ProcessState, body: bytes) -> None:
        """Keep ``body``, the JSON of ``state``, if ``state`` is still the cached one."""
        entry = self._entries.get(state.id)
        if entry is not None and entry.state is state:
            entry.rendered = body

    def clear(self) -> None:
        """Drop every state (the node moved to another read model); reads in flight are
        not remembered either."""
        self._entries.clear()
        self._version += 1

    def forget(self, events: Iterable[Event]) -> None:
        """Drop every Process that ``events`` (just committed by the projector) touch."""
        for event in events:
            if event.aggregate_type == AGGREGATE:
                self._entries.pop(event.aggregate_id, None)
        self._version += 1
