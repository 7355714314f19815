"""``runledger swap``: move a node to a rebuilt read model, without downtime for readers.

Live, when a node runs (the CLI asks it over ``DATA_DIR/node.sock``, runledger.control):

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

Offline, when no node runs: the same checks, then the renames.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from projections import tables
from projections.errors import ProjectorError, StoreError
from projections.projector import Projector
from projections.store import Store
from projections.verify import positions
from runledger import control
from runledger.serving import Serving, Unpublished

log = logging.getLogger("runledger.swap")

CATCH_UP_TIMEOUT_S = 600.0
SETTLE_TIMEOUT_S = 30.0  # the old projector stopped: the new one must reach it by then
DRAIN_TIMEOUT_S = 30.0  # reads still running on the old file after the switch
INCOMING = "incoming"  # node.duckdb.<time>.incoming: a rebuilt file a node is taking over


class SwapError(control.RequestFailed):
    """The swap did not happen (or not all of it); the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class SwapResult:
    live: Path
    backup: Path | None
    positions: dict[int, int]
    seconds: float = 0.0


def _wal(path: Path) -> Path:
    return Path(f"{path}.wal")


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def check_closed(new: Path, live: Path, topic: str) -> dict[int, int]:
    """The positions of ``new``, a closed read model of ``topic``; SwapError otherwise.

    Opens ``new`` read-only, which DuckDB refuses while another process writes it.
    """
    if not new.is_file():
        raise SwapError(f"{new} does not exist")
    if live.exists() and new.samefile(live):
        raise SwapError(f"{new} is the node's own read model: swap to a rebuilt file")
    if _wal(new).exists():
        raise SwapError(f"{new} has a write-ahead log: it was not closed cleanly; replay again")
    try:
        found = positions(new, topic)
    except Exception as exc:  # StoreError, or duckdb's own when there is no positions table
        raise SwapError(f"{new} is not a usable read model: {exc}") from exc
    if not found:
        raise SwapError(
            f"{new} holds no positions of {topic}: it is not a read model of this ledger "
            "(another topic prefix?); build one with `runledger replay --to`"
        )
    return found


def check_open(store: Store, topic: str) -> None:
    """``store`` has exactly this ledger's topic and the tables this code writes."""
    topics = sorted(t for (t,) in store.query("SELECT DISTINCT topic FROM positions"))
    if topics != [topic]:
        raise SwapError(f"{store.path} holds positions of {topics}; this node projects {topic}")
    found: dict[str, list[str]] = {}
    for table, column in store.query(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_catalog = current_database() AND table_schema = 'main' "
        "ORDER BY table_name, ordinal_position"
    ):
        found.setdefault(table, []).append(column)
    for table in tables.ALL:
        if tuple(found.get(table.name, ())) != table.names:
            raise SwapError(
                f"table {table.name} of {store.path} has columns {found.get(table.name)}, "
                f"this node writes {list(table.names)}: rebuild it with this version"
            )


def check_positions(stored: dict[int, int], ends: dict[int, int], new: Path) -> None:
    """``stored`` fits the topic as it is now: its partitions, never past their ends."""
    for partition, offset in sorted(stored.items()):
        if partition not in ends:
            raise SwapError(f"{new} has a position on partition {partition}, which the topic lacks")
        if offset > ends[partition]:
            raise SwapError(
                f"{new} is ahead of the log on partition {partition} ({offset} > "
                f"{ends[partition]}): it was built from another cluster"
            )


def tidy(data_dir: Path, db_file: str) -> None:
    """At node start: drop write-ahead logs that a swapped file left under its incoming
    name when its node died (the file itself is node.duckdb now, consistent as of its
    last checkpoint; the projector re-applies the rest), and name incoming files an
    interrupted swap left behind."""
    for wal in data_dir.glob(f"{db_file}.*.{INCOMING}.wal"):
        if not wal.with_suffix("").exists():
            log.warning("node: removing %s, the log of a swapped file whose node died", wal)
            wal.unlink(missing_ok=True)
    for left in data_dir.glob(f"{db_file}.*.{INCOMING}"):
        log.warning("node: %s is a rebuilt file an interrupted swap left; swap again", left)


def _keep_as_backup(live: Path, stamp: str) -> Path:
    """Give ``live`` (closed) a second name, ``<live>.<time>.bak``, and move its log there."""
    backup = live.with_name(f"{live.name}.{stamp}.bak")
    try:
        os.link(live, backup)  # node.duckdb keeps naming a whole file until the rename
    except OSError:
        shutil.copy2(live, backup)
    if _wal(live).exists():  # never let the old log be replayed onto the new file
        os.replace(_wal(live), _wal(backup))
    return backup


class LiveSwap:
    """``swap`` requests to a running node; one at a time."""

    def __init__(
        self,
        serving: Serving,
        new_projector: Callable[[Store], Projector],
        topic: str,
    ) -> None:
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
        live = old.store.path
        stored = await asyncio.to_thread(check_closed, source, live, self._topic)
        try:
            ends = await old.projector.end_offsets()
        except Exception as exc:
            raise SwapError(f"cannot read the end of {self._topic}: {exc}") from exc
        check_positions(stored, ends, source)
        stamp = _stamp()
        staged = live.with_name(f"{live.name}.{stamp}.{INCOMING}")
        try:
            os.rename(source, staged)
        except OSError as exc:
            raise SwapError(
                f"cannot move {source} into {live.parent}: {exc} (put the rebuilt file in "
                "the data dir, e.g. `runledger replay --to DATA_DIR/rebuilt.duckdb`)"
            ) from exc
        await report(f"took {source} as {staged}")
        store = Store(staged)
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
        backup = await self._retire(old_store, drained, staged, live, stamp)
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
            if _wal(staged).exists():
                os.rename(_wal(staged), _wal(source))
        except OSError as exc:
            log.error("node: cannot move %s back to %s: %s", staged, source, exc)

    async def _retire(
        self, old: Store, drained: threading.Event, staged: Path, live: Path, stamp: str
    ) -> Path:
        """After the switch: close the old file once its reads are done, keep it as the
        backup and give the new one the node's file name."""
        if not await asyncio.to_thread(drained.wait, DRAIN_TIMEOUT_S):
            log.warning("node: reads on the old file still run after %ss", DRAIN_TIMEOUT_S)
        await asyncio.to_thread(old.close)
        try:
            backup = _keep_as_backup(live, stamp)
            os.replace(staged, live)  # the new store's open descriptor follows the rename
        except OSError as exc:
            raise SwapError(
                f"the node serves from {staged} but could not rename it to {live}: {exc}; "
                f"stop the node and run `runledger swap --from {staged}`"
            ) from exc
        # Until the node restarts, DuckDB logs under the incoming name: fold that log
        # into the file now, so node.duckdb alone holds the swap.
        try:
            await asyncio.to_thread(self._serving.projection.store.query, "CHECKPOINT")
        except StoreError as exc:
            log.warning("node: no checkpoint after the swap (%s); the next one folds it", exc)
        return backup


# -- the command line -----------------------------------------------------------------------


def ask_node(
    data_dir: Path,
    source: Path,
    timeout_s: float,
    on_progress: Callable[[str], None] | None = None,
) -> SwapResult:
    """Ask the node running on ``data_dir`` to move to ``source``.

    control.NoNode when no node listens; SwapError with the node's reason otherwise.
    """
    request = {"op": "swap", "from": str(source.resolve()), "timeout_s": timeout_s}
    try:
        answer = asyncio.run(
            control.ask(data_dir / control.SOCKET_NAME, request, on_progress=on_progress)
        )
    except control.ControlError as exc:
        raise SwapError(str(exc)) from exc
    return SwapResult(
        Path(answer["live"]),
        Path(answer["backup"]) if answer.get("backup") else None,
        {int(p): int(o) for p, o in answer["positions"].items()},
        float(answer.get("seconds", 0.0)),
    )


def swap_offline(live: Path, source: Path, topic: str) -> SwapResult:
    """With no node running: put ``source`` in place of ``live``, keeping a backup.

    The live file is opened read-only first, which DuckDB refuses while a node holds it.
    """
    stored = check_closed(source, live, topic)
    backup: Path | None = None
    if live.exists():
        try:
            positions(live, topic)
        except StoreError as exc:
            raise SwapError(f"{exc}\nstop the node that holds {live} before a swap") from exc
        backup = _keep_as_backup(live, _stamp())
    try:
        os.replace(source, live)  # atomic: the name points at the old file or the new one
    except OSError as exc:
        raise SwapError(
            f"cannot move {source} to {live}: {exc} (put the new file in {live.parent} first)"
        ) from exc
    return SwapResult(live, backup, stored)
