"""The read model of a node: aggregate states and events in its DuckDB file, and back.

One process writes it (the node's projector); the API of the same process reads it
through per-thread cursors, which see committed transactions only. A batch is written
as one Arrow table per table, inside one transaction that ends with the Kafka
positions, so rows and positions are kept or lost together. The driver itself is in
``database``, the only module that imports duckdb.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Collection, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import pyarrow as pa

from projections import rows, tables
from projections.database import KEYS, POSITIONS_OF_TOPIC, Database, Transaction
from projections.fold import Batch, State, StreamId
from streams.domain import account, caserun, flowrun, process
from streams.domain.account import AccountState
from streams.domain.aggregates import DEFINITION_STATES
from streams.domain.process import ProcessState

INDEXES = ("CREATE INDEX IF NOT EXISTS events_by_aggregate ON events (aggregate_id, seq)",)


class Store:
    """The read model in one DuckDB file. Use as a context manager, or open()/close().

    Writes go through one connection guarded by a lock; reads (:meth:`query` and the
    ``load_*`` methods) use a cursor per thread and see committed data only. Every
    duckdb error is raised as StoreError.
    """

    def __init__(
        self, path: str | Path, *, checkpoint_mib: int = 64, memory_mib: int | None = None
    ) -> None:
        if checkpoint_mib < 1:
            raise ValueError("checkpoint_mib must be at least 1")
        if memory_mib is not None and memory_mib < 1:
            raise ValueError("memory_mib must be at least 1")
        self.path = Path(path)
        self.checkpoint_mib = checkpoint_mib
        self.memory_mib = memory_mib
        self._db = Database(self.path, checkpoint_mib=checkpoint_mib, memory_mib=memory_mib)

    # -- lifecycle ---------------------------------------------------------------------

    def open(self) -> Store:
        """Open (creating if needed) the file and its tables; StoreError if it is locked."""
        self._db.open([*(table.ddl() for table in tables.ALL), *INDEXES])
        return self

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- reads -------------------------------------------------------------------------

    def snapshot(self) -> contextlib.AbstractContextManager[None]:
        """A block whose reads on this thread all see one committed state."""
        return self._db.snapshot()

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only statement, on this thread's own cursor."""
        return self._db.query(sql, params)

    def positions(self, topic: str) -> dict[int, int]:
        """The next offset to read per partition of ``topic`` (absent: from the start)."""
        found = self.query(POSITIONS_OF_TOPIC, (topic,))
        return {partition: offset for partition, offset in found}

    def topics(self) -> list[str]:
        """The topics this file holds positions of (one: the ledger it was built from)."""
        return sorted(topic for (topic,) in self.query("SELECT DISTINCT topic FROM positions"))

    def load_processes(self, ids: Collection[str]) -> dict[str, ProcessState]:
        """The stored states (with steps) of those of ``ids`` that exist, deleted included."""
        if not ids:
            return {}
        found, step_rows = self._db.query_keyed(
            ids,
            f"SELECT {tables.PROCESSES.select_list('p')} FROM processes p "
            f"SEMI JOIN {KEYS} k ON p.id = k.id",
            f"SELECT {tables.STEPS.select_list('s')} FROM steps s "
            f"SEMI JOIN {KEYS} k ON s.process_id = k.id "
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
        found, token_rows = self._db.query_keyed(
            names,
            f"SELECT a.name, a.seq FROM accounts a SEMI JOIN {KEYS} k ON a.name = k.id",
            "SELECT t.account, t.token_hash, t.name, epoch_us(t.created_at), t.revoked "
            f"FROM tokens t SEMI JOIN {KEYS} k ON t.account = k.id "
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
        (found,) = self._db.query_keyed(
            ids,
            f"SELECT {table.select_list('d')} FROM {table.name} d "
            f"SEMI JOIN {KEYS} k ON d.id = k.id",
        )
        return found

    def load_definitions(
        self, cls: type[rows.Definition], ids: Collection[str]
    ) -> dict[str, rows.Definition]:
        """The stored Sites, Flows or Cases (``cls``) of ``ids``, deleted included."""
        found = self._rows_of(rows.DEFINITION_TABLES[cls], ids)
        return {row[0]: rows.definition_from_row(cls, row) for row in found}

    # -- writes ------------------------------------------------------------------------

    def write(self, batch: Batch) -> bool:
        """Write ``batch`` in one transaction: events, states, then positions.

        Returns False, writing nothing, when every position of the batch is already
        stored (the batch was applied before). Raises StoreError after a rollback.
        """
        with self._db.transaction(f"writing a batch to {self.path} failed") as tx:
            if batch.positions and _applied_before(tx, batch):
                tx.rollback()
                return False
            self._write_rows(tx, batch)
            if batch.positions:
                columns = rows.position_columns(batch.topic, dict(batch.positions))
                _insert(tx, tables.POSITIONS, columns, "INSERT OR REPLACE")
        return True

    def append(self, table: tables.Table, data: pa.Table) -> None:
        """Insert the Arrow rows ``data`` (in ``table``'s column order) into ``table``, in
        one transaction: a bulk replay's chunks, which no reader sees before the file is
        complete. Raises StoreError after a rollback."""
        if not data.num_rows:
            return
        with self._db.transaction(f"appending to {table.name} in {self.path} failed") as tx:
            tx.insert(table, data)

    def _write_rows(self, tx: Transaction, batch: Batch) -> None:
        if batch.events:
            columns = rows.event_columns(
                batch.events,
                batch.partitions,
                batch.offsets,
                batch.statuses,
                batch.data or None,
            )
            _insert(tx, tables.EVENTS, columns)
        processes = batch.processes
        if processes:
            _insert(tx, tables.PROCESSES, rows.process_columns(processes), "INSERT OR REPLACE")
        if batch.steps_replaced:
            tx.delete_keyed("steps", "process_id", sorted(batch.steps_replaced))
        if batch.steps:
            _insert(tx, tables.STEPS, rows.step_columns(batch.steps), "INSERT OR REPLACE")
        accounts = batch.accounts
        if accounts:
            _insert(tx, tables.ACCOUNTS, rows.account_columns(accounts), "INSERT OR REPLACE")
            _insert(tx, tables.TOKENS, rows.token_columns(accounts), "INSERT OR REPLACE")
        for cls, table in rows.DEFINITION_TABLES.items():
            changed: list[rows.Definition] = batch.of_type(cls)
            if changed:
                _insert(tx, table, rows.definition_columns(table, changed), "INSERT OR REPLACE")
        flowruns = batch.of_type(flowrun.FlowRunState)
        if flowruns:
            _insert(tx, tables.FLOWRUNS, rows.flowrun_columns(flowruns), "INSERT OR REPLACE")
        caseruns = batch.of_type(caserun.CaseRunState)
        if caseruns:
            _insert(tx, tables.CASERUNS, rows.caserun_columns(caseruns), "INSERT OR REPLACE")


def _applied_before(tx: Transaction, batch: Batch) -> bool:
    stored: dict[int, int] = dict(tx.query(POSITIONS_OF_TOPIC, [batch.topic]))
    return all(stored.get(p, 0) >= o for p, o in batch.positions.items())


def _insert(
    tx: Transaction,
    table: tables.Table,
    columns: rows.Columns,
    verb: str = "INSERT",
) -> None:
    """One set-based insert of ``columns`` into ``table`` through a registered Arrow table."""
    if not columns[table.columns[0].name]:
        return
    tx.insert(table, pa.Table.from_pydict(columns, schema=table.schema), verb)
