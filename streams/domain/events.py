"""Events: the envelope every event carries, and one payload class per event type.

A payload class's fields are exactly the payload fields of its Avro schema
(``schemas/avro/<type>.v<N>.avsc``), so the codec maps one onto the other by name.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from typing import ClassVar

# Fixed namespace: an event's id is uuid5(namespace, "<type>:<aggregate_id>/<seq>"), so
# a re-processed command yields byte-identical events that downstream dedup recognises.
EVENT_NAMESPACE = uuid.UUID("6f1c9d3e-8a52-4bb1-9d7e-2f0c5a1e7b44")


def event_id_for(aggregate_type: str, aggregate_id: str, seq: int) -> str:
    """The deterministic id of event ``seq`` of an aggregate (ids differ across types)."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{aggregate_type}:{aggregate_id}/{seq}"))


@dataclass(frozen=True, slots=True)
class Payload:
    TYPE: ClassVar[str] = ""


@dataclass(frozen=True, slots=True)
class StepDefinition:
    step_id: str
    name: str
    order: int
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class ProcessCreated(Payload):
    TYPE: ClassVar[str] = "process.created"
    process_type: str
    site: str | None = None
    info_json: str = "{}"
    steps: tuple[StepDefinition, ...] = ()


@dataclass(frozen=True, slots=True)
class ProcessStarted(Payload):
    TYPE: ClassVar[str] = "process.started"


@dataclass(frozen=True, slots=True)
class ProgressReported(Payload):
    TYPE: ClassVar[str] = "process.progress"
    progress: float
    message: str | None = None


@dataclass(frozen=True, slots=True)
class StepStarted(Payload):
    TYPE: ClassVar[str] = "process.step_started"
    step_id: str


@dataclass(frozen=True, slots=True)
class StepCompleted(Payload):
    TYPE: ClassVar[str] = "process.step_completed"
    step_id: str
    message: str | None = None


@dataclass(frozen=True, slots=True)
class StepFailed(Payload):
    TYPE: ClassVar[str] = "process.step_failed"
    step_id: str
    exception: str


@dataclass(frozen=True, slots=True)
class LogAppended(Payload):
    TYPE: ClassVar[str] = "process.log"
    message: str
    level: str = "info"


@dataclass(frozen=True, slots=True)
class ReviewRequested(Payload):
    TYPE: ClassVar[str] = "process.waiting_review"
    result_summary_json: str | None = None


@dataclass(frozen=True, slots=True)
class ProcessCompleted(Payload):
    TYPE: ClassVar[str] = "process.completed"
    object_id: str | None = None
    result_summary_json: str | None = None


@dataclass(frozen=True, slots=True)
class ProcessFailed(Payload):
    TYPE: ClassVar[str] = "process.failed"
    exception: str


@dataclass(frozen=True, slots=True)
class ProcessCancelled(Payload):
    TYPE: ClassVar[str] = "process.cancelled"
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ProcessRetried(Payload):
    TYPE: ClassVar[str] = "process.retried"
    attempt: int


@dataclass(frozen=True, slots=True)
class ProcessRestarted(Payload):
    TYPE: ClassVar[str] = "process.restarted"
    step_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class ProcessDeleted(Payload):
    TYPE: ClassVar[str] = "process.deleted"


@dataclass(frozen=True, slots=True)
class TokenCreated(Payload):
    TYPE: ClassVar[str] = "account.token_created"
    token_hash: str
    name: str


@dataclass(frozen=True, slots=True)
class TokenRevoked(Payload):
    TYPE: ClassVar[str] = "account.token_revoked"
    token_hash: str


# -- definitions: Site, Flow, Case. Nested documents travel as canonical JSON text
# (sorted keys), validated by the command before they reach an event.


@dataclass(frozen=True, slots=True)
class SiteCreated(Payload):
    TYPE: ClassVar[str] = "site.created"
    site_url: str


@dataclass(frozen=True, slots=True)
class SiteDeleted(Payload):
    TYPE: ClassVar[str] = "site.deleted"


@dataclass(frozen=True, slots=True)
class FlowCreated(Payload):
    TYPE: ClassVar[str] = "flow.created"
    name: str
    nodes_json: str
    edges_json: str
    configs_json: str = "{}"


@dataclass(frozen=True, slots=True)
class FlowDeleted(Payload):
    TYPE: ClassVar[str] = "flow.deleted"


@dataclass(frozen=True, slots=True)
class CaseCreated(Payload):
    TYPE: ClassVar[str] = "case.created"
    site_id: str
    name: str
    steps_json: str
    case_type: str = "recorded"


@dataclass(frozen=True, slots=True)
class CaseDeleted(Payload):
    TYPE: ClassVar[str] = "case.deleted"


PAYLOAD_TYPES: dict[str, type[Payload]] = {
    cls.TYPE: cls
    for cls in (
        ProcessCreated,
        ProcessStarted,
        ProgressReported,
        StepStarted,
        StepCompleted,
        StepFailed,
        LogAppended,
        ReviewRequested,
        ProcessCompleted,
        ProcessFailed,
        ProcessCancelled,
        ProcessRetried,
        ProcessRestarted,
        ProcessDeleted,
        TokenCreated,
        TokenRevoked,
        SiteCreated,
        SiteDeleted,
        FlowCreated,
        FlowDeleted,
        CaseCreated,
        CaseDeleted,
    )
}

PAYLOAD_FIELDS: dict[str, tuple[str, ...]] = {
    name: tuple(f.name for f in fields(cls)) for name, cls in PAYLOAD_TYPES.items()
}


def register(*classes: type[Payload]) -> None:
    """Add payload types defined beside their aggregate (FlowRun, CaseRun), which build
    on this module and so cannot be listed above; ``streams.domain`` registers them on
    import. ValueError when a type name is already taken by another class."""
    for cls in classes:
        if PAYLOAD_TYPES.get(cls.TYPE, cls) is not cls:
            raise ValueError(f"event type {cls.TYPE} is registered twice")
        PAYLOAD_TYPES[cls.TYPE] = cls
        PAYLOAD_FIELDS[cls.TYPE] = tuple(f.name for f in fields(cls))


ENVELOPE_FIELDS: tuple[str, ...] = (
    "event_id",
    "aggregate_type",
    "aggregate_id",
    "seq",
    "type",
    "occurred_at",
    "account",
    "actor",
    "command_id",
    "correlation_id",
    "causation_id",
)


@dataclass(frozen=True, slots=True)
class Event:
    """One fact in the ledger. ``occurred_at`` is microseconds since the epoch, UTC."""

    event_id: str
    aggregate_type: str
    aggregate_id: str
    seq: int
    type: str
    occurred_at: int
    account: str
    actor: str
    command_id: str
    correlation_id: str
    causation_id: str
    data: Payload
