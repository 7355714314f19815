"""Closing the node's file folds its write-ahead log into it, whatever DuckDB's own
checkpoint on shutdown does (operator drills saw it leave 7 and 31 MB logs): a file
with a log beside it cannot be swapped in (``swap --from`` refuses it) or copied alone."""

from __future__ import annotations

from pathlib import Path

import duckdb

from projections.database import Database


def test_close_leaves_no_log_even_without_duckdbs_shutdown_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "node.duckdb"
    db = Database(path, checkpoint_mib=256)  # no automatic checkpoint on this little data
    db.open(["CREATE TABLE t (id INTEGER, body VARCHAR)"])
    con = db._connection
    con.execute("PRAGMA disable_checkpoint_on_shutdown")  # as if DuckDB skipped it
    con.execute("INSERT INTO t SELECT i, repeat('x', 100) FROM range(20000) r(i)")
    wal = path.with_name(path.name + ".wal")
    assert wal.exists() and wal.stat().st_size > 0  # the rows are in the log so far
    db.close()
    assert not wal.exists()
    with duckdb.connect(str(path), read_only=True) as check:
        assert check.execute("SELECT count(*) FROM t").fetchone() == (20000,)
