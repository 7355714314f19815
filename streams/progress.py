"""How far a reading of the log has come: :class:`Progress`, for the progress lines of
replay, verify, export and audit.

Offsets, not records, measure the way: transaction markers take offsets too, and a
reader only knows each partition's first and end offset when it starts.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol


class Positioned(Protocol):
    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...


@dataclass
class Progress:
    """Where a replay is: offsets read of ``total`` (from the end offsets; transaction
    markers take offsets too, so offsets, not events, measure the way), events written."""

    origin: dict[int, int] = field(default_factory=dict)
    ends: dict[int, int] = field(default_factory=dict)
    reached: dict[int, int] = field(default_factory=dict)
    events: int = 0
    started: float = field(default_factory=time.monotonic)

    def set_range(self, origin: dict[int, int], ends: dict[int, int]) -> None:
        """The first offset to read and the end, per partition (``read_to_end``'s on_ends)."""
        self.origin, self.ends = dict(origin), dict(ends)
        self.reached = dict(origin)
        self.started = time.monotonic()

    def add_range(self, origin: Mapping[int, int], ends: Mapping[int, int]) -> None:
        """The range of some more partitions (a worker's), keeping the start time."""
        self.origin.update(origin)
        self.ends.update(ends)
        for p, o in origin.items():
            self.reached.setdefault(p, o)

    def reach(self, positions: Mapping[int, int]) -> None:
        """Next offsets written, per partition."""
        for p, o in positions.items():
            if o > self.reached.get(p, 0):
                self.reached[p] = o

    def advance(self, messages: Sequence[Positioned]) -> None:
        for m in messages:
            if m.offset >= self.reached.get(m.partition, 0):
                self.reached[m.partition] = m.offset + 1

    @property
    def total(self) -> int:
        return sum(max(0, e - self.origin.get(p, 0)) for p, e in self.ends.items())

    @property
    def read(self) -> int:
        return sum(max(0, o - self.origin.get(p, 0)) for p, o in self.reached.items())

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        return self.events / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def left_s(self) -> float | None:
        """Seconds left at the rate so far; None before anything was read."""
        if not self.read or self.elapsed <= 0:
            return None
        return max(0.0, (self.total - self.read) * self.elapsed / self.read)
