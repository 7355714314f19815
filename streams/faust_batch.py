"""The faust decider's agent work: :class:`BatchDecider` decides one batch of command
messages against the Table and sends events, changelog writes and outcomes.

Per batch taken from the stream:

    decode → state from the Table → decide (pure) → send events → await their
    positions → write the changelog and the Table → send outcomes → await them all

and only then does faust ack the batch's commands (:mod:`streams.faust_decider`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from schemas import Codec, DecodeError
from streams import serde
from streams.bus import outcome_headers
from streams.dead_letter_headers import command_letter_headers
from streams.decider_stats import DeciderStats
from streams.domain import aggregates
from streams.domain.commands import Command
from streams.domain.events import Event
from streams.domain.rejection import Rejected
from streams.faust_table import TableAggregate
from streams.outcome import build_outcome, state_to_json, unusable_body_outcome
from streams.topics import Topics

log = logging.getLogger("streams.faust_decider")  # the name it logged under before


class BatchDecider:
    """Decides one batch of command messages against the Table and sends the results."""

    def __init__(
        self,
        topics: Topics,
        codec: Codec,
        table: Any,
        events: Any,
        outcomes: Any,
        dlq: Any,
        *,
        clock: Callable[[], int],
        stats: DeciderStats,
    ) -> None:
        self.topics = topics
        self.codec = codec
        self.table = table
        self.events = events
        self.outcomes = outcomes
        self.dlq = dlq
        self.clock = clock
        self.stats = stats

    async def __call__(self, batch: Sequence[Any]) -> None:
        """Decide ``batch`` (faust events of command messages); returns once everything
        it wrote is acknowledged, so faust acks (and commits) the commands only then."""
        touched: dict[bytes, TableAggregate] = {}
        accepted: list[tuple[Command, TableAggregate, list[Event], list[Any], Any]] = []
        # Outcomes in command order, as the aiokafka decider sends them: an accepted
        # command is its index in ``accepted``, a duplicate a (command, aggregate, state)
        # triple, both resolved once the events' positions are known. Each carries the
        # state when its command was decided, not the state after the whole batch.
        ready: list[serde.Outcome | tuple[Command, TableAggregate, Any] | int] = []
        pending: list[Any] = []
        for message_event in batch:
            msg = message_event.message
            try:
                cmd = serde.decode_command(self.codec, msg.value)
            except serde.UnusableBody as exc:  # its sender may be waiting: reject it too
                pending.append(await self._dead_letter(msg, exc))
                ready.append(unusable_body_outcome(exc, self.clock()))
                continue
            except DecodeError as exc:
                pending.append(await self._dead_letter(msg, exc))
                continue
            self.stats.commands += 1
            key = aggregates.stream_key(cmd.aggregate_type, cmd.aggregate_id).encode()
            agg = touched.get(key)
            if agg is None:
                agg = self.table.get(key)
            if agg is not None and cmd.command_id in agg.commands:
                self.stats.duplicates += 1
                ready.append((cmd, agg, agg.state))
                continue
            state = agg.state if agg is not None else None
            try:
                events = aggregates.decide(state, cmd)
                after = state
                for event in events:
                    after = aggregates.evolve(after, event)
                values = [serde.encode_event(self.codec, event) for event in events]
            except Rejected as rejected:
                self.stats.rejected += 1
                ready.append(self._outcome(cmd, False, rejected=rejected, state=state))
                continue
            except Exception as exc:  # a bug in deciding this command, not a verdict
                # Faust acks a batch even when its processing raised (take_events acks
                # in a finally), so raising would drop these commands without a trace.
                pending.append(await self._dead_letter(msg, exc))
                continue
            changed = touched.get(key)
            if changed is None:  # copied once per batch: the Table's value stays as written
                commands = dict(agg.commands) if agg is not None else {}
                changed = touched[key] = TableAggregate(state, commands, cmd.aggregate_type)
            changed.state = after
            changed.commands[cmd.command_id] = ()  # positions filled in once acknowledged
            self.stats.accepted += 1
            self.stats.events += len(events)
            futures = []
            for event, value in zip(events, values, strict=True):
                headers = [("type", event.type.encode())]
                futures.append(await self.events.send(key=msg.key, value=value, headers=headers))
            ready.append(len(accepted))
            accepted.append((cmd, changed, events, futures, after))
        metas = await asyncio.gather(*(f for *_, futures, _ in accepted for f in futures))
        start = 0
        decided: list[serde.Outcome] = []
        for cmd, agg, events, _, after in accepted:
            landed = metas[start : start + len(events)]
            start += len(events)
            positions = tuple(
                serde.EventPosition(ev.seq, ev.type, m.partition, m.offset)
                for ev, m in zip(events, landed, strict=True)
            )
            agg.commands[cmd.command_id] = positions
            decided.append(self._outcome(cmd, True, events=positions, state=after))
        # The Table is written once the events it remembers are acknowledged: a crash
        # then repeats a command (same seq, same event ids) rather than remembering a
        # command whose events were lost.
        for key, agg in touched.items():
            pending.append(await self._write_state(key, agg))
        for item in ready:
            if isinstance(item, int):
                item = decided[item]
            elif isinstance(item, tuple):
                cmd, agg, state = item
                positions = agg.commands[cmd.command_id]
                item = self._outcome(cmd, True, duplicate=True, events=positions, state=state)
            pending.append(await self._publish_outcome(item))
        await asyncio.gather(*pending)
        self.stats.batch_committed(self.clock())

    async def _write_state(self, key: bytes, agg: TableAggregate) -> Any:
        """Set ``table[key]``, sending the changelog write now rather than through faust's
        background buffer (``table[key] = agg``): under exactly_once a buffered write
        can miss the transaction that commits its command, and a crash in between would
        bring the aggregate back without it. Returns the write's future."""
        table = self.table
        # No partition given: the producer's partitioner hashes the key, which is the
        # command's key, so the state lands on the command's partition number.
        future = await table.changelog_topic.send(key=key, value=agg)
        table.data[key] = agg
        return future

    def _outcome(
        self,
        cmd: Command,
        accepted: bool,
        *,
        duplicate: bool = False,
        events: tuple[serde.EventPosition, ...] = (),
        rejected: Rejected | None = None,
        state: Any = None,
    ) -> serde.Outcome:
        return build_outcome(
            cmd,
            accepted,
            self.clock(),
            duplicate=duplicate,
            events=events,
            rejected=rejected,
            # Byte for byte asdict's JSON, as before, built without its deep copy.
            state_json=state_to_json(state) if cmd.reply_to else None,
        )

    async def _publish_outcome(self, outcome: serde.Outcome) -> Any:
        key = aggregates.stream_key(outcome.aggregate_type, outcome.aggregate_id).encode()
        headers = outcome_headers(outcome.reply_to, outcome.command_id)
        value = serde.encode_outcome(self.codec, outcome)
        return await self.outcomes.send(key=key, value=value, headers=headers)

    async def _dead_letter(self, msg: Any, exc: Exception) -> Any:
        self.stats.dead_letter(exc)
        log.warning("command at %s offset %d dead-lettered: %s", msg.tp, msg.offset, exc)
        headers = command_letter_headers(exc, msg.topic, msg.partition, msg.offset)
        return await self.dlq.send(key=msg.key, value=msg.value or b"", headers=headers)
