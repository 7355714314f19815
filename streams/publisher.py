"""The one wrapper around aiokafka's producer: durable sends (acks=all, idempotent).

A transactional publisher (``transactional_id`` set) is what the decider uses to write
events, outcomes and its consumed offsets atomically.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.partitioner import DefaultPartitioner, murmur2
from aiokafka.structs import TopicPartition

from streams.topics import unreachable

Headers = Sequence[tuple[str, bytes]]

MAX_REMEMBERED_KEYS = 100_000


class KeyHashPartitioner:
    """Kafka's default partitioner (murmur2 of the key, as the Java client and
    ``streams.consumer.partition_for``), remembering the hash of recent keys.

    aiokafka's murmur2 is pure Python, about a tenth of the node's CPU per command;
    an aggregate's commands and events all share its key, so most keys repeat.
    """

    def __init__(self, max_keys: int = MAX_REMEMBERED_KEYS) -> None:
        self._hashes: dict[bytes, int] = {}
        self._max_keys = max_keys

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return int(DefaultPartitioner()(key, all_partitions, available))
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= self._max_keys:
                self._hashes.clear()  # cheap and rare: the hot keys come back at once
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[hashed % len(all_partitions)]


class PublishError(Exception):
    """Kafka did not acknowledge a write; nothing may be reported as accepted."""


class Publisher:
    def __init__(
        self,
        bootstrap: str,
        *,
        transactional_id: str | None = None,
        client_id: str = "runledger",
        linger_ms: int = 2,
    ) -> None:
        self._bootstrap = bootstrap
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            client_id=client_id,
            acks="all",
            enable_idempotence=True,
            transactional_id=transactional_id,
            linger_ms=linger_ms,
            max_batch_size=256 * 1024,
            request_timeout_ms=30_000,
            partitioner=KeyHashPartitioner(),
        )

    async def start(self) -> None:
        """Connect; for a transactional publisher this also fences any older instance."""
        try:
            await self._producer.start()
        except KafkaConnectionError as exc:
            raise PublishError(unreachable(self._bootstrap)) from exc
        except KafkaError as exc:
            raise PublishError(f"cannot connect the producer: {exc}") from exc

    async def stop(self) -> None:
        await self._producer.stop()

    async def send(
        self, topic: str, key: bytes | None, value: bytes, headers: Headers = ()
    ) -> asyncio.Future[Any]:
        """Queue a message; the returned future resolves to its RecordMetadata."""
        try:
            return await self._producer.send(topic, value, key=key, headers=list(headers))
        except KafkaError as exc:
            raise PublishError(f"cannot send to {topic}: {exc}") from exc

    async def send_and_wait(
        self, topic: str, key: bytes | None, value: bytes, headers: Headers = ()
    ) -> tuple[int, int]:
        """Send and wait until every in-sync replica has it: (partition, offset)."""
        future = await self.send(topic, key, value, headers)
        try:
            meta = await future
        except KafkaError as exc:
            raise PublishError(f"{topic} did not acknowledge the write: {exc}") from exc
        return meta.partition, meta.offset

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Publisher]:
        """Everything sent inside commits together, or is aborted on an exception."""
        async with self._producer.transaction():
            yield self

    async def send_offsets(self, offsets: dict[TopicPartition, int], group_id: str) -> None:
        await self._producer.send_offsets_to_transaction(offsets, group_id)

    async def partitions_for(self, topic: str) -> set[int]:
        return set(await self._producer.partitions_for(topic))
