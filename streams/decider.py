"""The decider: the only writer of ``ledger.events``.

Pipeline, per batch of commands, all inside one Kafka transaction:

    decode → load state → decide (pure) → publish events → publish outcomes
    → send the consumed command offsets → commit

so a command's events, its outcome and the fact that it was consumed become visible
together or not at all (consumers read with ``read_committed``). On start, and after
any failure, the decider fences older instances (``init_transactions``) and rebuilds
every aggregate's state by folding ``ledger.events`` from offset 0 with the same
``evolve`` as the projector (:mod:`streams.decider_rebuild`). One command is decided by
:mod:`streams.decider_decision`, outcomes are built by :mod:`streams.outcome` and
written by :mod:`streams.decider_output`, and the counters and start-up and stop lines
are in :mod:`streams.decider_stats`. A message that does not decode goes to
``ledger.dlq``; when only its body is at fault (:class:`streams.serde.UnusableBody`)
its command is also rejected, in its place among the outcomes, since its sender may be
waiting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from schemas import Codec, DecodeError
from streams import serde
from streams.bus import wants_no_state
from streams.consumer_stop import stop_consumer
from streams.decider_decision import Accepted as _Accepted  # kept importable here
from streams.decider_decision import decide_command
from streams.decider_output import send_dead_letter, send_events, send_outcome
from streams.decider_rebuild import Aggregate, read_ledger, remember
from streams.decider_stats import DeciderStats as DeciderStats  # kept importable here
from streams.decider_stats import log_ready, log_stopped
from streams.domain.commands import Command
from streams.domain.events import Event
from streams.domain.rejection import Rejected
from streams.outcome import build_outcome, unusable_body_outcome
from streams.outcome import process_state_dict as process_state_dict  # kept importable here
from streams.outcome import state_to_json as _state_json
from streams.publisher import Publisher
from streams.supervision import supervise
from streams.topics import Topics, open_group_input

log = logging.getLogger(__name__)


def now_micros() -> int:
    return time.time_ns() // 1000


class Decider:
    """Consumes ``ledger.commands``, appends to ``ledger.events`` and ``ledger.outcomes``."""

    def __init__(
        self,
        bootstrap: str,
        topics: Topics,
        codec: Codec,
        *,
        clock: Callable[[], int] = now_micros,
        max_batch: int = 2000,
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.codec = codec
        self.clock = clock
        self.max_batch = max_batch
        self.group_id = f"{topics.prefix}runledger-decider"
        self.aggregates: dict[str, Aggregate] = {}
        self.stats = DeciderStats()
        self.ready = asyncio.Event()
        self._stopping = asyncio.Event()
        self._publisher: Publisher | None = None
        self._consumer: AIOKafkaConsumer | None = None
        # Commands of the current batch whose sender does not wait for the state.
        self._stateless: set[str] = set()
        # The next command offset per partition, as last committed in a transaction:
        # what the start-up and stop lines report.
        self.committed: dict[int, int] = {}

    # -- lifecycle ---------------------------------------------------------------------

    async def run(self) -> None:
        """Decide commands until :meth:`stop`; after a failure, fence, rebuild, go on."""
        await supervise("decider", self._stopping, self._start, self._loop, self._close, log)
        log_stopped(self.stats, self.topics, self.committed)

    def stop(self) -> None:
        self._stopping.set()

    async def _start(self) -> None:
        self.ready.clear()
        # Start the transactional producer first: init_transactions aborts whatever an
        # older instance left open, so the events we rebuild from are final.
        self._publisher = Publisher(
            self.bootstrap,
            transactional_id=f"{self.topics.prefix}runledger-decider",
            client_id="runledger-decider",
        )
        await self._publisher.start()
        await self._rebuild()
        consumer, tps = await open_group_input(
            self.bootstrap,
            self.topics.commands,
            group_id=self.group_id,
            client_id="runledger-decider",
        )
        self._consumer = consumer
        for tp in tps:
            committed = await consumer.committed(tp)
            if committed is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)
                self.committed[tp.partition] = committed
        self.ready.set()
        log_ready(
            self.bootstrap,
            len(self.aggregates),
            self.stats,
            self.topics,
            self.committed,
            self.group_id,
        )

    async def _close(self) -> None:
        if self._consumer is not None:
            await stop_consumer(self._consumer)
            self._consumer = None
        if self._publisher is not None:
            await self._publisher.stop()
            self._publisher = None

    async def _rebuild(self) -> None:
        """Fold every event of the ledger into ``self.aggregates``."""
        self.aggregates = {}
        self.stats.rebuilt_events = 0
        await read_ledger(self.bootstrap, self.topics.events, self.codec, self._remember)

    def _remember(self, event: Event, partition: int, offset: int) -> None:
        if remember(self.aggregates, event, partition, offset):
            self.stats.rebuilt_events += 1

    # -- the loop ----------------------------------------------------------------------

    async def _loop(self) -> None:
        assert self._consumer is not None
        while not self._stopping.is_set():
            batch = await self._consumer.getmany(timeout_ms=200, max_records=self.max_batch)
            if batch:
                await self._process(batch)

    async def _process(self, batch: dict[TopicPartition, list[Any]]) -> None:
        publisher = self._publisher
        assert publisher is not None
        outcomes: list[tuple[Command, Aggregate, list[Event], list[Any], int, Any]] = []
        # Outcomes in command order (the order audit shows them in): an accepted
        # command is its index in ``outcomes``, built once Kafka has acknowledged its
        # events; a duplicate of a command of this same batch is a (command, aggregate)
        # pair, resolved once the original's positions are known.
        ready: list[serde.Outcome | tuple[Command, Aggregate] | int] = []
        offsets: dict[TopicPartition, int] = {}
        async with publisher.transaction():
            for tp, messages in batch.items():
                for msg in messages:
                    offsets[tp] = msg.offset + 1
                    try:
                        cmd = serde.decode_command(self.codec, msg.value)
                    except serde.UnusableBody as exc:
                        # Its sender may be waiting: reject it in its place, and keep
                        # the message for operators too.
                        await self._dead_letter(tp, msg, exc)
                        ready.append(unusable_body_outcome(exc, self.clock()))
                        continue
                    except DecodeError as exc:
                        await self._dead_letter(tp, msg, exc)
                        continue
                    self.stats.commands += 1
                    if msg.headers and wants_no_state(msg.headers):
                        self._stateless.add(cmd.command_id)
                    decided = self._decide(cmd)
                    if not isinstance(decided, _Accepted):
                        ready.append(decided)
                        continue
                    agg, events = decided.aggregate, decided.events
                    # The aggregate's key, not the command's: docs/events.md promises
                    # it, and it keeps an aggregate's events on one partition in order.
                    key = decided.key
                    futures = await send_events(
                        publisher, self.topics.events, self.codec, key, events
                    )
                    ready.append(len(outcomes))
                    outcomes.append((cmd, agg, events, futures, self.clock(), agg.state))
            accepted: list[serde.Outcome] = []
            for cmd, agg, events, futures, decided_at, state in outcomes:
                metas = await asyncio.gather(*futures)
                positions = tuple(
                    serde.EventPosition(ev.seq, ev.type, m.partition, m.offset)
                    for ev, m in zip(events, metas, strict=True)
                )
                agg.commands[cmd.command_id] = positions
                accepted.append(
                    self._outcome(cmd, True, events=positions, state=state, decided_at=decided_at)
                )
            for item in ready:
                if isinstance(item, int):
                    item = accepted[item]
                elif isinstance(item, tuple):
                    cmd, agg = item
                    item = self._duplicate(cmd, agg)
                await send_outcome(publisher, self.topics.outcomes, self.codec, item)
            await publisher.send_offsets(offsets, self.group_id)
        self.committed.update({tp.partition: offset for tp, offset in offsets.items()})
        self._stateless.clear()
        self.stats.batch_committed(self.clock())

    def _decide(self, cmd: Command) -> serde.Outcome | tuple[Command, Aggregate] | _Accepted:
        """Decide one command against the in-memory state, updating that state.

        Returns the outcome of a rejection, a (command, aggregate) pair for a command
        already accepted (its outcome is built once its positions are known), or the
        accepted events.
        """
        return decide_command(
            self.aggregates,
            self.stats,
            cmd,
            lambda rejected, state: self._outcome(cmd, False, rejected=rejected, state=state),
        )

    def _duplicate(self, cmd: Command, agg: Aggregate) -> serde.Outcome:
        positions = agg.commands[cmd.command_id]
        return self._outcome(cmd, True, duplicate=True, events=positions, state=agg.state)

    def _outcome(
        self,
        cmd: Command,
        accepted: bool,
        *,
        duplicate: bool = False,
        events: tuple[serde.EventPosition, ...] = (),
        rejected: Rejected | None = None,
        state: Any = None,
        decided_at: int | None = None,
    ) -> serde.Outcome:
        return build_outcome(
            cmd,
            accepted,
            self.clock() if decided_at is None else decided_at,
            duplicate=duplicate,
            events=events,
            rejected=rejected,
            # Only a waiting caller needs the state; others save the serialisation.
            state_json=_state_json(state)
            if cmd.reply_to and state is not None and cmd.command_id not in self._stateless
            else None,
        )

    async def _dead_letter(self, tp: TopicPartition, msg: Any, exc: Exception) -> None:
        assert self._publisher is not None
        self.stats.dead_letter(exc)  # by reason too: the decider's /metrics shows it
        await send_dead_letter(self._publisher, self.topics.dlq, tp, msg, exc)
