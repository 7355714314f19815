"""Pure builders between domain values and table rows; no I/O here.

Builders to the tables are column-oriented (one list per column, in the order of
``projections.tables``) because the store inserts a batch as one Arrow table per table.
Readers take rows as the store returns them (timestamps as integer microseconds).

This module holds Processes (with their steps), accounts (with their tokens), the
Site, Flow and Case definitions and the positions; events are in ``event_rows`` and
FlowRuns and CaseRuns in ``run_rows``, both re-exported here so that ``rows`` stays
the one name the store and the queries use.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import fields
from typing import Any

from projections import tables
from projections.columns import Columns, columns_of
from projections.event_rows import (
    EVENT_ENVELOPE,
    EventRow,
    event_columns,
    event_from_row,
    event_of_row,
    event_row,
    payload_json,
)
from projections.run_rows import (
    caserun_columns,
    caserun_from_row,
    flowrun_columns,
    flowrun_from_row,
)
from streams.domain.account import AccountState, Token
from streams.domain.case import CaseState
from streams.domain.flow import FlowState
from streams.domain.process import ProcessState, StepState
from streams.domain.site import SiteState

__all__ = [
    "DEFINITION_TABLES",
    "EVENT_ENVELOPE",
    "Columns",
    "Definition",
    "EventRow",
    "account_columns",
    "caserun_columns",
    "caserun_from_row",
    "definition_columns",
    "definition_from_row",
    "event_columns",
    "event_from_row",
    "event_of_row",
    "event_row",
    "flowrun_columns",
    "flowrun_from_row",
    "payload_json",
    "position_columns",
    "process_columns",
    "process_from_row",
    "step_columns",
    "step_from_row",
    "table_state",
    "token_columns",
    "token_from_row",
]


# -- to the tables ---------------------------------------------------------------------


def process_columns(states: Iterable[ProcessState]) -> Columns:
    """Columns of ``processes`` for the given states, one row each."""
    return columns_of(
        tables.PROCESSES,
        [
            (
                s.id,
                s.account,
                s.type,
                s.site,
                s.status,
                s.progress,
                s.success,
                s.exception,
                s.object_id,
                s.info_json,
                s.result_summary_json,
                s.message,
                s.attempt,
                s.created_by,
                s.time_created,
                s.time_started,
                s.time_completed,
                s.time_updated,
                s.seq,
                s.deleted,
            )
            for s in states
        ],
    )


def step_columns(steps: Iterable[tuple[str, StepState]]) -> Columns:
    """Columns of ``steps`` for (process id, step) pairs."""
    return columns_of(
        tables.STEPS,
        [
            (
                process_id,
                t.step_id,
                t.name,
                t.order,
                t.enabled,
                t.status,
                t.time_started,
                t.time_completed,
                t.message,
                t.exception,
            )
            for process_id, t in steps
        ],
    )


def account_columns(accounts: Iterable[AccountState]) -> Columns:
    return columns_of(tables.ACCOUNTS, [(a.name, a.seq) for a in accounts])


def token_columns(accounts: Iterable[AccountState]) -> Columns:
    """Columns of ``tokens``: every token of every given account, in creation order."""
    return columns_of(
        tables.TOKENS,
        [
            (t.token_hash, a.name, t.name, t.created_at, t.revoked, i)
            for a in accounts
            for i, t in enumerate(a.tokens)
        ],
    )


Definition = SiteState | FlowState | CaseState

# A definition's table, by state type; its columns are the state's fields in order.
DEFINITION_TABLES: dict[type, tables.Table] = {
    SiteState: tables.SITES,
    FlowState: tables.FLOWS,
    CaseState: tables.CASES,
}


def definition_columns(table: tables.Table, states: Iterable[Definition]) -> Columns:
    """Columns of ``sites``, ``flows`` or ``cases``: one row per state, fields in order."""
    names = [f.name for f in fields(table_state(table))]
    return columns_of(table, [tuple(getattr(s, name) for name in names) for s in states])


def table_state(table: tables.Table) -> type[Definition]:
    """The state type whose rows ``table`` holds."""
    return next(cls for cls, t in DEFINITION_TABLES.items() if t is table)


def definition_from_row(cls: type[Definition], row: Sequence[Any]) -> Definition:
    """A SiteState, FlowState or CaseState from its table's row (times as ints)."""
    return cls(*row)


def position_columns(topic: str, positions: dict[int, int]) -> Columns:
    return columns_of(tables.POSITIONS, [(topic, p, o) for p, o in sorted(positions.items())])


# -- from the tables -------------------------------------------------------------------


def step_from_row(row: Sequence[Any]) -> StepState:
    """A StepState from a ``steps`` row without its leading ``process_id``."""
    step_id, name, order, enabled, status, started, completed, message, exception = row
    return StepState(step_id, name, order, enabled, status, started, completed, message, exception)


def process_from_row(row: Sequence[Any], steps: tuple[StepState, ...] = ()) -> ProcessState:
    """A ProcessState from a ``processes`` row (columns in table order, times as ints)."""
    (
        id_,
        account,
        type_,
        site,
        status,
        progress,
        success,
        exception,
        object_id,
        info,
        result_summary,
        message,
        attempt,
        created_by,
        time_created,
        time_started,
        time_completed,
        time_updated,
        seq,
        deleted,
    ) = row
    return ProcessState(
        id=id_,
        account=account,
        type=type_,
        created_by=created_by,
        site=site,
        info_json=info,
        time_created=time_created,
        seq=seq,
        status=status,
        progress=progress,
        success=success,
        exception=exception,
        object_id=object_id,
        result_summary_json=result_summary,
        message=message,
        attempt=attempt,
        time_started=time_started,
        time_completed=time_completed,
        time_updated=time_updated,
        deleted=deleted,
        steps=steps,
    )


def token_from_row(row: Sequence[Any]) -> Token:
    """A Token from ``(token_hash, name, created_at, revoked)``."""
    token_hash, name, created_at, revoked = row
    return Token(token_hash, name, created_at, revoked)
