"""How far the read model has applied each partition, and waiting for it to get somewhere.

This is what "read your writes" rests on: a command's response names the (partition,
offset) of its event, and a read may first wait until the node has applied it.
Call everything from the event loop's thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping


class Watermark:
    """The next offset to apply per partition (so offset ``o`` is applied iff next > o)."""

    def __init__(self, initial: Mapping[int, int] | None = None) -> None:
        self._next: dict[int, int] = dict(initial or {})
        self._changed: asyncio.Event | None = None

    def next_offset(self, partition: int) -> int:
        return self._next.get(partition, 0)

    def snapshot(self) -> dict[int, int]:
        """The next offset per partition, as a copy."""
        return dict(self._next)

    def applied(self, partition: int, offset: int) -> bool:
        """True once the event at ``offset`` of ``partition`` is in the read model."""
        return self._next.get(partition, 0) > offset

    def reached(self, end_offsets: Mapping[int, int]) -> bool:
        """True when every partition has been applied up to (excluding) its end offset."""
        return all(self._next.get(p, 0) >= end for p, end in end_offsets.items())

    def advance(self, partition: int, next_offset: int) -> None:
        """Record that everything before ``next_offset`` is applied; never moves back."""
        if next_offset > self._next.get(partition, 0):
            self._next[partition] = next_offset
            self._wake()

    def advance_all(self, positions: Mapping[int, int]) -> None:
        moved = False
        for partition, next_offset in positions.items():
            if next_offset > self._next.get(partition, 0):
                self._next[partition] = next_offset
                moved = True
        if moved:
            self._wake()

    async def wait_for(self, partition: int, offset: int, timeout: float) -> bool:
        """Wait until the event at ``offset`` is applied; False if ``timeout`` s pass first."""
        return await self._wait_until(lambda: self.applied(partition, offset), timeout)

    async def wait_for_end(self, end_offsets: Mapping[int, int], timeout: float) -> bool:
        """Wait until every partition reaches its end offset; False on timeout."""
        ends = dict(end_offsets)
        return await self._wait_until(lambda: self.reached(ends), timeout)

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def _wait_until(self, done: Callable[[], bool], timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not done():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            if self._changed is None:
                self._changed = asyncio.Event()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return done()
        return True
