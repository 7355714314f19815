"""A batch the read model has no room for: held, and written again until it fits.

A write that fails for want of room (StoreFull: the disk under the DuckDB file is full)
rolls back whole, positions included, so writing the same batch later applies it
exactly once. Raising it ended the node, reads and all, and a node restarted on a full
disk failed again at its first batch. Holding the batch keeps the API serving what the
file holds (stale, but consistent), and the projector carries on by itself once there
is room. Any other StoreError still ends the run, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from projections.errors import StoreFull
from projections.fold import Batch
from projections.store import Store
from streams.supervision import restart_delay

log = logging.getLogger(__name__)

# While the disk stays full the attempts go on every few seconds, said once a minute.
SAY_AGAIN_AFTER_S = 60.0


class HeldWrites:
    """A projector's writes to ``store``: a batch without room is held until it fits.

    ``stopping`` is the projector's own stop event: a held batch is given up once it is
    set. Call :meth:`write` from the event loop, one batch at a time.
    """

    def __init__(self, store: Store, stopping: asyncio.Event) -> None:
        self._store = store
        self._stopping = stopping
        self._held_since: float | None = None  # monotonic; None: nothing held
        self._said = 0.0  # monotonic: when the last line about it was logged

    @property
    def held_s(self) -> float:
        """Seconds the batch in hand has waited for room; 0 when none is held. A gauge
        to alert on: the lag does not show a hold, since the consumer is not polled
        (and so hears of no new end offsets) while a batch is held."""
        since = self._held_since
        return 0.0 if since is None else time.monotonic() - since

    async def write(self, batch: Batch) -> None:
        """Write ``batch``; while there is no room, try again after 1, 2, 4, then every
        5 s. Raises the last StoreFull, nothing of the batch written, when the projector
        is asked to stop first; any other StoreError at once."""
        store, failures = self._store, 0
        try:
            while True:
                try:
                    await asyncio.to_thread(store.write, batch)
                    break
                except StoreFull as exc:
                    failures += 1
                    self._say(exc, failures)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), restart_delay(failures))
                    if self._stopping.is_set():
                        raise
            if failures:
                log.info(
                    "projector: room again in %s: the batch held for %.0f s is written "
                    "(%d attempts failed); catching up",
                    store.path.parent,
                    self.held_s,
                    failures,
                )
        finally:
            self._held_since = None

    def _say(self, exc: StoreFull, failures: int) -> None:
        """The first failure in full, then a reminder a minute; not a line per attempt."""
        store, now = self._store, time.monotonic()
        if failures == 1:
            self._held_since = self._said = now
            log.warning(
                "projector: no room to write to the read model: %s. Nothing is lost: the "
                "batch rolled back with its positions and is held to be written again "
                "(reads are served from what the file holds); retrying every few seconds: "
                "free space on the filesystem of %s and the node catches up by itself",
                exc,
                store.path.parent,
            )
        elif now - self._said >= SAY_AGAIN_AFTER_S:
            self._said = now
            log.warning(
                "projector: still no room to write to the read model %s (%d attempts in "
                "%.0f s): free space on the filesystem of %s",
                store.path,
                failures,
                self.held_s,
                store.path.parent,
            )
