"""States of streamed aggregates at recent events, kept so a resume folds from there.

A stream's message carries the state after its event, which only a fold of the
aggregate's history up to it gives; the read model stores the current state alone. So a
client that reconnects a few events behind would have the node read and fold the whole
history again, once per client: a thousand clients of one run reconnecting at the end of
the same window would fold it a thousand times. Instead the streams of a node leave
here, per aggregate, the last few states they computed or sent (each page's last state
while a history is folded, the last event a stream handled when it ends), and a resume
starts its fold from the newest one at or before the client's position, reading only
the rows after it.

Events are never rewritten and the fold is a pure function of them, so a state after
``seq`` stays exact for good (also across a swap to a rebuilt read model). Entries are
:class:`~api.broadcaster.Applied` values (the row, the state after it, maybe its
rendered body), shared, never changed. Thread-safe: the account-wide stream looks
states up from worker threads. The bounds (16 states of each of 1,024 aggregates) cap
the memory at some 16,000 states, of aggregates that have or had streams.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from api.broadcaster import Applied

Key = tuple[str, str, str]  # account, aggregate type, aggregate id


def key_of(a: Applied) -> Key:
    return a.row.account, a.row.aggregate_type, a.row.aggregate_id


class StreamStates:
    """At most ``per_aggregate`` states of each of at most ``aggregates`` aggregates:
    the least recently used aggregate is evicted first, and within one, a state close
    to its neighbours for how old it is (the oldest and the newest always stay)."""

    def __init__(self, aggregates: int = 1_024, per_aggregate: int = 16) -> None:
        if aggregates < 1 or per_aggregate < 3:
            raise ValueError("stream states keep three states of one aggregate at least")
        self.aggregates = aggregates
        self.per_aggregate = per_aggregate
        self._by_key: OrderedDict[Key, list[Applied]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._by_key)

    def keep(self, a: Applied) -> None:
        """Remember ``a`` (its state is the fold of its aggregate's history up to and
        including ``a.row``); a state already kept at that seq is left as it is."""
        key = key_of(a)
        with self._lock:
            kept = self._by_key.get(key)
            if kept is None:
                if len(self._by_key) >= self.aggregates:
                    self._by_key.popitem(last=False)
                self._by_key[key] = [a]
                return
            self._by_key.move_to_end(key)
            seq = a.row.seq
            if any(k.row.seq == seq for k in kept):
                return
            kept.append(a)
            kept.sort(key=lambda k: k.row.seq)
            if len(kept) > self.per_aggregate:
                del kept[_thinnest(kept)]

    def at_or_before_seq(self, key: Key, seq: int) -> Applied | None:
        """The kept state with the highest seq not above ``seq``; None if there is none."""
        return self._newest(key, lambda a: a.row.seq <= seq)

    def at_or_before_position(self, key: Key, position: tuple[int, int]) -> Applied | None:
        """The kept state whose event is the newest at or before ``position`` (partition,
        offset) on that same partition; None if there is none (or the aggregate lives on
        another partition: the caller's checks then see the full history)."""
        partition, offset = position
        return self._newest(key, lambda a: a.row.partition == partition and a.row.offset <= offset)

    def _newest(self, key: Key, fits: Callable[[Applied], bool]) -> Applied | None:
        with self._lock:
            kept = self._by_key.get(key)
            if kept is None:
                return None
            self._by_key.move_to_end(key)
            for a in reversed(kept):
                if fits(a):
                    return a
        return None


def _thinnest(kept: list[Applied]) -> int:
    """The index of the kept state to drop: the one whose removal leaves the smallest
    gap in seq between its neighbours for its distance from the newest; never the
    oldest nor the newest.

    So the states stay dense near the newest event, where clients resume (a stream ends
    at the event it sent last, often the newest), and sparse further back: the gap a
    resume folds over grows with how far behind it is, like the backlog it sends.
    """
    newest = kept[-1].row.seq

    def cost(i: int) -> float:
        gap = kept[i + 1].row.seq - kept[i - 1].row.seq
        return gap / (newest - kept[i].row.seq)

    return min(range(1, len(kept) - 1), key=cost)


def of_app(state: Any) -> StreamStates:
    """The node's :class:`StreamStates`, made on first use and kept on the app's
    ``state`` (``request.app.state``): one per app, so apps in one process (tests) share
    nothing."""
    found = getattr(state, "stream_states", None)
    if not isinstance(found, StreamStates):
        found = StreamStates()
        state.stream_states = found
    return found
