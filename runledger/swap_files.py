"""The files of a swap: the checks a rebuilt read model must pass before it may replace a
node's file, and the names a file takes on the way.

``node.duckdb.<time>.incoming`` is a rebuilt file a running node is taking over;
``node.duckdb.<time>.bak`` is the file it replaced; ``<file>.wal`` is DuckDB's
write-ahead log of ``<file>``, which must move with it. Used by the live swap
(:mod:`runledger.live_swap`) and the offline one (:mod:`runledger.swap`).
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from projections import tables
from projections.errors import StoreError
from projections.store import Store
from projections.verify import positions
from runledger import control

log = logging.getLogger("runledger.swap")

INCOMING = "incoming"  # node.duckdb.<time>.incoming: a rebuilt file a node is taking over


class SwapError(control.RequestFailed):
    """The swap did not happen (or not all of it); the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class SwapResult:
    live: Path
    backup: Path | None
    positions: dict[int, int]
    seconds: float = 0.0


def wal_of(path: Path) -> Path:
    """DuckDB's write-ahead log of ``path``."""
    return Path(f"{path}.wal")


def stamp() -> str:
    """The time, now, as it appears in the names of backup and incoming files."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def check_closed(new: Path, live: Path, topic: str) -> dict[int, int]:
    """The positions of ``new``, a closed read model of ``topic``; SwapError otherwise.

    Opens ``new`` read-only, which DuckDB refuses while another process writes it.
    """
    if new.is_dir():
        raise SwapError(f"{new} is a folder: name the rebuilt .duckdb file (runledger replay)")
    if not new.is_file():
        raise SwapError(f"{new} does not exist")
    if live.exists() and new.samefile(live):
        raise SwapError(f"{new} is the node's own read model: swap to a rebuilt file")
    if wal_of(new).exists():
        raise SwapError(f"{new} has a write-ahead log: it was not closed cleanly; replay again")
    try:
        found = positions(new, topic)
    except StoreError as exc:  # not a DuckDB file, or no positions table
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


def keep_as_backup(live: Path, when: str) -> Path:
    """Give ``live`` (closed) a second name, ``<live>.<when>.bak``, and move its log there."""
    backup = live.with_name(f"{live.name}.{when}.bak")
    try:
        os.link(live, backup)  # node.duckdb keeps naming a whole file until the rename
    except OSError:
        shutil.copy2(live, backup)
    if wal_of(live).exists():  # never let the old log be replayed onto the new file
        os.replace(wal_of(live), wal_of(backup))
    return backup
