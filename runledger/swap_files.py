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
BACKUP = "bak"  # node.duckdb.<time>.bak: a file a swap replaced
# The live swap's first progress line, "took NEW as STAGED": the CLI keeps STAGED to say
# where the file is if the node dies before it answers.
TOOK = "took "
AS = " as "


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
    """At node start (the node holds ``db_file``, so no other node runs here): drop
    write-ahead logs that a swapped file left under its incoming name when its node
    died (the file itself is node.duckdb now, consistent as of its last checkpoint; the
    projector re-applies the rest), make each incoming file an interrupted swap left
    behind takeable again (see :func:`settle_incoming`), and fold the logs of backups
    into them, so that a rollback (``swap --from`` a backup) takes them."""
    for wal in data_dir.glob(f"{db_file}.*.{INCOMING}.wal"):
        if not wal.with_suffix("").exists():
            log.warning("node: removing %s, the log of a swapped file whose node died", wal)
            wal.unlink(missing_ok=True)
    for left in sorted(data_dir.glob(f"{db_file}.*.{INCOMING}")):
        settle_incoming(left)
    for backup in sorted(data_dir.glob(f"{db_file}.*.{BACKUP}")):
        if wal_of(backup).exists():
            try:
                fold_wal(backup)
                log.info("node: folded the write-ahead log of the backup %s into it", backup)
            except StoreError as exc:
                log.warning("node: the backup %s keeps its write-ahead log (%s)", backup, exc)


def fold_wal(path: Path) -> None:
    """Write ``path``'s write-ahead log into it: opening the file replays the committed
    transactions (rows and positions together), CHECKPOINT writes them into the file.
    Explicitly: DuckDB's own checkpoint on close left a 7 MB and a 31 MB log in place in
    the drill. StoreError when it cannot (a damaged file, another process holds it)."""
    store = Store(path).open()
    try:
        store.query("CHECKPOINT")
    finally:
        store.close()
    if wal_of(path).exists():
        raise StoreError(f"{wal_of(path)} is still there after a checkpoint")


def settle_incoming(left: Path) -> None:
    """An incoming file whose node died during the swap's catch-up: the rebuilt file
    the operator named, moved here, and the rows the new projector committed since, in
    its write-ahead log. ``swap`` refuses a file with a log (it cannot tell a crashed
    replay from this), so fold the log into the file; then the log line names the
    command that takes it, or what else to do."""
    if wal_of(left).exists():
        try:
            fold_wal(left)
        except StoreError as exc:
            log.warning(
                "node: %s is a rebuilt file an interrupted swap left, and its write-ahead "
                "log cannot be folded into it (%s): remove both, and replay again",
                left,
                exc,
            )
            return
    log.warning(
        "node: %s is the rebuilt file of a swap that did not finish (its node stopped "
        "during it): take it with `runledger swap --from %s`, or remove it",
        left,
        left,
    )


def keep_as_backup(live: Path, when: str) -> Path:
    """Give ``live`` (closed) a second name, ``<live>.<when>.bak``, and move its log there."""
    backup = live.with_name(f"{live.name}.{when}.{BACKUP}")
    try:
        os.link(live, backup)  # node.duckdb keeps naming a whole file until the rename
    except OSError:
        shutil.copy2(live, backup)
    if wal_of(live).exists():  # never let the old log be replayed onto the new file
        os.replace(wal_of(live), wal_of(backup))
    return backup
