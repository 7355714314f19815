"""What the API of a node reads right now, and the one step that moves it elsewhere.

The API holds a :class:`SwitchableReads` and a :class:`NodePositions`; both follow the
projection :class:`Serving` names. ``runledger swap`` (runledger.swap) builds a second
projection and calls :meth:`Serving.switch`: every reader moves in one step on the
event loop, and the old store closes once its last read has returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from api.broadcaster import Applied, Broadcaster, applied_of
from api.deps import ReadModel
from api.process_cache import ProcessCache
from projections.errors import ProjectorError
from projections.fold import Batch
from projections.projector import Projector
from projections.queries import Queries
from projections.store import Store
from projections.watermark import Watermark

log = logging.getLogger("runledger.node")


class NodePositions:
    """Read-your-writes over the serving projector's watermark, across swaps.

    A swap stops the old projector before it moves readers to the new one, so a wait
    that began on the old one goes on on the new one (which has applied at least as
    much) instead of timing out.
    """

    def __init__(self, projector: Projector) -> None:
        self._projector = projector
        self._paused = False
        self._moved = asyncio.Event()

    def pause(self) -> None:
        """The serving projector is being stopped for a swap: its errors mean "wait"."""
        self._paused = True

    def move_to(self, projector: Projector) -> None:
        """Serve ``projector``'s positions (the same one again after a failed swap)."""
        self._projector, self._paused = projector, False
        self._moved.set()
        self._moved = asyncio.Event()

    async def wait_for(self, partition: int, offset: int, timeout: float) -> bool:
        if self._projector.watermark.applied(partition, offset):
            return True
        return await self._across_moves(lambda p, t: p.wait_for(partition, offset, t), timeout)

    async def wait_for_end(self, timeout: float) -> bool:
        return await self._across_moves(lambda p, t: p.catch_up(t), timeout)

    def applied(self) -> dict[int, int]:
        return self._projector.applied

    async def _across_moves(
        self, wait: Callable[[Projector, float], Awaitable[bool]], timeout: float
    ) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            projector, moved = self._projector, self._moved
            waiting = asyncio.ensure_future(wait(projector, max(0.0, deadline - loop.time())))
            switched = asyncio.ensure_future(moved.wait())
            try:
                await asyncio.wait((waiting, switched), return_when=asyncio.FIRST_COMPLETED)
            finally:
                switched.cancel()
                if not waiting.done():
                    waiting.cancel()
            if waiting.done() and not waiting.cancelled():
                try:
                    return waiting.result()
                except ProjectorError:
                    if projector is self._projector and not self._paused:
                        raise
                # Stopped for a swap: wait for its end, then ask the projector serving then.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(moved.wait(), max(0.0, deadline - loop.time()))
                if not moved.is_set():
                    return False


@dataclass(slots=True)
class _Served:
    """One read model behind :class:`SwitchableReads`, with its calls in flight."""

    reads: ReadModel
    in_flight: int = 0
    idle: threading.Event = field(default_factory=threading.Event)


class SwitchableReads:
    """The ReadModel the API holds: each call goes to the read model serving at that moment.

    Counts the calls in flight on each read model, so a swap closes the old store only
    after its last read returned. Called from worker threads and the loop alike.
    """

    def __init__(self, reads: ReadModel) -> None:
        self._lock = threading.Lock()
        self._current = _Served(reads)
        self._current.idle.set()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                served = self._current
                served.in_flight += 1
                served.idle.clear()
            try:
                return getattr(served.reads, name)(*args, **kwargs)
            finally:
                with self._lock:
                    served.in_flight -= 1
                    if served.in_flight == 0:
                        served.idle.set()

        self.__dict__[name] = call  # looked up once per name; it reads _current per call
        return call

    def switch(self, reads: ReadModel) -> threading.Event:
        """Send every later call to ``reads``; the returned event is set once no call to
        the previous read model is in flight any more."""
        fresh = _Served(reads)
        fresh.idle.set()
        with self._lock:
            old, self._current = self._current, fresh
        return old.idle


@dataclass(frozen=True, slots=True)
class Projection:
    """A read model kept up to date: its file, its projector, the task running it."""

    store: Store
    projector: Projector
    task: asyncio.Task[None]

    @classmethod
    def start(cls, store: Store, projector: Projector) -> Projection:
        return cls(store, projector, asyncio.create_task(projector.run(), name="projector"))


class Serving:
    """The projection the API reads now, and the one step that moves readers to another.

    Call everything on the event loop.
    """

    def __init__(self, projection: Projection, cache: ProcessCache, broadcaster: Broadcaster):
        self.projection = projection
        self.cache = cache
        self.broadcaster = broadcaster
        self.reads = SwitchableReads(Queries(projection.store))
        self.positions = NodePositions(projection.projector)
        self._paused = False
        self._changed = asyncio.Event()
        self._listen(projection.projector)

    def _listen(self, projector: Projector) -> None:
        projector.listeners.append(self.cache.forget)  # on the loop, right after each commit
        projector.batch_listeners.append(self.broadcaster.publish_batch)

    async def pause(self) -> dict[int, int]:
        """Stop the serving projector; readers go on reading its (now still) store.

        Returns the positions it stopped at: its store holds exactly those.
        """
        self._paused = True
        self.positions.pause()
        await self.projection.projector.stop()
        task = self.projection.task
        if task.done() and not task.cancelled() and task.exception() is not None:
            # Its last write rolled back; the store still holds exactly what it reports.
            log.warning("node: the projector ended with %r while pausing", task.exception())
        return self.projection.projector.applied

    def resume(self) -> None:
        """Undo :meth:`pause`: run the serving projector again, from its stored positions."""
        if not self._paused:
            return
        old = self.projection
        self.projection = Projection.start(old.store, old.projector)
        self._paused = False
        self.positions.move_to(old.projector)
        self._signal()

    def switch(
        self,
        store: Store,
        projector: Projector,
        task: asyncio.Task[None],
        backlog: Sequence[Applied],
    ) -> tuple[Store, threading.Event]:
        """Move every reader to ``store``, kept by ``projector`` (running as ``task``), in
        one step; ``projector`` must have applied at least what the paused one had.

        Reads (the API's read model, the process cache, ``?wait``/``?after`` waits) go to
        ``store``; SSE streams get ``backlog`` (what ``projector`` committed past the old
        positions, which the old projector never published) and then its batches.
        Returns the old store and an event set once its last read returned.
        """
        old = self.projection
        self.projection = Projection(store, projector, task)
        drained = self.reads.switch(Queries(store))
        self.positions.move_to(projector)
        self.cache.clear()  # states read from the old file: the new one may differ
        self.broadcaster.publish(backlog)
        self._listen(projector)
        self._paused = False
        self._signal()
        return old.store, drained

    def _signal(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def watch(self) -> None:
        """Return when the serving projector stops by itself; raise its error if it failed.

        A projector stopped by a swap is not an end: the watch follows its successor.
        """
        while True:
            task, changed = self.projection.task, self._changed
            if task.done() and not self._paused:
                task.result()
                return
            moved = asyncio.ensure_future(changed.wait())
            try:
                watched = {moved} if task.done() else {moved, task}
                await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            finally:
                moved.cancel()


class Unpublished:
    """A batch listener on the new projector: the streamed events it commits past the old
    projector's watermark, which the old one never published to the SSE streams."""

    def __init__(self, old: Watermark) -> None:
        self._old = old
        self._items: list[Applied] = []

    def __call__(self, batch: Batch) -> None:
        old = self._old
        if self._items:
            self._items = self.past(old.snapshot())
        if all(old.next_offset(p) >= o for p, o in batch.positions.items()):
            return  # catching up: the old projector published all of it
        self._items.extend(
            a for a in applied_of(batch) if not old.applied(a.row.partition, a.row.offset)
        )

    def past(self, applied: dict[int, int]) -> list[Applied]:
        """The recorded events at or after ``applied`` (next offsets per partition)."""
        return [a for a in self._items if a.row.offset >= applied.get(a.row.partition, 0)]
