"""Events, commands and outcomes to and from Avro records (via ``schemas.Codec``).

The only place that knows both the domain types and the wire format.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from schemas import Codec, DecodeError
from streams.domain import events as e
from streams.domain.commands import Command, InvalidCommand, body_to_payload, parse_body

COMMAND_SCHEMA = "command"
OUTCOME_SCHEMA = "outcome"


class MalformedMessage(DecodeError):
    """Bytes that decode as Avro but do not make a valid event or command: dead-letter."""


@dataclass(frozen=True, slots=True)
class CommandEnvelope:
    """Everything of a command record but its body: who sent what to which aggregate,
    and where the answer goes."""

    command_id: str
    aggregate_type: str
    aggregate_id: str
    name: str
    issued_at: int
    account: str
    actor: str
    correlation_id: str
    causation_id: str
    reply_to: str | None


class UnusableBody(MalformedMessage):
    """A command record whose envelope decodes but whose ``payload_json`` does not make
    the body of its command: dead-letter it, and reject the command by its ``envelope``
    (the sender may be waiting). ``field`` names what is unusable (``payload_json`` when
    the text is not a JSON object); ``reason`` is a sentence for the sender, the
    message (the dead letter's reason) is the one operators have always seen."""

    def __init__(
        self, envelope: CommandEnvelope, field: str | None, reason: str, cause: Exception
    ) -> None:
        super().__init__(f"command {envelope.command_id}: {cause}")
        self.envelope = envelope
        self.field = field
        self.reason = reason


# -- events ---------------------------------------------------------------------------


def event_to_record(event: e.Event) -> dict[str, Any]:
    record = {name: getattr(event, name) for name in e.ENVELOPE_FIELDS}
    data = event.data
    for name in e.PAYLOAD_FIELDS[event.type]:
        value = getattr(data, name)
        if name == "steps":
            value = [
                {"step_id": s.step_id, "name": s.name, "order": s.order, "enabled": s.enabled}
                for s in value
            ]
        record[name] = value
    return record


def event_from_record(record: dict[str, Any]) -> e.Event:
    """The Event of a decoded record; MalformedMessage for an unknown event type.

    A missing field raises KeyError. The projector calls this once per event, so each
    type's payload is built by a function made once (``_payload_builder``).
    """
    kind = record["type"]
    build = _BUILDERS.get(kind) or _payload_builder(kind)
    return e.Event(*_ENVELOPE(record), build(record))  # type: ignore[call-arg]  # by position


# The envelope's values in the order of Event's fields (``ENVELOPE_FIELDS`` is that order).
_ENVELOPE: Callable[[dict[str, Any]], tuple[Any, ...]] = itemgetter(*e.ENVELOPE_FIELDS)
_BUILDERS: dict[str, Callable[[dict[str, Any]], e.Payload]] = {}


def _payload_builder(kind: str) -> Callable[[dict[str, Any]], e.Payload]:
    """The function that makes ``kind``'s payload from a record; cached per type.

    Unknown types are not cached, so a type registered later is found then.
    """
    cls = e.PAYLOAD_TYPES.get(kind)
    if cls is None:
        raise MalformedMessage(f"unknown event type {kind!r}")
    names = e.PAYLOAD_FIELDS[kind]
    build: Callable[[dict[str, Any]], e.Payload]
    if not names:
        empty = cls()  # frozen and field-less: one instance serves every event
        build = lambda record: empty  # noqa: E731
    elif "steps" in names:

        def build(record: dict[str, Any]) -> e.Payload:
            values = {n: record[n] for n in names}
            values["steps"] = tuple(e.StepDefinition(**s) for s in values["steps"])
            return cls(**values)

    elif len(names) == 1:
        (name,) = names
        build = lambda record: cls(record[name])  # type: ignore[call-arg]  # noqa: E731
    else:
        values_of: Callable[[dict[str, Any]], tuple[Any, ...]] = itemgetter(*names)
        build = lambda record: cls(*values_of(record))  # noqa: E731
    _BUILDERS[kind] = build
    return build


def encode_event(codec: Codec, event: e.Event) -> bytes:
    return codec.encode(event.type, event_to_record(event))


def decode_event(codec: Codec, data: bytes) -> e.Event:
    """Raises DecodeError (or its subclasses) for anything that is not a valid event."""
    name, record = codec.decode(data)
    if name != record.get("type"):
        raise MalformedMessage(f"schema {name} carries an event typed {record.get('type')!r}")
    return event_from_record(record)


# -- commands -------------------------------------------------------------------------


def encode_command(codec: Codec, cmd: Command) -> bytes:
    payload = json.dumps(body_to_payload(cmd.body), separators=(",", ":"))
    record = {
        "command_id": cmd.command_id,
        "aggregate_type": cmd.aggregate_type,
        "aggregate_id": cmd.aggregate_id,
        "name": cmd.name,
        "issued_at": cmd.issued_at,
        "account": cmd.account,
        "actor": cmd.actor,
        "correlation_id": cmd.correlation_id,
        "causation_id": cmd.causation_id,
        "payload_json": payload,
        "reply_to": cmd.reply_to,
    }
    return codec.encode(COMMAND_SCHEMA, record)


def decode_command(codec: Codec, data: bytes) -> Command:
    """Raises DecodeError for bytes that are not a valid command (with the reason):
    UnusableBody when only the record's ``payload_json`` is at fault."""
    name, r = codec.decode(data)
    if name != COMMAND_SCHEMA:
        raise MalformedMessage(f"expected a command, got a {name} record")
    try:
        payload = json.loads(r["payload_json"])
    except (ValueError, RecursionError) as exc:  # not JSON, or nested too deep to parse
        reason = f"payload_json is not JSON: {exc}"
        raise UnusableBody(_envelope(r), "payload_json", reason, exc) from exc
    try:
        if not isinstance(payload, dict):
            raise InvalidCommand("payload_json", "payload_json must hold a JSON object")
        body = parse_body(r["name"], payload)
    except InvalidCommand as exc:
        raise UnusableBody(_envelope(r), exc.field, exc.message, exc) from exc
    except (ValueError, RecursionError) as exc:  # InvalidCommand is a ValueError
        reason = f"payload_json is unusable: {exc}"
        raise UnusableBody(_envelope(r), "payload_json", reason, exc) from exc
    return Command(
        command_id=r["command_id"],
        aggregate_type=r["aggregate_type"],
        aggregate_id=r["aggregate_id"],
        issued_at=r["issued_at"],
        account=r["account"],
        actor=r["actor"],
        correlation_id=r["correlation_id"],
        causation_id=r["causation_id"],
        body=body,
        reply_to=r["reply_to"],
    )


def _envelope(r: dict[str, Any]) -> CommandEnvelope:
    return CommandEnvelope(
        command_id=r["command_id"],
        aggregate_type=r["aggregate_type"],
        aggregate_id=r["aggregate_id"],
        name=r["name"],
        issued_at=r["issued_at"],
        account=r["account"],
        actor=r["actor"],
        correlation_id=r["correlation_id"],
        causation_id=r["causation_id"],
        reply_to=r["reply_to"],
    )


# -- outcomes -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventPosition:
    seq: int
    type: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the decider did with one command: accepted (with its events) or rejected."""

    command_id: str
    aggregate_type: str
    aggregate_id: str
    command: str
    decided_at: int
    account: str
    actor: str
    accepted: bool
    duplicate: bool = False
    reason_code: str | None = None
    reason: str | None = None
    field: str | None = None
    events: tuple[EventPosition, ...] = ()
    state_json: str | None = None
    reply_to: str | None = None

    @property
    def position(self) -> tuple[int, int] | None:
        """(partition, offset) of the last event, or None when there is none."""
        if not self.events:
            return None
        last = self.events[-1]
        return last.partition, last.offset


def encode_outcome(codec: Codec, outcome: Outcome) -> bytes:
    record: dict[str, Any] = {
        name: getattr(outcome, name) for name in Outcome.__dataclass_fields__ if name != "events"
    }
    record["events"] = [
        {"seq": p.seq, "type": p.type, "partition": p.partition, "offset": p.offset}
        for p in outcome.events
    ]
    return codec.encode(OUTCOME_SCHEMA, record)


def decode_outcome(codec: Codec, data: bytes) -> Outcome:
    name, r = codec.decode(data)
    if name != OUTCOME_SCHEMA:
        raise MalformedMessage(f"expected an outcome, got a {name} record")
    r["events"] = tuple(EventPosition(**p) for p in r["events"])
    return Outcome(**r)
