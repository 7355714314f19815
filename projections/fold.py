"""The projector's transform: raw Kafka messages in, a Batch of rows to write out.

Pure but for one injected call: states missing from the caller's cache are asked of
``load`` once per batch. Decoding uses the same serde as every other consumer, and
folding uses the same ``evolve`` as the decider, so the read model is the decider's
state by construction.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from schemas import Codec, DecodeError, UnknownSchemaError, default_codec
from streams.domain.account import AccountState
from streams.domain.aggregates import evolve
from streams.domain.case import CaseState
from streams.domain.caserun import CaseRunState
from streams.domain.events import Event
from streams.domain.flow import FlowState
from streams.domain.flowrun import FlowRunState
from streams.domain.process import ProcessState, StepState
from streams.domain.site import SiteState
from streams.serde import decode_event

T = TypeVar("T")
StreamId = tuple[str, str]  # (aggregate_type, aggregate_id)
State = (
    ProcessState | AccountState | SiteState | FlowState | CaseState | FlowRunState | CaseRunState
)
Loader = Callable[[Collection[StreamId]], Mapping[StreamId, State]]

_UNSEEN: Any = object()

# Reasons a message goes to the dead-letter topic (the ``reason`` header).
UNDECODABLE = "undecodable"
# Framed right, but no schema of this node's ``schemas/`` has the writer's fingerprint:
# the node is older than the writer (see "Dead letters" in docs/operations.md).
UNKNOWN_FINGERPRINT = "unknown_fingerprint"
SEQUENCE_GAP = "sequence_gap"
REJECTED = "rejected"


class Message(Protocol):
    """What the fold reads of a consumed record (aiokafka's ConsumerRecord fits)."""

    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class RawMessage:
    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message the projector skips: ``reason`` is one of the constants above."""

    message: RawMessage
    reason: str
    error: str


@dataclass(frozen=True, slots=True)
class Batch:
    """Everything one consumed batch changes, to be written in one transaction.

    ``events[i]`` was read at ``partitions[i]``/``offsets[i]``; ``states`` are the final
    states of the aggregates the batch changed; ``steps`` are the (process id, step)
    rows that changed, and ``steps_replaced`` the Processes that lost a step, whose
    stored steps go before ``steps`` are written; ``positions`` are the next offsets
    to read per partition of ``topic`` (past duplicates and dead letters too).
    """

    topic: str
    events: tuple[Event, ...] = ()
    partitions: tuple[int, ...] = ()
    offsets: tuple[int, ...] = ()
    statuses: tuple[str | None, ...] = ()
    # ``after[i]`` is the aggregate's state right after ``events[i]`` (for live streams).
    after: tuple[State, ...] = ()
    states: Mapping[StreamId, State] = field(default_factory=dict)
    steps: tuple[tuple[str, StepState], ...] = ()
    steps_replaced: frozenset[str] = frozenset()
    positions: Mapping[int, int] = field(default_factory=dict)
    dead_letters: tuple[DeadLetter, ...] = ()
    duplicates: int = 0
    loaded: Mapping[StreamId, State] = field(default_factory=dict)
    # ``data[i]`` is ``rows.payload_json(events[i].data)`` when the caller made it
    # already; empty (what ``fold_batch`` gives): the row builder makes it.
    data: tuple[str, ...] = ()

    @property
    def processes(self) -> list[ProcessState]:
        return [s for s in self.states.values() if isinstance(s, ProcessState)]

    @property
    def accounts(self) -> list[AccountState]:
        return [s for s in self.states.values() if isinstance(s, AccountState)]

    def of_type(self, cls: type[T]) -> list[T]:
        """The changed states of one type (SiteState, FlowRunState, ...)."""
        return [s for s in self.states.values() if isinstance(s, cls)]


def _dead(msg: Message, reason: str, error: str) -> DeadLetter:
    return DeadLetter(RawMessage(msg.partition, msg.offset, msg.value, msg.key), reason, error)


def _changed_steps(
    state: ProcessState, old: tuple[StepState, ...], replaced: set[str]
) -> list[tuple[str, StepState]]:
    """The steps of ``state`` that differ from ``old``; all of them if one went away.

    ``evolve`` keeps an unchanged step as the same object, so identity tells change
    (at worst an equal new object is written again).
    """
    new = state.steps
    kept = len(old)
    if len(new) < kept or any(a.step_id != b.step_id for a, b in zip(old, new[:kept], strict=True)):
        replaced.add(state.id)
        return [(state.id, step) for step in new]
    return [(state.id, step) for i, step in enumerate(new) if i >= kept or step is not old[i]]


def decode_all(
    codec: Codec, messages: Sequence[Message]
) -> tuple[list[Message], list[Event], list[DeadLetter], dict[int, int]]:
    """The decodable messages and their events (same index), the undecodable ones as
    dead letters, and the next offset per partition."""
    kept: list[Message] = []
    events: list[Event] = []
    dead: list[DeadLetter] = []
    positions: dict[int, int] = {}
    for msg in messages:
        partition, offset = msg.partition, msg.offset
        if positions.get(partition, -1) <= offset:
            positions[partition] = offset + 1
        value = msg.value
        if value is None:
            dead.append(_dead(msg, UNDECODABLE, "the message has no value"))
            continue
        try:
            events.append(decode_event(codec, value))
        except UnknownSchemaError as exc:
            dead.append(_dead(msg, UNKNOWN_FINGERPRINT, str(exc)))
            continue
        except (DecodeError, KeyError, TypeError, ValueError) as exc:
            dead.append(_dead(msg, UNDECODABLE, str(exc) or type(exc).__name__))
            continue
        kept.append(msg)
    return kept, events, dead, positions


def fold_batch(
    states: Mapping[StreamId, State],
    messages: Sequence[Message],
    *,
    topic: str = "",
    load: Loader | None = None,
    codec: Codec | None = None,
) -> Batch:
    """Decode ``messages`` (in offset order per partition) and fold them onto ``states``.

    ``states`` (the caller's cache of committed states) is not modified; states it
    lacks are asked of ``load`` in one call (None for a new aggregate). An event whose
    seq the aggregate already has is dropped as a duplicate; an undecodable message,
    an event that leaves a seq gap and one that ``evolve`` refuses become dead letters
    and the batch goes on. ``load`` may raise (the store's errors pass through).
    """
    kept, decoded, dead, positions = decode_all(codec or default_codec(), messages)

    loaded: Mapping[StreamId, State] = {}
    if load is not None and decoded:
        wanted = {(ev.aggregate_type, ev.aggregate_id) for ev in decoded}
        missing = [key for key in wanted if key not in states]
        if missing:
            loaded = load(missing)

    current: dict[StreamId, State | None] = {}
    before: dict[StreamId, State | None] = {}
    events: list[Event] = []
    partitions: list[int] = []
    offsets: list[int] = []
    statuses: list[str | None] = []
    after: list[State] = []
    duplicates = 0
    for msg, ev in zip(kept, decoded, strict=True):
        key = (ev.aggregate_type, ev.aggregate_id)
        state = current.get(key, _UNSEEN)
        if state is _UNSEEN:
            state = states.get(key) or loaded.get(key)
            current[key] = before[key] = state
        seq = 0 if state is None else state.seq
        if ev.seq != seq + 1:
            if ev.seq <= seq:
                duplicates += 1
            else:
                error = f"{key[0]} {key[1]} is at seq {seq}; seq {ev.seq} leaves a gap"
                dead.append(_dead(msg, SEQUENCE_GAP, error))
            continue
        try:
            new = evolve(state, ev)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            error = f"{ev.type} seq {ev.seq}: {type(exc).__name__}: {exc}"
            dead.append(_dead(msg, REJECTED, error))
            continue
        current[key] = new
        events.append(ev)
        partitions.append(msg.partition)
        offsets.append(msg.offset)
        statuses.append(getattr(new, "status", None))
        after.append(new)

    changed: dict[StreamId, State] = {}
    steps: list[tuple[str, StepState]] = []
    replaced: set[str] = set()
    for key, state in current.items():
        old = before[key]
        if state is None or state is old:
            continue
        changed[key] = state
        if isinstance(state, ProcessState):
            old_steps = old.steps if isinstance(old, ProcessState) else ()
            if state.steps is not old_steps:
                steps.extend(_changed_steps(state, old_steps, replaced))

    dead.sort(key=lambda d: (d.message.partition, d.message.offset))
    return Batch(
        topic=topic,
        events=tuple(events),
        partitions=tuple(partitions),
        offsets=tuple(offsets),
        statuses=tuple(statuses),
        after=tuple(after),
        states=changed,
        steps=tuple(steps),
        steps_replaced=frozenset(replaced),
        positions=positions,
        dead_letters=tuple(dead),
        duplicates=duplicates,
        loaded=loaded,
    )
