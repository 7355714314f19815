"""``runledger swap``: move a node to a rebuilt read model, without downtime for readers.

Live, when a node runs: the CLI asks it over ``DATA_DIR/node.sock`` (:func:`ask_node`)
and the node does the swap (:class:`~runledger.live_swap.LiveSwap`, which says how).
Offline, when no node runs (:func:`swap_offline`): the same checks
(:mod:`runledger.swap_files`), then the renames.

This module is the swap's public face: the node (``LiveSwap``, ``tidy``) and the CLI
(``ask_node``, ``swap_offline``, ``SwapError``) import what they use of it from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from projections.errors import StoreError
from projections.verify import positions
from runledger import control
from runledger.live_swap import LiveSwap as LiveSwap
from runledger.swap_files import (
    AS,
    TOOK,
    check_closed,
    fold_wal,
    keep_as_backup,
    stamp,
    wal_of,
)
from runledger.swap_files import SwapError as SwapError
from runledger.swap_files import SwapResult as SwapResult
from runledger.swap_files import tidy as tidy


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
    taken: list[str] = []  # where the node moved the file, from its first progress line

    def progress(text: str) -> None:
        if text.startswith(TOOK) and AS in text:
            taken.append(text.rsplit(AS, 1)[1])
        if on_progress is not None:
            on_progress(text)

    try:
        answer = asyncio.run(
            control.ask(data_dir / control.SOCKET_NAME, request, on_progress=progress)
        )
    except (control.ControlError, ConnectionError) as exc:
        raise SwapError(_where_it_is(str(exc), taken)) from exc
    return SwapResult(
        Path(answer["live"]),
        Path(answer["backup"]) if answer.get("backup") else None,
        {int(p): int(o) for p, o in answer["positions"].items()},
        float(answer.get("seconds", 0.0)),
    )


def _where_it_is(error: str, taken: list[str]) -> str:
    """``error``, and where the rebuilt file is when the node vanished after moving it:
    a node that refuses or fails moves it back and says so, but a node that died (kill
    -9, out of memory) leaves it under its incoming name, which the operator must know
    to take it again (the restarted node makes it takeable; runledger.swap_files.tidy)."""
    if not taken or ("closed the connection" not in error and "reset" not in error):
        return error
    return (
        f"{error}: the node stopped during the swap (see its log); the rebuilt file is "
        f"now {taken[0]}: once the node runs again, `runledger swap --from {taken[0]}`"
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
        if wal_of(live).exists():  # into the file, or the backup could not be swapped back
            with contextlib.suppress(StoreError):  # else the log goes along, as it is
                fold_wal(live)
        backup = keep_as_backup(live, stamp())
    try:
        os.replace(source, live)  # atomic: the name points at the old file or the new one
    except OSError as exc:
        raise SwapError(
            f"cannot move {source} to {live}: {exc} (put the new file in {live.parent} first)"
        ) from exc
    return SwapResult(live, backup, stored)
