"""A swap on a running node: move it to a rebuilt read model without downtime for readers.

The node answers ``swap`` on its control socket (``DATA_DIR/node.sock``,
runledger.control) with :class:`LiveSwap`:

    check NEW read-only (a closed read model of this ledger's events topic)
      → move it into the data dir under a name of its own, open it, check its tables
      → a second projector catches it up from its stored positions  [the old one serves]
      → stop the old projector: readers keep reading its file, frozen at positions F
      → wait until the new projector has applied F
      → switch every reader in one step on the loop (runledger.node.Serving.switch)
      → let the old file's reads finish, close it, keep it as a backup, and rename the
        new file to node.duckdb (DuckDB writes through its open descriptor)

Anything that fails before the switch is undone: the old projector runs on, NEW goes
back where it was, and the caller gets the reason. Readers never see a position older
than one they saw: the switch happens only once the new file holds at least F.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from projections.errors import ProjectorError, StoreError
from projections.projector import Projector
from projections.store import Store
from runledger import control
from runledger.serving import Serving, Unpublished
from runledger.swap_files import (
    AS,
    INCOMING,
    TOOK,
    SwapError,
    SwapResult,
    check_closed,
    check_open,
    check_positions,
    keep_as_backup,
    stamp,
    wal_of,
)

log = logging.getLogger("runledger.swap")

CATCH_UP_TIMEOUT_S = 600.0
SETTLE_TIMEOUT_S = 30.0  # the old projector stopped: the new one must reach it by then
DRAIN_TIMEOUT_S = 30.0  # reads still running on the old file after the switch
CHECKPOINT_TRIES = 50  # after the switch, while the new projector writes (see fold_log)
CHECKPOINT_PAUSE_S = 0.1


class LiveSwap:
    """``swap`` requests to a running node; one at a time."""

    def __init__(
        self,
        serving: Serving,
        new_projector: Callable[[Store], Projector],
        topic: str,
        live: Path,
        memory_mib: int | None = None,
    ) -> None:
        """``live``: the node's file (``DATA_DIR/node.duckdb``), the name every swap
        leaves the served file under. Not the serving store's path: after a swap that
        store was opened as the staged file and keeps that name, which the swap renamed
        to ``live``. ``memory_mib``: the node's DuckDB memory limit, for the new file."""
        self._live = live
        self._memory_mib = memory_mib
        self._serving = serving
        self._new_projector = new_projector
        self._topic = topic
        self._lock = asyncio.Lock()

    async def handle(self, request: dict[str, Any], report: control.Report) -> dict[str, Any]:
        """The control socket's ``swap``: ``{"from": PATH, "timeout_s": S}``."""
        if self._lock.locked():
            raise SwapError("a swap is already in progress on this node")
        source = request.get("from")
        if not isinstance(source, str) or not os.path.isabs(source):
            raise SwapError("swap needs the absolute path of the rebuilt file in 'from'")
        timeout = float(request.get("timeout_s") or CATCH_UP_TIMEOUT_S)
        async with self._lock:
            result = await self.run(Path(source), report, timeout)
        return {
            "live": str(result.live),
            "backup": str(result.backup) if result.backup else None,
            "positions": {str(p): o for p, o in result.positions.items()},
            "seconds": result.seconds,
        }

    async def run(
        self, source: Path, report: control.Report, catch_up_timeout_s: float
    ) -> SwapResult:
        """Move the node to ``source``; SwapError (node unchanged) if it cannot."""
        began = time.monotonic()
        serving = self._serving
        old = serving.projection
        live = self._live
        stored = await asyncio.to_thread(check_closed, source, live, self._topic)
        try:
            ends = await old.projector.end_offsets()
        except Exception as exc:
            raise SwapError(f"cannot read the end of {self._topic}: {exc}") from exc
        check_positions(stored, ends, source)
        when = stamp()
        staged = live.with_name(f"{live.name}.{when}.{INCOMING}")
        try:
            os.rename(source, staged)
        except OSError as exc:
            raise SwapError(
                f"cannot move {source} into {live.parent}: {exc} (put the rebuilt file in "
                "the data dir, e.g. `runledger replay --to DATA_DIR/rebuilt.duckdb`)"
            ) from exc
        await report(f"{TOOK}{source}{AS}{staged}")
        store = Store(staged, memory_mib=self._memory_mib)
        projector: Projector | None = None
        task: asyncio.Task[None] | None = None
        switched = False
        try:
            await asyncio.to_thread(store.open)
            await asyncio.to_thread(check_open, store, self._topic)
            projector = self._new_projector(store)
            backlog = Unpublished(old.projector.watermark)
            projector.batch_listeners.append(backlog)
            task = asyncio.create_task(projector.run(), name="projector-swap")
            await self._catch_up(projector, task, report, catch_up_timeout_s)
            final = await serving.pause()
            await report(f"old projector stopped at {final}; switching")
            if not await projector.watermark.wait_for_end(final, SETTLE_TIMEOUT_S):
                self._check(task)
                raise SwapError(
                    f"the new projector did not reach {final} within {SETTLE_TIMEOUT_S:g} s"
                )
            self._check(task)
            projector.batch_listeners.remove(backlog)
            unpublished = backlog.past(final)
            old_store, drained = serving.switch(store, projector, task, unpublished)
            switched = True
        except BaseException as exc:
            if not switched:
                await self._undo(store, projector, task, staged, source)
                if isinstance(exc, StoreError | ProjectorError):
                    raise SwapError(f"{source} cannot be served: {exc}") from exc
            raise
        applied = projector.applied
        log.info("node: readers moved to %s at %s", staged, applied)
        await report(
            f"readers moved to the new file at {applied} "
            f"({len(unpublished)} events it applied first went to the streams then)"
        )
        backup = await self._retire(old_store, drained, staged, live, when)
        return SwapResult(live, backup, applied, time.monotonic() - began)

    async def _catch_up(
        self,
        projector: Projector,
        task: asyncio.Task[None],
        report: control.Report,
        timeout: float,
    ) -> None:
        deadline = time.monotonic() + timeout
        while not await projector.catch_up(min(1.0, max(0.0, deadline - time.monotonic()))):
            self._check(task)
            if time.monotonic() >= deadline:
                raise SwapError(f"the new file did not catch up within {timeout:g} s")
            with contextlib.suppress(Exception):  # not connected yet: say nothing
                ends = await projector.end_offsets()
                behind = sum(max(0, e - projector.applied.get(p, 0)) for p, e in ends.items())
                await report(f"catching up: {behind:,} offsets behind the log")
        self._check(task)

    @staticmethod
    def _check(task: asyncio.Task[None]) -> None:
        """SwapError with the new projector's error if it stopped."""
        if task.done():
            error = None if task.cancelled() else task.exception()
            raise SwapError(f"the new projector stopped: {error!r}") from error

    async def _undo(
        self,
        store: Store,
        projector: Projector | None,
        task: asyncio.Task[None] | None,
        staged: Path,
        source: Path,
    ) -> None:
        """Before the switch: the old projector runs again, the new file goes back."""
        if projector is not None:
            await projector.stop()
        if task is not None:
            with contextlib.suppress(BaseException):
                await task
        self._serving.resume()
        await asyncio.to_thread(store.close)
        try:
            os.rename(staged, source)
            if wal_of(staged).exists():
                os.rename(wal_of(staged), wal_of(source))
        except OSError as exc:
            log.error("node: cannot move %s back to %s: %s", staged, source, exc)

    async def _retire(
        self, old: Store, drained: threading.Event, staged: Path, live: Path, when: str
    ) -> Path:
        """After the switch: close the old file once its reads are done, keep it as the
        backup and give the new one the node's file name."""
        if not await asyncio.to_thread(drained.wait, DRAIN_TIMEOUT_S):
            log.warning("node: reads on the old file still run after %ss", DRAIN_TIMEOUT_S)
        # Its log into it first (its projector stopped: nothing writes), or the log goes
        # with it to the backup, which a rollback (`swap --from` the backup) refuses.
        await fold_log(old, "of the old file, before it becomes the backup")
        await asyncio.to_thread(old.close)
        try:
            backup = keep_as_backup(live, when)
            os.replace(staged, live)  # the new store's open descriptor follows the rename
        except OSError as exc:
            raise SwapError(
                f"the node serves from {staged} but could not rename it to {live}: {exc}; "
                f"stop the node and run `runledger swap --from {staged}`"
            ) from exc
        await fold_log(self._serving.projection.store, "after the swap")
        return backup


async def fold_log(store: Store, when: str) -> bool:
    """CHECKPOINT ``store``: its write-ahead log into the file. For the old file before
    it becomes the backup (a backup with a log is refused by ``swap --from``); for the
    new one after the switch, because until the node restarts DuckDB logs it under the
    incoming name it was opened with, so node.duckdb alone holds the swap. DuckDB
    refuses a CHECKPOINT while a write transaction runs, which the new projector,
    catching up or following a busy log, has most of the time (4 swaps in 7 under load
    refused the one try this used to make), so try again between its batches. False
    (and a warning, naming ``when``) when every try was refused: the next automatic
    checkpoint folds it."""
    error: StoreError | None = None
    for _ in range(CHECKPOINT_TRIES):
        try:
            await asyncio.to_thread(store.query, "CHECKPOINT")
            return True
        except StoreError as exc:
            error = exc
            await asyncio.sleep(CHECKPOINT_PAUSE_S)
    log.warning(
        "node: no checkpoint %s in %d tries (%s); the next one folds the log",
        when,
        CHECKPOINT_TRIES,
        error,
    )
    return False
