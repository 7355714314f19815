"""The decider as a faust-streaming app: an agent on ``ledger.commands``, state in a Table.

The measured alternative to :mod:`streams.decider`, which is the decider a deployment
runs (``docs/decider.md`` has the figures and the reasons). Same contract: the same
pure ``decide``/``evolve``, the same Avro bytes for events and outcomes, idempotency by
``command_id``. The aggregate state lives in a faust Table keyed by the stream key;
its compacted changelog (JSON, :class:`AggregateCodec`) replaces the rebuild from
``ledger.events``.

Per batch taken from the stream:

    decode → state from the Table → decide (pure) → send events → await their
    positions → write the changelog and the Table → send outcomes → await them all

and only then does faust ack the batch's commands.

Under ``exactly_once`` faust keeps one transactional producer per partition
(``{app id}-{group}-{partition}``) and, every ``broker_commit_interval``, commits each
one's transaction with the acked command offsets. Faust 0.15.3 needs three things for
the decider's writes to be in those transactions: the app must think it runs in a
worker (:class:`FaustDecider` sets ``in_worker``); the target topic must be one the
app reads (faust-streaming/faust#177), so an agent reads and drops ``ledger.events``,
``ledger.outcomes`` and ``ledger.dlq``, which puts them in the commands' partition
group; and Table writes must not wait in faust's send buffer (:meth:`BatchDecider.
_write_state`). The timer does not wait for a batch to finish: a transaction may hold
the events of commands it does not commit yet. After a crash those commands are
decided again and their events written again, with the same seq and event ids, which
downstream drops as duplicates; nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer
from faust.serializers.codecs import Codec as FaustCodec

from schemas import Codec, DecodeError, default_codec
from streams import serde
from streams.decider import Aggregate, DeciderStats, now_micros
from streams.domain import account, aggregates, process
from streams.domain.commands import Command
from streams.domain.events import Event
from streams.domain.process import ProcessState
from streams.domain.rejection import Rejected
from streams.domain.snapshot import (
    RUN_FROM_DICT,
    definition_from_dict,
    is_definition,
    is_run,
    process_from_dict,
    process_to_dict,
    run_from_dict,
    run_to_dict,
)
from streams.topics import TopicError, Topics, partitions_of

log = logging.getLogger(__name__)

EXACTLY_ONCE = "exactly_once"
AT_LEAST_ONCE = "at_least_once"


# -- the Table's values ---------------------------------------------------------------


_PROCESS_FIELDS = tuple(f.name for f in fields(ProcessState))
_STEP_FIELDS = tuple(f.name for f in fields(process.StepState))


def _state_to_dict(state: Any) -> dict[str, Any] | None:
    """The dict of :func:`streams.domain.snapshot.process_to_dict` (for a Process),
    built by hand: ``asdict`` deep-copies every field, and took a quarter of the time
    of this module's code, which writes one state per touched aggregate per batch."""
    if state is None:
        return None
    if isinstance(state, ProcessState):
        data = {name: getattr(state, name) for name in _PROCESS_FIELDS}
        data["steps"] = [{name: getattr(s, name) for name in _STEP_FIELDS} for s in state.steps]
        return data
    return asdict(state)


def _state_from_dict(aggregate_type: str, data: dict[str, Any] | None) -> Any:
    if data is None:
        return None
    if aggregate_type == process.AGGREGATE:
        return process_from_dict(data)
    if aggregate_type == account.AGGREGATE:
        tokens = tuple(account.Token(**t) for t in data.get("tokens", ()))
        return account.AccountState(data["name"], data["seq"], tokens)
    if aggregate_type in aggregates.DEFINITION_STATES:
        return definition_from_dict(aggregate_type, data)
    if aggregate_type in RUN_FROM_DICT:
        return run_from_dict(aggregate_type, data)
    raise ValueError(f"unknown aggregate type {aggregate_type!r} in the changelog")


class AggregateCodec(FaustCodec):
    """An :class:`Aggregate` as JSON in the changelog: its state and its accepted commands.

    ``{"type": "process", "state": {...}, "commands": {"<command_id>": [[seq, type,
    partition, offset], ...]}}``. Loading raises ValueError/KeyError on a malformed value.
    """

    def _dumps(self, agg: Any) -> bytes:
        value = {
            "type": agg.aggregate_type,
            "state": _state_to_dict(agg.state),
            "commands": {
                cid: [[p.seq, p.type, p.partition, p.offset] for p in positions]
                for cid, positions in agg.commands.items()
            },
        }
        return json.dumps(value, separators=(",", ":")).encode()

    def _loads(self, data: bytes) -> Any:
        value = json.loads(data)
        commands = {
            cid: tuple(serde.EventPosition(*p) for p in positions)
            for cid, positions in value["commands"].items()
        }
        kind = value["type"]
        return TableAggregate(_state_from_dict(kind, value["state"]), commands, kind)


@dataclass
class TableAggregate(Aggregate):
    """An :class:`Aggregate` that knows its type, so the changelog can say how to load it."""

    aggregate_type: str = ""


# -- the agent's work ------------------------------------------------------------------


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
        accepted: list[tuple[Command, TableAggregate, list[Event], list[Any]]] = []
        ready: list[serde.Outcome | tuple[Command, TableAggregate]] = []
        pending: list[Any] = []
        for message_event in batch:
            msg = message_event.message
            try:
                cmd = serde.decode_command(self.codec, msg.value)
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
                ready.append((cmd, agg))
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
            accepted.append((cmd, changed, events, futures))
        metas = await asyncio.gather(*(f for *_, futures in accepted for f in futures))
        start = 0
        for cmd, agg, events, _ in accepted:
            landed = metas[start : start + len(events)]
            start += len(events)
            positions = tuple(
                serde.EventPosition(ev.seq, ev.type, m.partition, m.offset)
                for ev, m in zip(events, landed, strict=True)
            )
            agg.commands[cmd.command_id] = positions
            ready.append(self._outcome(cmd, True, events=positions, state=agg.state))
        # The Table is written once the events it remembers are acknowledged: a crash
        # then repeats a command (same seq, same event ids) rather than remembering a
        # command whose events were lost.
        for key, agg in touched.items():
            pending.append(await self._write_state(key, agg))
        for item in ready:
            if isinstance(item, tuple):
                cmd, agg = item
                positions = agg.commands[cmd.command_id]
                item = self._outcome(cmd, True, duplicate=True, events=positions, state=agg.state)
            pending.append(await self._publish_outcome(item))
        await asyncio.gather(*pending)
        self.stats.batches += 1

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
        state_json = None
        if cmd.reply_to and isinstance(state, ProcessState):
            state_json = json.dumps(process_to_dict(state), separators=(",", ":"))
        elif cmd.reply_to and is_definition(state):
            state_json = json.dumps(asdict(state), separators=(",", ":"))
        elif cmd.reply_to and is_run(state):
            state_json = json.dumps(run_to_dict(state), separators=(",", ":"))
        return serde.Outcome(
            command_id=cmd.command_id,
            aggregate_type=cmd.aggregate_type,
            aggregate_id=cmd.aggregate_id,
            command=cmd.name,
            decided_at=self.clock(),
            account=cmd.account,
            actor=cmd.actor,
            accepted=accepted,
            duplicate=duplicate,
            reason_code=rejected.code if rejected else None,
            reason=rejected.message if rejected else None,
            field=rejected.field if rejected else None,
            events=events,
            state_json=state_json,
            reply_to=cmd.reply_to,
        )

    async def _publish_outcome(self, outcome: serde.Outcome) -> Any:
        key = aggregates.stream_key(outcome.aggregate_type, outcome.aggregate_id).encode()
        headers = [("reply_to", (outcome.reply_to or "").encode())]
        value = serde.encode_outcome(self.codec, outcome)
        return await self.outcomes.send(key=key, value=value, headers=headers)

    async def _dead_letter(self, msg: Any, exc: Exception) -> Any:
        self.stats.dead_lettered += 1
        log.warning("command at %s offset %d dead-lettered: %s", msg.tp, msg.offset, exc)
        headers = [
            ("reason", str(exc).encode()),
            ("error", type(exc).__name__.encode()),
            ("source_topic", msg.topic.encode()),
            ("source_partition", str(msg.partition).encode()),
            ("source_offset", str(msg.offset).encode()),
        ]
        return await self.dlq.send(key=msg.key, value=msg.value or b"", headers=headers)


# -- the app ----------------------------------------------------------------------------


def build_app(
    bootstrap: str,
    topics: Topics,
    data_dir: Path | str,
    *,
    codec: Codec | None = None,
    stats: DeciderStats | None = None,
    partitions: int = 4,
    processing_guarantee: str = EXACTLY_ONCE,
    replication_factor: int = 1,
    max_batch: int = 2000,
    batch_within: float = 0.05,
    commit_interval: float = 0.2,
    clock: Callable[[], int] = now_micros,
) -> faust.App:
    """A faust app whose agent decides ``topics.commands`` into events and outcomes.

    ``partitions`` must equal the partition count of the ledger topics: the Table's
    changelog is created with it, and faust places a key's changelog write on the same
    partition number as its command. ``replication_factor`` is the changelog's. The
    app is not started; run it with :class:`FaustDecider` (or a faust Worker).
    """
    codec = codec or default_codec()
    stats = stats if stats is not None else DeciderStats()
    app = faust.App(
        f"{topics.prefix}runledger-decider-faust",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        datadir=str(data_dir),
        processing_guarantee=processing_guarantee,
        topic_partitions=partitions,
        topic_replication_factor=replication_factor,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=commit_interval,
        producer_acks=-1,
        producer_linger=0.002,
        producer_max_batch_size=256 * 1024,
        stream_buffer_maxsize=max_batch * 2,
        # With the default (True) faust 0.15.3 ends the partitions' transactions twice
        # on stop under exactly_once, and the second end fails (IllegalOperation) with
        # the consumer thread left running. Commands taken but not finished at stop are
        # simply not committed, and are decided again on the next start.
        stream_wait_empty=False,
        web_enabled=False,
        autodiscover=False,
    )

    def raw_topic(*names: str) -> Any:
        return app.topic(
            *names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )

    commands = raw_topic(topics.commands)
    # The changelog is declared here, not left to the Table: faust derives a Table's
    # serializers from its key and value types only, and this one writes JSON.
    changelog = app.topic(
        f"{app.conf.id}-aggregates-changelog",
        key_type=bytes,
        key_serializer="raw",
        value_serializer=AggregateCodec(),
        partitions=partitions,
        compacting=True,  # the latest state of every aggregate, forever
        acks=False,
        internal=True,
        maxsize=131_072,
        allow_empty=True,
    )
    table = app.Table(
        "aggregates", key_type=bytes, partitions=partitions, changelog_topic=changelog
    )
    decide_batch = BatchDecider(
        topics,
        codec,
        table,
        raw_topic(topics.events),
        raw_topic(topics.outcomes),
        raw_topic(topics.dlq),
        clock=clock,
        stats=stats,
    )

    @app.agent(commands, name="decide")
    async def decide(stream: Any) -> None:
        async for batch in stream.take_events(max_batch, within=batch_within):
            await decide_batch(batch)

    if processing_guarantee == EXACTLY_ONCE:
        # Faust 0.15.3 puts a send into a partition's transaction only if the target
        # topic is one the app reads (its consumer's metadata and partition groups);
        # anything else goes out through the plain producer, outside every transaction
        # (faust-streaming/faust#177). Reading the written topics makes them part of
        # the commands' partition group: they are co-partitioned by design.
        @app.agent(raw_topic(topics.events, topics.outcomes, topics.dlq), name="written")
        async def drop(stream: Any) -> None:
            async for _ in stream.take(10_000, within=1.0):
                pass

    return app


class FaustDecider:
    """Runs :func:`build_app`'s app in the current event loop: ``run``, ``ready``, ``stop``.

    ``run`` returns after :meth:`stop` once faust has committed what it finished; it
    raises TopicError when the commands topic's partition count is not the app's, and
    RuntimeError when the app crashed.
    """

    def __init__(
        self,
        bootstrap: str,
        topics: Topics,
        codec: Codec | None = None,
        *,
        data_dir: Path | str,
        **options: Any,
    ) -> None:
        self.bootstrap, self.topics = bootstrap, topics
        self.stats = DeciderStats()
        self.app = build_app(bootstrap, topics, data_dir, codec=codec, stats=self.stats, **options)
        # Faust turns transactions on only inside a worker (``in_worker``, which its
        # Worker sets on start); this object is the worker, minus signals and logging.
        assert "in_transaction" not in vars(self.app), "decided before the worker flag"
        self.app.in_worker = True
        self.ready = asyncio.Event()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        await self._check_partitions()
        app = self.app
        try:
            await app.start()
            while not self._stopping.is_set():
                if app.crashed:
                    raise RuntimeError(f"the faust decider crashed: {app.crash_reason!r}")
                recovered = app.tables.recovery.completed.is_set()  # type: ignore[attr-defined]
                if recovered and app.consumer.assignment() and not app.rebalancing:
                    self.ready.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), 0.1)
        finally:
            self.ready.clear()
            await app.stop()

    async def _check_partitions(self) -> None:
        """TopicError unless the commands topic has the app's partition count: with any
        other count faust puts the changelog in another partition group, and so in
        other transactions than the commands."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap)
        await consumer.start()
        try:
            found = len(await partitions_of(consumer, self.topics.commands))
        finally:
            await consumer.stop()
        expected = self.app.conf.topic_partitions
        if found != expected:
            raise TopicError(
                f"{self.topics.commands} has {found} partitions; the faust decider was "
                f"built for {expected}"
            )
