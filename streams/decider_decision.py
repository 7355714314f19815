"""One command decided against the decider's in-memory aggregates.

The step of the decider's pipeline between decoding a command and publishing what it
caused: no Kafka here, only the aggregates (updated in place), the counters and the
rejection and acceptance lines. :mod:`streams.decider` assembles the pipeline around it
and builds the outcomes. Lines are logged as ``streams.decider``, as before the split.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streams import serde
from streams.decider_rebuild import Aggregate
from streams.decider_stats import DeciderStats
from streams.domain import aggregates
from streams.domain.commands import Command
from streams.domain.events import Event
from streams.domain.rejection import Rejected

log = logging.getLogger("streams.decider")


@dataclass(frozen=True)
class Accepted:
    aggregate: Aggregate
    events: list[Event]
    key: bytes  # the aggregate's stream key: its events' Kafka key


def decide_command(
    known: dict[str, Aggregate],
    stats: DeciderStats,
    cmd: Command,
    reject: Callable[[Rejected, Any], serde.Outcome],
) -> serde.Outcome | tuple[Command, Aggregate] | Accepted:
    """Decide ``cmd`` against the aggregates ``known`` (by stream key), updating them
    and ``stats``.

    Returns the outcome of a rejection (``reject(rejected, state)``), a (command,
    aggregate) pair for a command already accepted (its outcome is built once its
    positions are known), or the accepted events.
    """
    key = aggregates.stream_key(cmd.aggregate_type, cmd.aggregate_id)
    agg = known.get(key)
    if agg is not None and cmd.command_id in agg.commands:
        stats.duplicates += 1
        return cmd, agg
    try:
        events = aggregates.decide(agg.state if agg is not None else None, cmd)
    except Rejected as rejected:
        stats.rejected += 1
        # Expected (the caller gets the reason): one line, no traceback.
        log.info(
            "rejected %s of %s %s (command %s, actor %s): %s: %s",
            cmd.name,
            cmd.aggregate_type,
            cmd.aggregate_id,
            cmd.command_id,
            cmd.actor,
            rejected.code,
            rejected.message,
        )
        state = agg.state if agg is not None else None
        return reject(rejected, state)
    if agg is None:
        agg = known[key] = Aggregate()
    for event in events:
        agg.state = aggregates.evolve(agg.state, event)
    agg.commands[cmd.command_id] = ()  # positions filled in when Kafka acknowledges
    stats.accepted += 1
    stats.events += len(events)
    if log.isEnabledFor(logging.DEBUG):  # one line per command: -v only
        log.debug(
            "accepted %s of %s %s (command %s): %s",
            cmd.name,
            cmd.aggregate_type,
            cmd.aggregate_id,
            cmd.command_id,
            ", ".join(f"#{e.seq} {e.type}" for e in events),
        )
    return Accepted(agg, events, key.encode())
