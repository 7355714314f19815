"""DuckDB under the read side: a node's own file (STYLE rule 4 keeps duckdb in here).

A :class:`Database` is a node's own file: one writer connection behind a lock, and a
cursor per reading thread, which sees committed transactions only. Other read models,
opened read-only to read their positions, export or compare them, are in
:mod:`projections.database_readonly` (re-exported here); with
:mod:`projections.database_errors` these three are the read side's duckdb edge. Every
duckdb error leaves it as StoreError, with the duckdb error as its cause, so the store,
``verify`` and ``export`` take plain values and never see the driver.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from projections import tables
from projections.database_errors import failing, store_error
from projections.database_readonly import (  # noqa: F401 (re-exported: callers import them from here)
    POSITIONS_OF_TOPIC,
    Comparison,
    Side,
    copy_tables,
    read_positions,
)
from projections.errors import StoreError

Row = tuple[Any, ...]

# A checkpoint threshold no write-ahead log reaches (see Database._revive).
LOG_ONLY = "1024TiB"
# The one-column table ``(id)`` that :meth:`Database.query_keyed` registers for its
# statements, and the name a batch's Arrow rows are registered under to be inserted.
KEYS = "_runledger_keys"
_STAGED = "_runledger_batch"


@contextlib.contextmanager
def _staged(con: duckdb.DuckDBPyConnection, name: str, data: pa.Table) -> Iterator[None]:
    """``data`` visible to the block's statements as the view ``name``.

    After a failed statement DuckDB refuses the unregister too ("transaction is
    aborted"): that second error is dropped so the first, the one that says what went
    wrong (a duplicate key, a type), reaches the caller.
    """
    con.register(name, data)
    try:
        yield
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.unregister(name)
        raise
    con.unregister(name)


class Database:
    """One DuckDB file, written by one connection and read through per-thread cursors.

    The file is opened by :meth:`open` and closed by :meth:`close`; every method
    raises StoreError when it is not open.
    """

    def __init__(self, path: Path, *, checkpoint_mib: int, memory_mib: int | None = None) -> None:
        self.path = path
        self.checkpoint_mib = checkpoint_mib
        self.memory_mib = memory_mib  # None: DuckDB's own limit (80 % of the RAM)
        self._con: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()
        self._local = threading.local()
        # Each reading thread's cursor, with its thread: the API's thread pool ends idle
        # threads and starts new ones, so those of ended threads are closed (below).
        self._cursors: list[tuple[threading.Thread, duckdb.DuckDBPyConnection]] = []
        self._statements: list[str] = []  # the DDL, run again when the file is reopened
        self._invalidated = False  # by a fatal error: only opening the file again helps
        self._log_only = False  # reopened after one: no checkpoint before a write works

    def open(self, statements: Iterable[str]) -> None:
        """Open (creating if needed) the file and run ``statements`` (the DDL) on it;
        StoreError if it is locked or cannot be made. Does nothing when already open."""
        if self._con is not None:
            return
        self._statements = list(statements)
        self._con = self._connect()

    def _connect(self) -> duckdb.DuckDBPyConnection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = duckdb.connect(str(self.path))
            # DuckDB folds the WAL into the file every 16 MiB by default; the projector
            # updates the same recent Processes in every batch, so a larger WAL rewrites
            # those row groups less often (measured: commit cost per event / 2.5).
            con.execute(self._checkpoint_threshold)
            if self.memory_mib is not None:
                # A node shares its machine: its buffer pool (the file's pages it
                # caches) stays under this, spilling to a temporary file if it must.
                con.execute(f"SET memory_limit = '{self.memory_mib}MiB'")
            for statement in self._statements:
                con.execute(statement)
        except (duckdb.Error, OSError) as exc:
            raise store_error(f"cannot open the read model {self.path}", exc) from exc
        except RuntimeError as exc:
            # Ctrl-C while a statement runs: DuckDB takes the signal and raises this
            # instead of KeyboardInterrupt, which the tools turn into their "interrupted"
            # line (seen when replay was interrupted as it made its file).
            if str(exc) == "Query interrupted":
                raise KeyboardInterrupt from exc
            raise
        return con

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        """Under the lock: close the cursors, then the connection."""
        for _thread, cursor in self._cursors:
            cursor.close()
        self._cursors.clear()
        self._local = threading.local()
        if self._con is not None:
            # Fold the write-ahead log into the file first: DuckDB's own checkpoint
            # on close was seen to leave large logs in place (operator drills, 7 and
            # 31 MB), and a file with a log beside it cannot be swapped in or
            # copied alone. Closing goes on if it fails (the next open replays it).
            with contextlib.suppress(duckdb.Error):
                self._con.execute("CHECKPOINT")
            self._con.close()
            self._con = None

    def _revive(self) -> None:
        """Under the lock: open the file again after a fatal error invalidated it.

        A checkpoint that fails for want of room (the disk filled as the write-ahead
        log was folded into the file, at a commit past ``checkpoint_mib``) is fatal to
        DuckDB: it refuses every later statement, reads included, until the file is
        opened again. Opening replays the log, so every committed batch is still there.
        Until a write goes through again the log is not folded in: a retry on a disk
        still full then fails as the log cannot grow, which DuckDB survives, instead of
        invalidating the file (and the reads) once more.
        """
        self._close()
        self._con = self._connect()
        self._con.execute(f"SET checkpoint_threshold = '{LOG_ONLY}'")
        self._invalidated, self._log_only = False, True

    @property
    def _checkpoint_threshold(self) -> str:
        return f"SET checkpoint_threshold = '{self.checkpoint_mib}MiB'"

    @property
    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            raise StoreError(f"the read model {self.path} is not open")
        return self._con

    # -- reads -------------------------------------------------------------------------

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cursor: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cursor is None:
            with self._lock:
                cursor = self._connection.cursor()
                self._let_go_of_ended_threads()
                self._cursors.append((threading.current_thread(), cursor))
            self._local.cursor = cursor
        return cursor

    def _let_go_of_ended_threads(self) -> None:
        """Close the cursors of threads that have ended (under the lock): nothing reads
        through them any more, and kept they would add up over a node's life."""
        ended = [cursor for thread, cursor in self._cursors if not thread.is_alive()]
        if ended:
            self._cursors = [(t, c) for t, c in self._cursors if t.is_alive()]
            for cursor in ended:
                with contextlib.suppress(duckdb.Error):
                    cursor.close()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """This thread's reads inside the block see one committed state: one read
        transaction on its cursor, so a batch committed between two of them (a row and
        its steps) does not mix two states. Nested blocks share the outer one."""
        cursor = self._cursor()
        depth = getattr(self._local, "depth", 0)
        if depth == 0:
            with failing(f"read from {self.path} failed"):
                cursor.execute("BEGIN TRANSACTION")
        self._local.depth = depth + 1
        try:
            yield
        finally:
            self._local.depth = depth
            if depth == 0:
                with contextlib.suppress(duckdb.Error):  # read only: nothing to keep
                    cursor.execute("COMMIT")

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        """Rows of a read-only statement, on this thread's own cursor."""
        with failing(f"read from {self.path} failed"):
            return self._cursor().execute(sql, list(params)).fetchall()

    def query_keyed(self, keys: Collection[str], *statements: str) -> list[list[Row]]:
        """Run ``statements`` with ``keys`` as the one-column table ``KEYS(id)``.

        On this thread's cursor, not the writer's connection: a fold can load its
        cache misses (committed states) while the previous batch is being written.
        """
        with failing(f"read from {self.path} failed"):
            cursor = self._cursor()
            with _staged(cursor, KEYS, pa.table({"id": pa.array(list(keys), pa.string())})):
                return [cursor.execute(sql).fetchall() for sql in statements]

    # -- writes ------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self, failure: str) -> Iterator[Transaction]:
        """The writer connection inside one transaction, committed when the block ends
        unless it called :meth:`Transaction.rollback`. An exception rolls back and
        passes on; a duckdb error passes on as StoreError ``failure: error``."""
        with self._lock:
            if self._invalidated:
                self._revive()
            con = self._connection
            try:
                con.execute("BEGIN TRANSACTION")
                try:
                    tx = Transaction(con)
                    yield tx
                    if not tx.rolled_back:
                        con.execute("COMMIT")
                        if self._log_only:  # written again after a revival: fold it in
                            con.execute(self._checkpoint_threshold)
                            self._log_only = False
                except BaseException:
                    _rollback(con)
                    raise
            except duckdb.Error as exc:
                if isinstance(exc, duckdb.FatalException):
                    self._invalidated = True
                    with contextlib.suppress(StoreError):  # else at the next write
                        self._revive()  # the reads resume at once
                raise store_error(failure, exc) from exc


class Transaction:
    """The statements a writer runs inside :meth:`Database.transaction`."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        self.rolled_back = False

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        return self._con.execute(sql, list(params)).fetchall()

    def insert(self, table: tables.Table, data: pa.Table, verb: str = "INSERT") -> None:
        """One set-based ``verb`` (``INSERT``, ``INSERT OR REPLACE``) of the Arrow rows
        ``data``, in ``table``'s column order, into ``table``."""
        with _staged(self._con, _STAGED, data):
            names = table.column_list
            self._con.execute(f"{verb} INTO {table.name} ({names}) SELECT {names} FROM {_STAGED}")

    def delete_keyed(self, table: str, column: str, keys: list[str]) -> None:
        """Delete the rows of ``table`` whose ``column`` is one of ``keys``, in one statement."""
        with _staged(self._con, KEYS, pa.table({"id": pa.array(keys, pa.string())})):
            self._con.execute(f"DELETE FROM {table} WHERE {column} IN (SELECT id FROM {KEYS})")

    def rollback(self) -> None:
        """End the transaction keeping nothing; the block then ends without a commit."""
        self._con.execute("ROLLBACK")
        self.rolled_back = True


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    # A failed COMMIT has already ended the transaction; keep the first error.
    with contextlib.suppress(duckdb.Error):
        con.execute("ROLLBACK")
