"""Events as the ``events`` table keeps them, and back; pure, no I/O.

An event's envelope fields are columns of their own; its payload is one JSON text,
``data``, byte for byte what the events already stored hold (see :func:`payload_json`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any

import orjson

from projections import tables
from projections.columns import Columns, compact_json
from streams.domain.events import PAYLOAD_FIELDS, Event, Payload, StepDefinition
from streams.serde import event_from_record

# The columns of ``events`` that are attributes of Event, in table order.
EVENT_ENVELOPE = tables.EVENTS.names[:11]


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


# -- to the table ----------------------------------------------------------------------


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
                return compact_json(doc)
            try:
                return orjson.dumps(doc).decode()
            except orjson.JSONEncodeError:  # beyond 64-bit integers, lone surrogates
                return compact_json(doc)

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


# -- from the table --------------------------------------------------------------------


def event_from_row(row: Sequence[Any]) -> EventRow:
    """An EventRow from an ``events`` row (columns in table order, times as ints)."""
    return EventRow(*row)


def event_of_row(row: EventRow) -> Event:
    """The domain Event back from its row (to fold it); MalformedMessage for an unknown
    type."""
    record: dict[str, Any] = {name: getattr(row, name) for name in EVENT_ENVELOPE}
    record.update(json.loads(row.data))
    return event_from_record(record)
