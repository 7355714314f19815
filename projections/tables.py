"""The read model's tables: one definition gives the DDL and the Arrow schema of a batch.

Times are stored as ``TIMESTAMP`` holding UTC (the domain's integer microseconds);
JSON documents (``info``, ``result_summary``, an event's ``data``) are stored as text.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    sql: str
    arrow: pa.DataType
    nullable: bool = True


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.arrow, nullable=c.nullable) for c in self.columns])

    @property
    def column_list(self) -> str:
        """The quoted column names, comma separated (``offset`` is an SQL keyword)."""
        return ", ".join(f'"{c.name}"' for c in self.columns)

    def select_list(self, alias: str = "") -> str:
        """Every column, timestamps read back as integer microseconds (``epoch_us``)."""
        prefix = f"{alias}." if alias else ""
        return ", ".join(
            f'epoch_us({prefix}"{c.name}")' if c.arrow == TS else f'{prefix}"{c.name}"'
            for c in self.columns
        )

    def ddl(self) -> str:
        cols = [f'"{c.name}" {c.sql}{"" if c.nullable else " NOT NULL"}' for c in self.columns]
        if self.primary_key:
            cols.append(f"PRIMARY KEY ({', '.join(self.primary_key)})")
        return f"CREATE TABLE IF NOT EXISTS {self.name} ({', '.join(cols)})"


TS = pa.timestamp("us")


def _text(name: str, nullable: bool = True) -> Column:
    return Column(name, "VARCHAR", pa.string(), nullable)


def _time(name: str, nullable: bool = True) -> Column:
    return Column(name, "TIMESTAMP", TS, nullable)


PROCESSES = Table(
    "processes",
    (
        _text("id", False),
        _text("account", False),
        _text("type", False),
        _text("site"),
        _text("status", False),
        Column("progress", "DOUBLE", pa.float64(), False),
        Column("success", "BOOLEAN", pa.bool_(), False),
        _text("exception"),
        _text("object_id"),
        _text("info", False),
        _text("result_summary"),
        _text("message"),
        Column("attempt", "INTEGER", pa.int32(), False),
        _text("created_by", False),
        _time("time_created", False),
        _time("time_started"),
        _time("time_completed"),
        _time("time_updated", False),
        Column("seq", "BIGINT", pa.int64(), False),
        Column("deleted", "BOOLEAN", pa.bool_(), False),
    ),
    primary_key=("id",),
)

STEPS = Table(
    "steps",
    (
        _text("process_id", False),
        _text("step_id", False),
        _text("name", False),
        Column("step_order", "INTEGER", pa.int32(), False),
        Column("enabled", "BOOLEAN", pa.bool_(), False),
        _text("status", False),
        _time("time_started"),
        _time("time_completed"),
        _text("message"),
        _text("exception"),
    ),
    primary_key=("process_id", "step_id"),
)

EVENTS = Table(
    "events",
    (
        _text("aggregate_type", False),
        _text("aggregate_id", False),
        Column("seq", "BIGINT", pa.int64(), False),
        _text("event_id", False),
        _text("type", False),
        _time("occurred_at", False),
        _text("account", False),
        _text("actor", False),
        _text("command_id", False),
        _text("correlation_id", False),
        _text("causation_id", False),
        _text("data", False),
        Column("partition", "INTEGER", pa.int32(), False),
        Column("offset", "BIGINT", pa.int64(), False),
        # The aggregate's status right after this event (None for aggregates without one).
        _text("status"),
    ),
)

# An account's tokens, in the order they were created (``ordinal``), so a state loaded
# back from the table equals the folded one.
TOKENS = Table(
    "tokens",
    (
        _text("token_hash", False),
        _text("account", False),
        _text("name", False),
        _time("created_at", False),
        Column("revoked", "BOOLEAN", pa.bool_(), False),
        Column("ordinal", "INTEGER", pa.int32(), False),
    ),
    primary_key=("token_hash",),
)

# The seq an account has reached: the tokens alone cannot tell it, and the fold needs it
# to recognise a duplicate after a restart.
ACCOUNTS = Table(
    "accounts",
    (_text("name", False), Column("seq", "BIGINT", pa.int64(), False)),
    primary_key=("name",),
)

# Definitions: one row per Site, Flow and Case, columns in the order of the state's
# fields (so a row is the state); nested documents are canonical JSON text.
_SEQ = Column("seq", "BIGINT", pa.int64(), False)
_DELETED = Column("deleted", "BOOLEAN", pa.bool_(), False)

SITES = Table(
    "sites",
    (
        _text("id", False),
        _text("account", False),
        _text("site_url", False),
        _text("created_by", False),
        _time("time_created", False),
        _SEQ,
        _DELETED,
        _time("time_deleted"),
    ),
    primary_key=("id",),
)

FLOWS = Table(
    "flows",
    (
        _text("id", False),
        _text("account", False),
        _text("name", False),
        _text("nodes", False),
        _text("edges", False),
        _text("configs", False),
        _text("created_by", False),
        _time("time_created", False),
        _SEQ,
        _DELETED,
        _time("time_deleted"),
    ),
    primary_key=("id",),
)

CASES = Table(
    "cases",
    (
        _text("id", False),
        _text("account", False),
        _text("site_id", False),
        _text("name", False),
        _text("case_type", False),
        _text("steps", False),
        _text("created_by", False),
        _time("time_created", False),
        _SEQ,
        _DELETED,
        _time("time_deleted"),
    ),
    primary_key=("id",),
)

# Runs: one row per FlowRun and CaseRun. The per-node and per-step states (status,
# times, exception, ...) are JSON text lists in the run's row: a run is always read and
# written whole, and a few hundred nodes at most fit one value (no child tables to join).
FLOWRUNS = Table(
    "flowruns",
    (
        _text("id", False),
        _text("account", False),
        _text("created_by", False),
        _text("site_id", False),
        _text("flow_id", False),
        _text("title", False),
        Column("end_on_fail", "BOOLEAN", pa.bool_(), False),
        _text("flow_nodes", False),  # the nodes as copied from the Flow (canonical JSON)
        _text("edges", False),
        _time("time_created", False),
        _text("nodes", False),  # each node's state: status, times, exception, ...
        _SEQ,
        _text("status", False),
        Column("attempt", "INTEGER", pa.int32(), False),
        _time("time_started"),
        _time("time_completed"),
        _time("time_updated", False),
        _DELETED,
        _text("logs", False),
    ),
    primary_key=("id",),
)

CASERUNS = Table(
    "caseruns",
    (
        _text("id", False),
        _text("account", False),
        _text("created_by", False),
        _text("site_id", False),
        _text("case_id", False),
        _text("title", False),
        _text("case_steps", False),  # the steps as copied from the Case (canonical JSON)
        _time("time_created", False),
        _text("steps", False),  # each step's action/assertion state and screenshot
        _text("flowrun_id"),
        _text("node_id"),
        _SEQ,
        _text("status", False),
        _time("time_started"),
        _time("time_completed"),
        _time("time_updated", False),
        _DELETED,
        _text("exception"),
    ),
    primary_key=("id",),
)

POSITIONS = Table(
    "positions",
    (
        _text("topic", False),
        Column("partition", "INTEGER", pa.int32(), False),
        Column("next_offset", "BIGINT", pa.int64(), False),
    ),
    primary_key=("topic", "partition"),
)

ALL = (
    PROCESSES,
    STEPS,
    EVENTS,
    TOKENS,
    ACCOUNTS,
    SITES,
    FLOWS,
    CASES,
    FLOWRUNS,
    CASERUNS,
    POSITIONS,
)
