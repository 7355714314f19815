"""The command bus of a node: publish a command durably, then await its outcome.

Each node has an id; the commands it publishes carry it as ``reply_to`` and the
decider copies it onto the outcome (and into a header, so the bus skips other nodes'
outcomes without decoding them). The bus reads ``ledger.outcomes`` from its end at
start: every outcome of a command it publishes afterwards is ahead of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from schemas import Codec, DecodeError
from streams import serde
from streams.domain import aggregates
from streams.domain.commands import Command
from streams.publisher import Publisher
from streams.topics import Topics, partitions_of

log = logging.getLogger(__name__)


class CommandBus:
    def __init__(self, bootstrap: str, topics: Topics, codec: Codec, node_id: str = "") -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.codec = codec
        self.node_id = node_id or f"node-{uuid.uuid4().hex[:12]}"
        self._reply = self.node_id.encode()
        self._publisher = Publisher(bootstrap, client_id=self.node_id)
        self._consumer: AIOKafkaConsumer | None = None
        self._waiting: dict[str, asyncio.Future[serde.Outcome | None]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._publisher.start()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            client_id=self.node_id,
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        await consumer.start()
        parts = await partitions_of(consumer, self.topics.outcomes)
        tps = [TopicPartition(self.topics.outcomes, p) for p in parts]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the lazy seek now, before any command is published
            await consumer.position(tp)
        self._consumer = consumer
        self._task = asyncio.create_task(self._listen(), name="outcome-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
        await self._publisher.stop()
        for future in self._waiting.values():
            future.cancel()

    async def publish(self, cmd: Command) -> tuple[int, int]:
        """Publish without waiting for the decider: (partition, offset) in ledger.commands."""
        key = aggregates.stream_key(cmd.aggregate_type, cmd.aggregate_id).encode()
        value = serde.encode_command(self.codec, cmd)
        return await self._publisher.send_and_wait(self.topics.commands, key, value)

    async def execute(self, cmd: Command, timeout: float) -> serde.Outcome | None:
        """Publish ``cmd`` (durably) and await its outcome; None if none came in time.

        The command's ``reply_to`` must be this bus's ``node_id``. Raises PublishError
        when Kafka does not acknowledge the command: then nothing was accepted.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[serde.Outcome | None] = loop.create_future()
        previous = self._waiting.get(cmd.command_id)
        self._waiting[cmd.command_id] = future
        timer: asyncio.TimerHandle | None = None
        try:
            await self.publish(cmd)
            # A timer that answers None, rather than asyncio.wait_for: no task per command.
            timer = loop.call_later(timeout, _no_outcome, future)
            return await future
        finally:
            if timer is not None:
                timer.cancel()
            if self._waiting.get(cmd.command_id) is future:
                if previous is not None and not previous.done():
                    self._waiting[cmd.command_id] = previous
                else:
                    del self._waiting[cmd.command_id]

    async def _listen(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batch = await self._consumer.getmany(timeout_ms=500, max_records=5000)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reading outcomes failed; retrying")
                await asyncio.sleep(0.5)
                continue
            for messages in batch.values():
                for msg in messages:
                    if not self._waiting or not _for_me(msg.headers, self._reply):
                        continue
                    try:
                        outcome = serde.decode_outcome(self.codec, msg.value)
                    except DecodeError:
                        log.warning("undecodable outcome at offset %d", msg.offset)
                        continue
                    future = self._waiting.get(outcome.command_id)
                    if future is not None and not future.done():
                        future.set_result(outcome)


def _no_outcome(future: asyncio.Future[serde.Outcome | None]) -> None:
    if not future.done():
        future.set_result(None)


def _for_me(headers: object, reply: bytes) -> bool:
    for key, value in headers or ():  # type: ignore[attr-defined]
        if key == "reply_to":
            return bool(value == reply)
    return False
