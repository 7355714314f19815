"""Fan-out of committed events to the SSE streams of one node.

The projector tells :meth:`Broadcaster.publish` each committed batch, on the event
loop. Every stream holds a :class:`Subscription` with a bounded buffer: a client too
slow to drain it is dropped (``dropped`` is set) rather than holding the node's memory
or slowing the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from projections.fold import Batch
from projections.rows import EventRow, event_row
from streams.domain import caserun, flowrun, process

# The aggregates a stream may follow: runs, whose states the API renders.
STREAMED = (process.AGGREGATE, flowrun.AGGREGATE, caserun.AGGREGATE)
DEFAULT_BUFFER = 1_000

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Applied:
    """One committed event as its row, with its aggregate's state right after it.

    ``body`` is the event's SSE text without its id, set by the first stream that sends
    it: one Applied goes to every stream that follows its aggregate, so an event is
    rendered, serialized and encoded once per node rather than once per client.
    """

    row: EventRow
    state: Any
    body: bytes | None = None


def applied_of(batch: Batch) -> list[Applied]:
    """The streamed events of a committed batch, in the order they were applied."""
    found: list[Applied] = []
    for i, ev in enumerate(batch.events):
        if ev.aggregate_type in STREAMED:
            row = event_row(ev, batch.partitions[i], batch.offsets[i], batch.statuses[i])
            found.append(Applied(row, batch.after[i]))
    return found


class Subscription:
    """One stream's buffer of live events; read it with :meth:`take`."""

    def __init__(
        self,
        match: Callable[[Applied], bool],
        limit: int,
        aggregate: tuple[str, str] | None = None,
    ) -> None:
        self.match = match
        self.aggregate = aggregate
        self.dropped = False
        self._limit = limit
        self._items: deque[Applied] = deque()
        self._ready = asyncio.Event()

    def offer(self, items: Sequence[Applied]) -> bool:
        """Buffer the matching ``items``; False (and ``dropped``) when over the limit."""
        chosen = [a for a in items if self.match(a)]
        if not chosen:
            return True
        if len(self._items) + len(chosen) > self._limit:
            self.dropped = True
            self._items.clear()
            self._ready.set()
            return False
        self._items.extend(chosen)
        self._ready.set()
        return True

    def end(self) -> None:
        """Drop this subscription: ``dropped``, and a pending :meth:`take` returns now."""
        self.dropped = True
        self._items.clear()
        self._ready.set()

    async def take(self, timeout: float) -> list[Applied]:
        """Everything buffered, waiting up to ``timeout`` seconds for something; [] if
        nothing came (or the subscription was dropped)."""
        if not self._items and not self.dropped:
            try:
                # Not wait_for: it wraps the wait in a Task, once per client per event.
                async with asyncio.timeout(timeout):
                    await self._ready.wait()
            except TimeoutError:
                return []
        self._ready.clear()
        items = list(self._items)
        self._items.clear()
        return items


class Broadcaster:
    """Subscriptions by aggregate (``(type, id)``) and account-wide ones."""

    def __init__(self, buffer: int = DEFAULT_BUFFER) -> None:
        self.buffer = buffer
        self._by_aggregate: dict[tuple[str, str], set[Subscription]] = {}
        self._wide: set[Subscription] = set()
        self.dropped = 0

    @property
    def subscribers(self) -> int:
        return len(self._wide) + sum(len(s) for s in self._by_aggregate.values())

    def subscribe(
        self, match: Callable[[Applied], bool], aggregate: tuple[str, str] | None = None
    ) -> Subscription:
        """A new subscription to events ``match`` accepts (of ``aggregate`` only, if
        given); call :meth:`unsubscribe` when the stream ends."""
        sub = Subscription(match, self.buffer, aggregate)
        if aggregate is None:
            self._wide.add(sub)
        else:
            self._by_aggregate.setdefault(aggregate, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        aggregate = sub.aggregate
        if aggregate is None:
            self._wide.discard(sub)
            return
        subs = self._by_aggregate.get(aggregate)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._by_aggregate[aggregate]

    def publish(self, items: Sequence[Applied]) -> None:
        """Offer ``items`` to every interested subscription (on the event loop)."""
        if not items:
            return
        for sub in list(self._wide):
            self._offer(sub, items)
        if not self._by_aggregate:
            return
        grouped: dict[tuple[str, str], list[Applied]] = {}
        for a in items:
            grouped.setdefault((a.row.aggregate_type, a.row.aggregate_id), []).append(a)
        for aggregate, chosen in grouped.items():
            for sub in list(self._by_aggregate.get(aggregate, ())):
                self._offer(sub, chosen)

    def publish_batch(self, batch: Batch) -> None:
        """A projector batch listener: publish the streamed events of ``batch``."""
        if not (self._wide or self._by_aggregate):
            return
        try:
            items = applied_of(batch)
        except Exception:
            # Every stream would miss this batch unseen: end them all instead, so each
            # client reconnects with Last-Event-ID and reads the batch from the store.
            log.exception("broadcaster: cannot render a committed batch; dropping every stream")
            for sub in [*self._wide, *(s for subs in self._by_aggregate.values() for s in subs)]:
                sub.end()
                self._drop(sub)
            return
        self.publish(items)

    def _offer(self, sub: Subscription, items: Sequence[Applied]) -> None:
        """Offer ``items`` to ``sub``; drop it when it is full or its filter raises.

        A filter that raises must not stop the fan-out: the streams after it would
        miss the batch with no sign of it. The failing stream is dropped instead, so
        its client reconnects with Last-Event-ID and loses nothing.
        """
        try:
            kept = sub.offer(items)
        except Exception:
            log.exception("broadcaster: a stream's filter failed; dropping the stream")
            sub.end()
            kept = False
        if not kept:
            self._drop(sub)

    def _drop(self, sub: Subscription) -> None:
        self.dropped += 1
        self.unsubscribe(sub)
