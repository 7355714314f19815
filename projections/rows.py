"""Pure builders between domain values and table rows; no I/O here.

Builders to the tables are column-oriented (one list per column, in the order of
``projections.tables``) because the store inserts a batch as one Arrow table per table.
Readers take rows as the store returns them (timestamps as integer microseconds).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from operator import attrgetter
from typing import Any

import orjson

from projections import tables
from streams.domain import snapshot
from streams.domain.account import AccountState, Token
from streams.domain.case import CaseState
from streams.domain.caserun import CaseRunState
from streams.domain.events import PAYLOAD_FIELDS, Event, Payload, StepDefinition
from streams.domain.flow import FlowState
from streams.domain.flowrun import FlowRunState
from streams.domain.process import ProcessState, StepState
from streams.domain.site import SiteState
from streams.serde import event_from_record

Columns = dict[str, list[Any]]

# The columns of ``events`` that are attributes of Event, in table order.
EVENT_ENVELOPE = tables.EVENTS.names[:11]

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@dataclass(frozen=True, slots=True)
class EventRow:
    """One applied event as the ``events`` table keeps it; ``data`` is the payload as JSON."""

    aggregate_type: str
    aggregate_id: str
    seq: int
    event_id: str
    type: str
    occurred_at: int
    account: str
    actor: str
    command_id: str
    correlation_id: str
    causation_id: str
    data: str
    partition: int
    offset: int
    status: str | None = None


def _columns(table: tables.Table, rows: list[tuple[Any, ...]]) -> Columns:
    names = table.names
    if not rows:
        return {name: [] for name in names}
    return {name: list(values) for name, values in zip(names, zip(*rows, strict=True), strict=True)}


# -- to the tables ---------------------------------------------------------------------


def payload_json(data: Payload) -> str:
    """The payload's fields as compact JSON (step definitions as objects, non-ASCII as is).

    Byte for byte what ``json`` with ``separators=(",", ":"), ensure_ascii=False`` writes
    (the events already stored were written so); orjson does it several times faster
    and writes the same bytes except for floats below 1e-4 and NaN/infinity, which go
    through ``json``. Built per payload type once (``_payload_encoder``).
    """
    cls = type(data)
    encode = _ENCODERS.get(cls) or _payload_encoder(cls)
    return encode(data)


_ENCODERS: dict[type[Payload], Callable[[Payload], str]] = {}


def _payload_encoder(cls: type[Payload]) -> Callable[[Payload], str]:
    names = PAYLOAD_FIELDS[cls.TYPE]
    floats = [f.name for f in fields(cls) if "float" in str(f.type)]
    encode: Callable[[Payload], str]
    if not names:
        encode = lambda data: "{}"  # noqa: E731
    else:
        values_of: Callable[[Payload], Any] = attrgetter(*names)
        single = len(names) == 1
        floats_of: Callable[[Payload], Any] | None = attrgetter(*floats) if floats else None

        def encode(data: Payload) -> str:
            values = values_of(data)
            doc = {names[0]: values} if single else dict(zip(names, values, strict=True))
            if "steps" in doc:
                doc["steps"] = [_step_definition(s) for s in doc["steps"]]
            if floats_of is not None and not _plain_floats(floats_of(data)):
                return _dumps(doc)
            try:
                return orjson.dumps(doc).decode()
            except orjson.JSONEncodeError:  # beyond 64-bit integers, lone surrogates
                return _dumps(doc)

    _ENCODERS[cls] = encode
    return encode


def _plain_floats(values: Any) -> bool:
    """True when orjson writes these floats as ``json`` does: 0 or finite and >= 1e-4."""
    for v in values if isinstance(values, tuple) else (values,):
        if isinstance(v, float) and v != 0.0 and not 1e-4 <= abs(v) < math.inf:
            return False
    return True


def _step_definition(step: StepDefinition) -> dict[str, Any]:
    return {
        "step_id": step.step_id,
        "name": step.name,
        "order": step.order,
        "enabled": step.enabled,
    }


def process_columns(states: Iterable[ProcessState]) -> Columns:
    """Columns of ``processes`` for the given states, one row each."""
    return _columns(
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
    return _columns(
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


def event_columns(
    events: Sequence[Event],
    partitions: Sequence[int],
    offsets: Sequence[int],
    statuses: Sequence[str | None] | None = None,
    data: Sequence[str] | None = None,
) -> Columns:
    """Columns of ``events``; ``partitions[i]``/``offsets[i]`` say where ``events[i]`` was read.

    ``data[i]``, when given, is ``payload_json(events[i].data)`` made already.
    Built column by column: for the batch's largest table this is several times faster
    than a tuple per row.
    """
    if not len(events) == len(partitions) == len(offsets):
        raise ValueError("events, partitions and offsets must have the same length")
    if data is not None and len(data) != len(events):
        raise ValueError("events and data must have the same length")
    columns: Columns = {name: list(map(attrgetter(name), events)) for name in EVENT_ENVELOPE}
    columns["data"] = list(data) if data is not None else [payload_json(e.data) for e in events]
    columns["partition"] = list(partitions)
    columns["offset"] = list(offsets)
    columns["status"] = list(statuses) if statuses is not None else [None] * len(events)
    return columns


def account_columns(accounts: Iterable[AccountState]) -> Columns:
    return _columns(tables.ACCOUNTS, [(a.name, a.seq) for a in accounts])


def token_columns(accounts: Iterable[AccountState]) -> Columns:
    """Columns of ``tokens``: every token of every given account, in creation order."""
    return _columns(
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
    return _columns(table, [tuple(getattr(s, name) for name in names) for s in states])


def table_state(table: tables.Table) -> type[Definition]:
    """The state type whose rows ``table`` holds."""
    return next(cls for cls, t in DEFINITION_TABLES.items() if t is table)


def definition_from_row(cls: type[Definition], row: Sequence[Any]) -> Definition:
    """A SiteState, FlowState or CaseState from its table's row (times as ints)."""
    return cls(*row)


# -- runs: nested node and step states as JSON text --------------------------------------


def _plain(values: Iterable[Any]) -> str:
    return _dumps([asdict(v) for v in values])


def flowrun_columns(states: Iterable[FlowRunState]) -> Columns:
    """Columns of ``flowruns``: one row per run, its nodes and logs as JSON lists."""
    return _columns(
        tables.FLOWRUNS,
        [
            (
                s.id,
                s.account,
                s.created_by,
                s.site_id,
                s.flow_id,
                s.title,
                s.end_on_fail,
                s.nodes_json,
                s.edges_json,
                s.time_created,
                _plain(s.nodes),
                s.seq,
                s.status,
                s.attempt,
                s.time_started,
                s.time_completed,
                s.time_updated,
                s.deleted,
                _plain(s.logs),
            )
            for s in states
        ],
    )


def flowrun_from_row(row: Sequence[Any]) -> FlowRunState:
    """A FlowRunState from a ``flowruns`` row (columns in table order, times as ints)."""
    (
        id_,
        account,
        created_by,
        site_id,
        flow_id,
        title,
        end_on_fail,
        flow_nodes,
        edges,
        time_created,
        nodes,
        seq,
        status,
        attempt,
        time_started,
        time_completed,
        time_updated,
        deleted,
        logs,
    ) = row
    return FlowRunState(
        id=id_,
        account=account,
        created_by=created_by,
        site_id=site_id,
        flow_id=flow_id,
        title=title,
        end_on_fail=end_on_fail,
        nodes_json=flow_nodes,
        edges_json=edges,
        time_created=time_created,
        nodes=tuple(snapshot.flownode_from_dict(n) for n in json.loads(nodes)),
        seq=seq,
        status=status,
        attempt=attempt,
        time_started=time_started,
        time_completed=time_completed,
        time_updated=time_updated,
        deleted=deleted,
        logs=tuple(snapshot.flowlog_from_dict(line) for line in json.loads(logs)),
    )


def caserun_columns(states: Iterable[CaseRunState]) -> Columns:
    """Columns of ``caseruns``: one row per run, its steps as a JSON list."""
    return _columns(
        tables.CASERUNS,
        [
            (
                s.id,
                s.account,
                s.created_by,
                s.site_id,
                s.case_id,
                s.title,
                s.steps_json,
                s.time_created,
                _plain(s.steps),
                s.flowrun_id,
                s.node_id,
                s.seq,
                s.status,
                s.time_started,
                s.time_completed,
                s.time_updated,
                s.deleted,
                s.exception,
            )
            for s in states
        ],
    )


def caserun_from_row(row: Sequence[Any]) -> CaseRunState:
    """A CaseRunState from a ``caseruns`` row (columns in table order, times as ints)."""
    fields_ = list(row)
    fields_[8] = tuple(snapshot.casestep_from_dict(s) for s in json.loads(fields_[8]))
    return CaseRunState(*fields_)


def position_columns(topic: str, positions: dict[int, int]) -> Columns:
    return _columns(tables.POSITIONS, [(topic, p, o) for p, o in sorted(positions.items())])


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


def event_from_row(row: Sequence[Any]) -> EventRow:
    """An EventRow from an ``events`` row (columns in table order, times as ints)."""
    return EventRow(*row)


def event_row(event: Event, partition: int, offset: int, status: str | None) -> EventRow:
    """The EventRow the store keeps for ``event`` read at ``partition``/``offset``."""
    e = event
    return EventRow(
        e.aggregate_type,
        e.aggregate_id,
        e.seq,
        e.event_id,
        e.type,
        e.occurred_at,
        e.account,
        e.actor,
        e.command_id,
        e.correlation_id,
        e.causation_id,
        payload_json(e.data),
        partition,
        offset,
        status,
    )


def event_of_row(row: EventRow) -> Event:
    """The domain Event back from its row (to fold it); MalformedMessage for an unknown
    type."""
    record: dict[str, Any] = {name: getattr(row, name) for name in EVENT_ENVELOPE}
    record.update(json.loads(row.data))
    return event_from_record(record)
