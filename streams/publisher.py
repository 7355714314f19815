"""The one wrapper around aiokafka's producer: durable sends (acks=all, idempotent).

A transactional publisher (``transactional_id`` set) is what the decider uses to write
events, outcomes and its consumed offsets atomically.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError, ProducerFenced
from aiokafka.partitioner import DefaultPartitioner, murmur2
from aiokafka.structs import TopicPartition

from streams.topics import unreachable

Headers = Sequence[tuple[str, bytes]]

MAX_REMEMBERED_KEYS = 100_000
# How long a failed metadata refresh waits before it reports (see pace_metadata_retries).
METADATA_RETRY_S = 0.5
# How long a transaction may stay open before the broker aborts it (aiokafka's default,
# named here because Publisher.transaction tells that abort from a fencing by it).
TRANSACTION_TIMEOUT_MS = 60_000


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


def pace_metadata_retries(client: Any, pause_s: float = METADATA_RETRY_S) -> None:
    """Make a failed metadata refresh of aiokafka's ``client`` take ``pause_s``.

    A broker that stops cleanly first hands its partitions' leadership away, so a
    producer with a batch in flight learns "no leader" and its sender waits for a
    metadata refresh before trying again; with the broker gone that refresh fails at
    once, and the sender asked again at once: 100 % CPU and some 15,000 log lines a
    second until the broker came back (aiokafka 0.14 has no backoff there). Pacing the
    refresh itself paces every loop that waits on it.
    """
    update = client._metadata_update

    async def paced(cluster_metadata: Any, topics: Any) -> bool:
        updated = bool(await update(cluster_metadata, topics))
        if not updated:
            await asyncio.sleep(pause_s)
        return updated

    client._metadata_update = paced


class PublishError(Exception):
    """Kafka did not acknowledge a write; nothing may be reported as accepted."""


class TransactionTimedOut(PublishError):
    """The broker aborted a transaction that stayed open past the transaction timeout
    (the broker was away that long): nothing of it was written; start again."""


class Publisher:
    def __init__(
        self,
        bootstrap: str,
        *,
        transactional_id: str | None = None,
        client_id: str = "runledger",
        linger_ms: int = 2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._bootstrap = bootstrap
        self._clock = clock
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            client_id=client_id,
            acks="all",
            enable_idempotence=True,
            transactional_id=transactional_id,
            linger_ms=linger_ms,
            max_batch_size=256 * 1024,
            request_timeout_ms=30_000,
            transaction_timeout_ms=TRANSACTION_TIMEOUT_MS,
            partitioner=KeyHashPartitioner(),
        )
        pace_metadata_retries(self._producer.client)

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
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: Headers = (),
        timeout: float | None = None,
    ) -> tuple[int, int]:
        """Send and wait until every in-sync replica has it: (partition, offset).

        PublishError when Kafka refuses it, or has not acknowledged it within
        ``timeout`` seconds (None: aiokafka retries for as long as the broker is away).
        After a timeout the producer still holds the message and may write it once the
        broker is back: the sender can only retry it under the same id.
        """
        try:
            async with asyncio.timeout(timeout):
                future = await self.send(topic, key, value, headers)
                # Shielded: a timeout stops our waiting, not the producer's delivery.
                meta = await asyncio.shield(future)
        except TimeoutError as exc:
            raise PublishError(
                f"Kafka did not acknowledge the write to {topic} within {timeout:g} s "
                "(is the broker reachable?)"
            ) from exc
        except KafkaError as exc:
            raise PublishError(f"{topic} did not acknowledge the write: {exc}") from exc
        return meta.partition, meta.offset

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Publisher]:
        """Everything sent inside commits together, or is aborted on an exception.

        TransactionTimedOut, not ProducerFenced, when the transaction had been open
        longer than the transaction timeout: after an outage that long the broker
        aborts it and bumps the producer's epoch, which aiokafka reports as a fencing.
        A processor that took it for a newer instance stopped for good (exit 0, "another
        orchestrator took over") after a 70 s outage; this one is worth a restart.
        """
        began = self._clock()
        try:
            async with self._producer.transaction():
                yield self
        except ProducerFenced as exc:
            open_s = self._clock() - began
            if open_s * 1000 < TRANSACTION_TIMEOUT_MS:
                raise
            raise TransactionTimedOut(
                f"the broker aborted a transaction open for {open_s:.0f} s, past the "
                f"transaction timeout ({TRANSACTION_TIMEOUT_MS / 1000:g} s): was the broker "
                "away? Nothing of it was written"
            ) from exc

    async def send_offsets(self, offsets: dict[TopicPartition, int], group_id: str) -> None:
        await self._producer.send_offsets_to_transaction(offsets, group_id)

    async def partitions_for(self, topic: str) -> set[int]:
        return set(await self._producer.partitions_for(topic))
