"""The decider as a faust-streaming app: an agent on ``ledger.commands``, state in a Table.

The measured alternative to :mod:`streams.decider`, which is the decider a deployment
runs (``docs/decider.md`` has the figures and the reasons). Same contract: the same
pure ``decide``/``evolve``, the same Avro bytes for events and outcomes, idempotency by
``command_id``. The aggregate state lives in a faust Table keyed by the stream key;
its compacted changelog (JSON, :mod:`streams.faust_table`) replaces the rebuild from
``ledger.events``. The agent's work per batch is :mod:`streams.faust_batch`'s; this
module assembles the app and runs it.

Under ``exactly_once`` faust keeps one transactional producer per partition
(``{app id}-{group}-{partition}``) and, every ``broker_commit_interval``, commits each
one's transaction with the acked command offsets. Faust 0.15.3 needs three things for
the decider's writes to be in those transactions: the app must think it runs in a
worker (:class:`FaustDecider` sets ``in_worker``); the target topic must be one the
app reads (faust-streaming/faust#177), so an agent reads and drops ``ledger.events``,
``ledger.outcomes`` and ``ledger.dlq``, which puts them in the commands' partition
group; and Table writes must not wait in faust's send buffer
(:meth:`streams.faust_batch.BatchDecider._write_state`). The timer does not wait for
a batch to finish: a transaction may hold the events of commands it does not commit
yet. After a crash those commands are decided again and their events written again,
with the same seq and event ids, which downstream drops as duplicates; nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer

from schemas import Codec, default_codec
from streams.decider import now_micros
from streams.decider_stats import DeciderStats
from streams.faust_batch import BatchDecider
from streams.faust_table import AggregateCodec
from streams.topics import TopicError, Topics, partitions_of

EXACTLY_ONCE = "exactly_once"
AT_LEAST_ONCE = "at_least_once"


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
