"""The DuckDB file of a node: the only module that imports duckdb.

One process writes it (the node's projector); the API of the same process reads it
through per-thread cursors, which see committed transactions only. A batch is written
as one Arrow table per table, inside one transaction that ends with the Kafka
positions, so rows and positions are kept or lost together.
"""

from __future__ import annotations

import contextlib
import threading
from collections import defaultdict
from collections.abc import Collection, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb
import pyarrow as pa

from projections import rows, tables
from projections.errors import StoreError
from projections.fold import Batch, State, StreamId
from streams.domain import account, caserun, flowrun, process
from streams.domain.account import AccountState
from streams.domain.aggregates import DEFINITION_STATES
from streams.domain.process import ProcessState

_STAGED = "_runledger_batch"
_KEYS = "_runledger_keys"

INDEXES = ("CREATE INDEX IF NOT EXISTS events_by_aggregate ON events (aggregate_id, seq)",)


class Store:
    """The read model in one DuckDB file. Use as a context manager, or open()/close().

    Writes go through one connection guarded by a lock; reads (:meth:`query` and the
    ``load_*`` methods) use a cursor per thread and see committed data only. Every
    duckdb error is raised as StoreError.
    """

    def __init__(self, path: str | Path, *, checkpoint_mib: int = 64) -> None:
        if checkpoint_mib < 1:
            raise ValueError("checkpoint_mib must be at least 1")
        self.path = Path(path)
        self.checkpoint_mib = checkpoint_mib
        self._con: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []

    # -- lifecycle ---------------------------------------------------------------------

    def open(self) -> Store:
        """Open (creating if needed) the file and its tables; StoreError if it is locked."""
        if self._con is not None:
            return self
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = duckdb.connect(str(self.path))
            # DuckDB folds the WAL into the file every 16 MiB by default; the projector
            # updates the same recent Processes in every batch, so a larger WAL rewrites
            # those row groups less often (measured: commit cost per event / 2.5).
            con.execute(f"SET checkpoint_threshold = '{self.checkpoint_mib}MiB'")
            for table in tables.ALL:
                con.execute(table.ddl())
            for index in INDEXES:
                con.execute(index)
        except (duckdb.Error, OSError) as exc:
            raise StoreError(f"cannot open the read model {self.path}: {exc}") from exc
        self._con = con
        return self

    def close(self) -> None:
        with self._lock:
            for cursor in self._cursors:
                cursor.close()
            self._cursors.clear()
            self._local = threading.local()
            if self._con is not None:
                self._con.close()
                self._con = None

    def __enter__(self) -> Store:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

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
                self._cursors.append(cursor)
            self._local.cursor = cursor
        return cursor

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only statement, on this thread's own cursor."""
        try:
            return self._cursor().execute(sql, list(params)).fetchall()
        except duckdb.Error as exc:
            raise StoreError(f"read from {self.path} failed: {exc}") from exc

    def _query_keyed(self, keys: Collection[str], *statements: str) -> list[list[tuple[Any, ...]]]:
        """Run ``statements`` with ``keys`` as the one-column table ``_runledger_keys(id)``.

        On this thread's cursor, not the writer's connection: a fold can load its
        cache misses (committed states) while the previous batch is being written.
        """
        try:
            cursor = self._cursor()
            cursor.register(_KEYS, pa.table({"id": pa.array(list(keys), pa.string())}))
            try:
                return [cursor.execute(sql).fetchall() for sql in statements]
            finally:
                cursor.unregister(_KEYS)
        except duckdb.Error as exc:
            raise StoreError(f"read from {self.path} failed: {exc}") from exc

    def positions(self, topic: str) -> dict[int, int]:
        """The next offset to read per partition of ``topic`` (absent: from the start)."""
        found = self.query(
            'SELECT "partition", next_offset FROM positions WHERE topic = ?', (topic,)
        )
        return {partition: offset for partition, offset in found}

    def load_processes(self, ids: Collection[str]) -> dict[str, ProcessState]:
        """The stored states (with steps) of those of ``ids`` that exist, deleted included."""
        if not ids:
            return {}
        found, step_rows = self._query_keyed(
            ids,
            f"SELECT {tables.PROCESSES.select_list('p')} FROM processes p "
            f"SEMI JOIN {_KEYS} k ON p.id = k.id",
            f"SELECT {tables.STEPS.select_list('s')} FROM steps s "
            f"SEMI JOIN {_KEYS} k ON s.process_id = k.id "
            "ORDER BY s.process_id, s.step_order, s.step_id",
        )
        steps: dict[str, list[process.StepState]] = defaultdict(list)
        for row in step_rows:
            steps[row[0]].append(rows.step_from_row(row[1:]))
        return {row[0]: rows.process_from_row(row, tuple(steps.get(row[0], ()))) for row in found}

    def load_accounts(self, names: Collection[str]) -> dict[str, AccountState]:
        """The stored states (with tokens) of those of ``names`` that exist."""
        if not names:
            return {}
        found, token_rows = self._query_keyed(
            names,
            f"SELECT a.name, a.seq FROM accounts a SEMI JOIN {_KEYS} k ON a.name = k.id",
            "SELECT t.account, t.token_hash, t.name, epoch_us(t.created_at), t.revoked "
            f"FROM tokens t SEMI JOIN {_KEYS} k ON t.account = k.id "
            "ORDER BY t.account, t.ordinal",
        )
        tokens: dict[str, list[account.Token]] = defaultdict(list)
        for row in token_rows:
            tokens[row[0]].append(rows.token_from_row(row[1:]))
        return {name: AccountState(name, seq, tuple(tokens.get(name, ()))) for name, seq in found}

    def load_states(self, keys: Collection[StreamId]) -> dict[StreamId, State]:
        """The stored states of ``keys`` (a fold's cache misses); absent keys are new."""
        by_type: dict[str, list[str]] = defaultdict(list)
        for aggregate_type, aggregate_id in keys:
            by_type[aggregate_type].append(aggregate_id)
        out: dict[StreamId, State] = {}
        for pid, p in self.load_processes(by_type.get(process.AGGREGATE, ())).items():
            out[(process.AGGREGATE, pid)] = p
        for name, a in self.load_accounts(by_type.get(account.AGGREGATE, ())).items():
            out[(account.AGGREGATE, name)] = a
        for aggregate_type, cls in DEFINITION_STATES.items():
            for key, state in self.load_definitions(cls, by_type.get(aggregate_type, ())).items():
                out[(aggregate_type, key)] = state
        for key, run in self.load_flowruns(by_type.get(flowrun.AGGREGATE, ())).items():
            out[(flowrun.AGGREGATE, key)] = run
        for key, case_run in self.load_caseruns(by_type.get(caserun.AGGREGATE, ())).items():
            out[(caserun.AGGREGATE, key)] = case_run
        return out

    def load_flowruns(self, ids: Collection[str]) -> dict[str, flowrun.FlowRunState]:
        """The stored FlowRuns of ``ids``, deleted included."""
        return {r.id: r for r in map(rows.flowrun_from_row, self._rows_of(tables.FLOWRUNS, ids))}

    def load_caseruns(self, ids: Collection[str]) -> dict[str, caserun.CaseRunState]:
        """The stored CaseRuns of ``ids``, deleted included."""
        return {r.id: r for r in map(rows.caserun_from_row, self._rows_of(tables.CASERUNS, ids))}

    def _rows_of(self, table: tables.Table, ids: Collection[str]) -> list[tuple[Any, ...]]:
        if not ids:
            return []
        (found,) = self._query_keyed(
            ids,
            f"SELECT {table.select_list('d')} FROM {table.name} d "
            f"SEMI JOIN {_KEYS} k ON d.id = k.id",
        )
        return found

    def load_definitions(
        self, cls: type[rows.Definition], ids: Collection[str]
    ) -> dict[str, rows.Definition]:
        """The stored Sites, Flows or Cases (``cls``) of ``ids``, deleted included."""
        if not ids:
            return {}
        table = rows.DEFINITION_TABLES[cls]
        (found,) = self._query_keyed(
            ids,
            f"SELECT {table.select_list('d')} FROM {table.name} d "
            f"SEMI JOIN {_KEYS} k ON d.id = k.id",
        )
        return {row[0]: rows.definition_from_row(cls, row) for row in found}

    # -- writes ------------------------------------------------------------------------

    def write(self, batch: Batch) -> bool:
        """Write ``batch`` in one transaction: events, states, then positions.

        Returns False, writing nothing, when every position of the batch is already
        stored (the batch was applied before). Raises StoreError after a rollback.
        """
        with self._lock:
            con = self._connection
            try:
                con.execute("BEGIN TRANSACTION")
                try:
                    if batch.positions and self._applied_before(con, batch):
                        con.execute("ROLLBACK")
                        return False
                    self._write_rows(con, batch)
                    if batch.positions:
                        columns = rows.position_columns(batch.topic, dict(batch.positions))
                        _insert(con, tables.POSITIONS, columns, "INSERT OR REPLACE")
                    con.execute("COMMIT")
                except BaseException:
                    _rollback(con)
                    raise
            except duckdb.Error as exc:
                raise StoreError(f"writing a batch to {self.path} failed: {exc}") from exc
        return True

    def append(self, table: tables.Table, data: pa.Table) -> None:
        """Insert the Arrow rows ``data`` (in ``table``'s column order) into ``table``, in
        one transaction: a bulk replay's chunks, which no reader sees before the file is
        complete. Raises StoreError after a rollback."""
        if not data.num_rows:
            return
        with self._lock:
            con = self._connection
            try:
                con.execute("BEGIN TRANSACTION")
                try:
                    con.register(_STAGED, data)
                    try:
                        names = table.column_list
                        con.execute(
                            f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {_STAGED}"
                        )
                    finally:
                        con.unregister(_STAGED)
                    con.execute("COMMIT")
                except BaseException:
                    _rollback(con)
                    raise
            except duckdb.Error as exc:
                raise StoreError(f"appending to {table.name} in {self.path} failed: {exc}") from exc

    def _applied_before(self, con: duckdb.DuckDBPyConnection, batch: Batch) -> bool:
        stored = dict(
            con.execute(
                'SELECT "partition", next_offset FROM positions WHERE topic = ?', [batch.topic]
            ).fetchall()
        )
        return all(stored.get(p, 0) >= o for p, o in batch.positions.items())

    def _write_rows(self, con: duckdb.DuckDBPyConnection, batch: Batch) -> None:
        if batch.events:
            columns = rows.event_columns(
                batch.events,
                batch.partitions,
                batch.offsets,
                batch.statuses,
                batch.data or None,
            )
            _insert(con, tables.EVENTS, columns)
        processes = batch.processes
        if processes:
            _insert(con, tables.PROCESSES, rows.process_columns(processes), "INSERT OR REPLACE")
        if batch.steps_replaced:
            ids = pa.table({"id": pa.array(sorted(batch.steps_replaced), pa.string())})
            con.register(_KEYS, ids)
            try:
                con.execute(f"DELETE FROM steps WHERE process_id IN (SELECT id FROM {_KEYS})")
            finally:
                con.unregister(_KEYS)
        if batch.steps:
            _insert(con, tables.STEPS, rows.step_columns(batch.steps), "INSERT OR REPLACE")
        accounts = batch.accounts
        if accounts:
            _insert(con, tables.ACCOUNTS, rows.account_columns(accounts), "INSERT OR REPLACE")
            _insert(con, tables.TOKENS, rows.token_columns(accounts), "INSERT OR REPLACE")
        for cls, table in rows.DEFINITION_TABLES.items():
            changed: list[rows.Definition] = batch.of_type(cls)
            if changed:
                _insert(con, table, rows.definition_columns(table, changed), "INSERT OR REPLACE")
        flowruns = batch.of_type(flowrun.FlowRunState)
        if flowruns:
            _insert(con, tables.FLOWRUNS, rows.flowrun_columns(flowruns), "INSERT OR REPLACE")
        caseruns = batch.of_type(caserun.CaseRunState)
        if caseruns:
            _insert(con, tables.CASERUNS, rows.caserun_columns(caseruns), "INSERT OR REPLACE")


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    # A failed COMMIT has already ended the transaction; keep the first error.
    with contextlib.suppress(duckdb.Error):
        con.execute("ROLLBACK")


def _insert(
    con: duckdb.DuckDBPyConnection,
    table: tables.Table,
    columns: rows.Columns,
    verb: str = "INSERT",
) -> None:
    """One set-based insert of ``columns`` into ``table`` through a registered Arrow table."""
    if not columns[table.columns[0].name]:
        return
    data = pa.Table.from_pydict(columns, schema=table.schema)
    con.register(_STAGED, data)
    try:
        names = table.column_list
        con.execute(f"{verb} INTO {table.name} ({names}) SELECT {names} FROM {_STAGED}")
    finally:
        con.unregister(_STAGED)
