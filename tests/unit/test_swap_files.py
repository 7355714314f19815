"""The files a swap leaves when its node dies, and what a node does with them at start
(``runledger.swap_files.tidy``). No broker: the files are made here, and a node that
dies mid-swap is a child process that writes through a Store and exits without
closing it, as ``kill -9`` would leave it."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from projections.fold import Batch
from projections.store import Store
from runledger.swap import swap_offline
from runledger.swap_files import BACKUP, INCOMING, SwapError, check_closed, tidy, wal_of

TOPIC = "t.ledger.events"
DB_FILE = "node.duckdb"

# A projector that committed one batch to the incoming file, then its process died.
_DIES_AFTER_A_COMMIT = textwrap.dedent(
    """
    import os, sys
    from projections.fold import Batch
    from projections.store import Store
    store = Store(sys.argv[1]).open()
    store.write(Batch(topic=sys.argv[2], positions={0: 7, 1: 4}))
    os._exit(0)  # no close, no checkpoint: the commit is in the write-ahead log only
    """
)


def _read_model(path: Path, positions: dict[int, int]) -> None:
    with Store(path) as store:
        store.write(Batch(topic=TOPIC, positions=positions))


def _dies_after_a_commit(path: Path) -> None:
    subprocess.run(
        [sys.executable, "-c", _DIES_AFTER_A_COMMIT, str(path), TOPIC],
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert wal_of(path).exists()


def _interrupted_swap(data_dir: Path) -> Path:
    """What `kill -9` of a node during a swap's catch-up leaves: node.duckdb, and the
    rebuilt file under its incoming name with the catch-up's commits in its log."""
    _read_model(data_dir / DB_FILE, {0: 9, 1: 9})
    incoming = data_dir / f"{DB_FILE}.20261122T223209505636Z.{INCOMING}"
    _read_model(incoming, {0: 3, 1: 2})  # as `runledger replay` built it
    _dies_after_a_commit(incoming)
    return incoming


def test_a_swap_interrupted_by_a_dead_node_can_be_taken_again_after_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    incoming = _interrupted_swap(tmp_path)
    live = tmp_path / DB_FILE
    with pytest.raises(SwapError, match="write-ahead log"):
        check_closed(incoming, live, TOPIC)  # what `swap --from` met before the start

    with caplog.at_level(logging.WARNING, logger="runledger.swap"):
        tidy(tmp_path, DB_FILE)

    assert not wal_of(incoming).exists()
    # The file keeps what the dead node's projector committed, and swap takes it.
    assert check_closed(incoming, live, TOPIC) == {0: 7, 1: 4}
    assert f"runledger swap --from {incoming}" in caplog.text


def test_the_orphaned_log_of_a_swapped_file_is_dropped_and_node_duckdb_is_kept(
    tmp_path: Path,
) -> None:
    _read_model(tmp_path / DB_FILE, {0: 5})
    orphan = tmp_path / f"{DB_FILE}.20261122T222257487272Z.{INCOMING}.wal"
    orphan.write_bytes(b"not a log any file will replay")
    tidy(tmp_path, DB_FILE)
    assert not orphan.exists()
    assert check_closed(tmp_path / DB_FILE, tmp_path / "other.duckdb", TOPIC) == {0: 5}


def test_a_backup_that_kept_a_log_is_folded_at_start_so_a_rollback_takes_it(
    tmp_path: Path,
) -> None:
    _read_model(tmp_path / DB_FILE, {0: 9, 1: 9})
    backup = tmp_path / f"{DB_FILE}.20261122T223701745114Z.{BACKUP}"
    _read_model(backup, {0: 3, 1: 2})
    _dies_after_a_commit(backup)  # a node.duckdb.wal moved along with it
    tidy(tmp_path, DB_FILE)
    assert not wal_of(backup).exists()
    assert check_closed(backup, tmp_path / DB_FILE, TOPIC) == {0: 7, 1: 4}


def test_an_offline_swap_leaves_a_backup_without_a_log(tmp_path: Path) -> None:
    live = tmp_path / DB_FILE
    _read_model(live, {0: 3, 1: 2})
    _dies_after_a_commit(live)  # a node stopped without folding its log
    rebuilt = tmp_path / "rebuilt.duckdb"
    _read_model(rebuilt, {0: 9, 1: 9})

    result = swap_offline(live, rebuilt, TOPIC)

    assert result.backup is not None and not wal_of(result.backup).exists()
    assert check_closed(result.backup, live, TOPIC) == {0: 7, 1: 4}  # the rollback
    assert check_closed(live, result.backup, TOPIC) == {0: 9, 1: 9}
