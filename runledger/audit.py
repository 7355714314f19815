"""``runledger audit`` and ``runledger as-of``: one aggregate's history, read from the log.

An aggregate's commands, events and outcomes share the key ``stream_key(type, id)``
and so one partition number; only that partition of ``ledger.events`` and
``ledger.outcomes`` is read. The pure part (:func:`history`, :func:`state_as_of`) takes
decoded values; :func:`load` does the reading.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas import Codec, DecodeError
from streams.consumer import event_document, partition_for, read_to_end
from streams.domain import history as history_fold
from streams.domain.aggregates import EVOLVERS, stream_key
from streams.domain.events import Event
from streams.domain.history import NotYetCreated, unique_events
from streams.progress import Progress
from streams.serde import Outcome, decode_event, decode_outcome
from streams.topics import Topics, require_topics


class AuditError(Exception):
    """Nothing to show: the message says why (unknown id, time before the aggregate)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One command and what came of it; ``outcome`` is None for events whose outcome
    was not found (the events are still the truth)."""

    at: int  # microseconds, UTC
    command_id: str
    command: str
    actor: str
    account: str
    outcome: Outcome | None
    events: tuple[Event, ...] = ()

    @property
    def result(self) -> str:
        if self.outcome is None:
            return "applied"
        if not self.outcome.accepted:
            return "rejected"
        return "duplicate" if self.outcome.duplicate else "accepted"

    @property
    def reason(self) -> str | None:
        o = self.outcome
        if o is None or o.accepted:
            return None
        where = f" ({o.field})" if o.field else ""
        return f"{o.reason_code}: {o.reason}{where}"


@dataclass(frozen=True, slots=True)
class History:
    aggregate_type: str
    aggregate_id: str
    entries: tuple[Entry, ...]
    events: tuple[Event, ...] = field(default=())


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso(micros: int) -> str:
    """``2026-01-02T03:04:05.678901Z`` of microseconds since the epoch: in whole numbers
    (a float of seconds loses the last microsecond far from 1970) and with a four-digit
    year (``%Y`` writes year 1 as ``1``)."""
    at = _EPOCH + timedelta(microseconds=micros)
    return at.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_time(text: str) -> int:
    """Microseconds of an ISO 8601 time (``Z`` or an offset; none means UTC; RFC 3339's
    lower-case ``t`` and ``z`` too).

    ValueError with a readable message for anything else, also for a time that is not
    in the years 1 to 9999 once in UTC (it could not be printed back).
    """
    try:
        parsed = datetime.fromisoformat(text.strip().upper())
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an ISO 8601 time (e.g. 2026-03-01T12:00:00Z)") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        parsed.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError(f"{text!r} is outside the years 1 to 9999 in UTC") from exc
    delta = parsed - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def history(
    aggregate_type: str, aggregate_id: str, events: Sequence[Event], outcomes: Sequence[Outcome]
) -> History:
    """One entry per command (in decision order), with its events and rejection reason."""
    events = unique_events(events)
    by_command: dict[str, list[Event]] = {}
    for ev in events:
        by_command.setdefault(ev.command_id, []).append(ev)
    entries: list[Entry] = []
    shown: set[str] = set()
    for o in outcomes:
        # Only an accepted first decision produced events: a rejection did not, though
        # the same command_id may be accepted later (rejections are not remembered).
        decided_first = o.accepted and not o.duplicate
        produced = tuple(by_command.get(o.command_id, ())) if decided_first else ()
        if produced:
            shown.add(o.command_id)
        entries.append(
            Entry(o.decided_at, o.command_id, o.command, o.actor, o.account, o, produced)
        )
    for command_id, evs in by_command.items():
        if command_id not in shown:
            first = evs[0]
            entries.append(
                Entry(
                    first.occurred_at, command_id, "?", first.actor, first.account, None, tuple(evs)
                )
            )
    entries.sort(key=lambda e: e.at)  # stable: outcomes keep their log order
    return History(aggregate_type, aggregate_id, tuple(entries), tuple(events))


def state_as_of(events: Sequence[Event], at: int) -> Any:
    """The state after every event with ``occurred_at <= at``, folded with ``evolve``.

    AuditError when ``at`` is before the first event (the aggregate did not exist).
    """
    try:
        return history_fold.state_as_of(events, at)
    except NotYetCreated as exc:
        ordered = unique_events(events)
        if not ordered:
            raise AuditError("no events") from exc
        first = ordered[0]
        raise AuditError(
            f"{first.aggregate_type} {first.aggregate_id} did not exist at {iso(at)}: "
            f"it was created at {iso(first.occurred_at)}"
        ) from exc


# -- reading the log --------------------------------------------------------------------


async def _matching(
    bootstrap: str,
    topic: str,
    partitions: set[int],
    keys: set[bytes],
    progress: Progress | None = None,
    shift: int = 0,
    tick: Callable[[], None] = lambda: None,
) -> list[tuple[bytes, bytes]]:
    """The (key, value) of every record of ``partitions`` whose key is one of ``keys``.

    ``progress`` counts every record read, under partition number + ``shift`` (so one
    Progress covers two topics read at once); ``tick`` is called after each batch."""

    def on_ends(origin: dict[int, int], ends: dict[int, int]) -> None:
        if progress is not None:
            progress.add_range(
                {p + shift: o for p, o in origin.items()}, {p + shift: e for p, e in ends.items()}
            )

    found: list[tuple[bytes, bytes]] = []
    async for batch in read_to_end(
        bootstrap, topic, partitions=partitions, client_id="runledger-audit", on_ends=on_ends
    ):
        for r in batch:
            if r.key in keys and r.value is not None:
                found.append((r.key, r.value))
        if progress is not None:
            progress.events += len(batch)
            progress.reach({r.partition + shift: r.offset + 1 for r in batch})
        tick()
    return found


async def load(
    bootstrap: str,
    topics: Topics,
    codec: Codec,
    aggregate_id: str,
    types: Sequence[str] | None = None,
    partitions: int | None = None,
    on_progress: Callable[[Progress, bool], None] | None = None,
) -> History:
    """The history of ``aggregate_id`` under the first of ``types`` (default: every
    aggregate type, process first) that has anything in the log.

    The events' and the outcomes' partitions are read at the same time;
    ``on_progress(progress, final)`` is told of the records read of both after each
    batch and once at the end (for a progress line: without ``types`` most of the log
    is read, since each type's key may fall in another partition).
    AuditError when none has; TopicError at once when the ledger's topics do not exist;
    ConsumerError when the broker cannot be read.
    """
    candidates = list(types or EVOLVERS)
    found = await require_topics(bootstrap, [topics.events, topics.outcomes])
    if partitions is None:
        partitions = len(found[topics.events])
    keys = {stream_key(t, aggregate_id).encode(): t for t in candidates}
    wanted = {partition_for(k, partitions) for k in keys}
    progress = Progress()

    def tick() -> None:
        if on_progress is not None:
            on_progress(progress, False)

    raw_events, raw_outcomes = await asyncio.gather(
        _matching(bootstrap, topics.events, wanted, set(keys), progress, 0, tick),
        # Both topics have ``partitions`` partitions (one key, one partition number).
        _matching(bootstrap, topics.outcomes, wanted, set(keys), progress, partitions, tick),
    )
    progress.reached = dict(progress.ends)  # the last offsets may be transaction markers
    if on_progress is not None:
        on_progress(progress, True)
    for key, kind in keys.items():
        events = [_decoded(decode_event, codec, v) for k, v in raw_events if k == key]
        outcomes = [_decoded(decode_outcome, codec, v) for k, v in raw_outcomes if k == key]
        evs = [e for e in events if isinstance(e, Event)]
        outs = [o for o in outcomes if isinstance(o, Outcome)]
        if evs or outs:
            return history(kind, aggregate_id, evs, outs)
    tried = ", ".join(candidates)
    raise AuditError(f"no {tried} with id {aggregate_id!r} in {topics.events}")


def _decoded(fn: Any, codec: Codec, value: bytes) -> Any:
    try:
        return fn(codec, value)
    except (DecodeError, KeyError, TypeError, ValueError):
        return None  # the projector dead-letters such a message; audit skips it too


# -- rendering ----------------------------------------------------------------------------


def entry_document(entry: Entry) -> dict[str, Any]:
    o = entry.outcome
    return {
        "at": iso(entry.at),
        "command_id": entry.command_id,
        "command": entry.command,
        "actor": entry.actor,
        "account": entry.account,
        "result": entry.result,
        "reason_code": o.reason_code if o is not None else None,
        "reason": o.reason if o is not None else None,
        "field": o.field if o is not None else None,
        "events": [event_document(ev) for ev in entry.events],
    }


def render_table(h: History) -> str:
    """An aligned table: one line per command, continuation lines for further events."""
    header = (
        "WHEN (UTC)",
        "ACTOR",
        "ACCOUNT",
        "COMMAND",
        "COMMAND ID",
        "RESULT",
        "EVENTS / REASON",
    )
    lines: list[tuple[str, ...]] = [header]
    for e in h.entries:
        details = [f"#{ev.seq} {ev.type}" for ev in e.events] or [e.reason or ""]
        first = (iso(e.at)[:-4] + "Z", e.actor, e.account, e.command, e.command_id, e.result)
        lines.append((*first, details[0]))
        lines.extend(("",) * 6 + (d,) for d in details[1:])
    widths = [max(len(row[i]) for row in lines) for i in range(len(header) - 1)]
    counts = f"{counted(len(h.entries), 'command')}, {counted(len(h.events), 'event')}"
    out = [f"{h.aggregate_type} {h.aggregate_id}: {counts}"]
    for row in lines:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=False)]
        out.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(out)


def counted(n: int, noun: str) -> str:
    """``1 command``, ``2 commands``, ``0 commands``: the nouns here take an s."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def state_document(state: Any, at: int) -> dict[str, Any]:
    doc = asdict(state)
    doc["as_of"] = iso(at)
    return doc


def render_state(doc: dict[str, Any]) -> str:
    width = max(len(k) for k in doc)
    lines = []
    for k, v in doc.items():
        text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
        if isinstance(v, int) and not isinstance(v, bool) and k.startswith("time") and v:
            text = f"{v}  ({iso(v)})"
        lines.append(f"{k.ljust(width)}  {text}")
    return "\n".join(lines)
