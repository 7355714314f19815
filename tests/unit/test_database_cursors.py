"""A node reads through one DuckDB cursor per reading thread. Starlette's thread pool
(anyio) ends threads idle for 10 s and starts new ones under the next burst, so over a
node's life many threads come and go: the cursors of ended threads must be let go,
not kept until the file closes (a soak saw the node's reading threads renewed steadily;
each cursor kept is a DuckDB client context, ~14 KB and more)."""

from __future__ import annotations

import threading
from pathlib import Path

from projections.database import Database


def _read_in_new_thread(db: Database) -> None:
    failures: list[BaseException] = []

    def read() -> None:
        try:
            with db.snapshot():
                assert db.query("SELECT count(*) FROM t") == [(3,)]
        except BaseException as exc:  # report it in the test's thread
            failures.append(exc)

    thread = threading.Thread(target=read)
    thread.start()
    thread.join()
    assert not failures, failures


def test_cursors_of_ended_threads_are_let_go(tmp_path: Path) -> None:
    db = Database(tmp_path / "node.duckdb", checkpoint_mib=16)
    db.open(["CREATE TABLE t AS SELECT * FROM range(3) r(i)"])
    try:
        for _ in range(200):  # each thread reads once, then ends
            _read_in_new_thread(db)
        # Only the threads that may still read keep a cursor: at most the last one.
        assert len(db._cursors) <= 1
    finally:
        db.close()


def test_live_threads_keep_their_cursor(tmp_path: Path) -> None:
    db = Database(tmp_path / "node.duckdb", checkpoint_mib=16)
    db.open(["CREATE TABLE t AS SELECT * FROM range(3) r(i)"])
    go, done = threading.Event(), threading.Event()
    seen: list[object] = []

    def long_lived() -> None:
        seen.append(db._cursor())
        go.set()
        done.wait(10)
        seen.append(db._cursor())  # the same cursor, still open, after others came and went
        seen.append(db.query("SELECT count(*) FROM t"))

    thread = threading.Thread(target=long_lived)
    thread.start()
    try:
        assert go.wait(10)
        for _ in range(20):
            _read_in_new_thread(db)
    finally:
        done.set()
        thread.join()
    assert seen[0] is seen[1]
    assert seen[2] == [(3,)]
    assert db.query("SELECT count(*) FROM t") == [(3,)]  # this thread's own cursor
    db.close()
