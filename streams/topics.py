"""Topic names (with the deployment's prefix) and their creation."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError
from aiokafka.structs import TopicPartition

log = logging.getLogger(__name__)

FOREVER = "-1"
WEEK_MS = str(7 * 24 * 3600 * 1000)


class TopicError(Exception):
    """Topics could not be created or checked; the message says which and why."""


def unreachable(bootstrap: str) -> str:
    """What to say when no broker at ``bootstrap`` answers (aiokafka's
    KafkaConnectionError, "Unable to bootstrap from [('127.0.0.1', 1, <AddressFamily...>)]"):
    the address and the likely cause, in one sentence every client wrapper shares. The
    caller keeps the KafkaConnectionError as the cause, for ``-v`` and for callers that
    add where the address came from."""
    return f"cannot reach a Kafka broker at {bootstrap}: is it running?"


@dataclass(frozen=True)
class Topics:
    """The ledger's topics. ``prefix`` lets several ledgers share one broker."""

    prefix: str = ""

    @property
    def commands(self) -> str:
        return f"{self.prefix}ledger.commands"

    @property
    def events(self) -> str:
        return f"{self.prefix}ledger.events"

    @property
    def outcomes(self) -> str:
        return f"{self.prefix}ledger.outcomes"

    @property
    def jobs(self) -> str:
        return f"{self.prefix}ledger.jobs"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}ledger.dlq"

    def retention(self) -> dict[str, str]:
        """retention.ms per topic: the ledger, its commands and outcomes are kept forever."""
        return {
            self.commands: FOREVER,
            self.events: FOREVER,
            self.outcomes: FOREVER,
            self.dlq: FOREVER,
            self.jobs: WEEK_MS,
        }


def describe_positions(positions: Mapping[int, int] | Mapping[TopicPartition, int]) -> str:
    """Positions (next offset to read, per partition) as a log line shows them, in
    partition order: ``"partition 0 at offset 2, 1 at 2, 3 at 22"``; ``"the
    beginning"`` when there are none. Start-up and stop lines use it, so an operator
    reads where a service resumed from and what it committed in one form."""
    by_partition = {
        (p.partition if isinstance(p, TopicPartition) else p): offset
        for p, offset in positions.items()
    }
    if not by_partition:
        return "the beginning"
    parts = [f"{p} at {by_partition[p]}" for p in sorted(by_partition)]
    return f"partition {parts[0].replace(' at ', ' at offset ', 1)}" + "".join(
        f", {part}" for part in parts[1:]
    )


async def ensure_topics(bootstrap: str, topics: Topics, partitions: int) -> None:
    """Create every topic that is missing. Existing topics are left as they are.

    ``commands``, ``events`` and ``outcomes`` must share a partition count: an
    aggregate's key puts its commands and its events on the same partition number.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="runledger-admin")
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        cluster = await admin.describe_cluster()
        replicas = min(3, max(1, len(cluster.get("brokers", []))))
        new = [
            NewTopic(
                name,
                num_partitions=partitions,
                replication_factor=replicas,
                topic_configs={"retention.ms": retention, "min.insync.replicas": "1"},
            )
            for name, retention in topics.retention().items()
            if name not in existing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):  # a concurrent starter won
                await admin.create_topics(new)
            log.info("created topics %s on %s", ", ".join(t.name for t in new), bootstrap)
    except KafkaConnectionError as exc:
        raise TopicError(unreachable(bootstrap)) from exc
    except KafkaError as exc:
        raise TopicError(f"could not create topics on {bootstrap}: {exc}") from exc
    finally:
        await admin.close()


async def require_topics(
    bootstrap: str, names: Sequence[str], grace_s: float = 2.0
) -> dict[str, list[int]]:
    """``{topic: sorted partitions}`` of ``names``; TopicError, naming the topic and the
    broker, when one is missing or the broker cannot be asked.

    For tools that read a ledger which must already exist: they fail in seconds, where
    :func:`partitions_of` waits 30 s for a just-created topic. ``grace_s`` still covers
    a broker whose metadata trails a creation by a moment. The broker is asked for the
    metadata of every topic, never of these names: a request that names a topic lets a
    broker with ``auto.create.topics.enable`` create it.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="runledger-tools")
    deadline = time.monotonic() + grace_s
    try:
        await admin.start()
        while True:
            found = {
                t["topic"]: sorted(p["partition"] for p in t["partitions"])
                for t in await admin.describe_topics(None)
                if t["topic"] in names and t["partitions"]
            }
            missing = [n for n in names if n not in found]
            if not missing:
                return found
            if time.monotonic() > deadline:
                raise TopicError(
                    f"topic {missing[0]} does not exist on {bootstrap}: check "
                    "RUNLEDGER_TOPIC_PREFIX and the broker, or start the stack with `runledger up`"
                )
            await asyncio.sleep(0.25)
    except KafkaConnectionError as exc:
        raise TopicError(unreachable(bootstrap)) from exc
    except KafkaError as exc:
        raise TopicError(f"cannot read the topics of {bootstrap}: {exc}") from exc
    finally:
        await admin.close()


async def partitions_of(consumer: AIOKafkaConsumer, topic: str, timeout: float = 30.0) -> list[int]:
    """The partitions of ``topic``, waiting for the metadata of a just-created topic.

    Raises TopicError when the topic does not appear within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return sorted(parts)
        if time.monotonic() > deadline:
            raise TopicError(f"topic {topic} does not exist: start the stack with `runledger up`")
        await consumer._client.force_metadata_update()  # noqa: SLF001 - no public refresh
        await asyncio.sleep(0.2)


async def open_group_input(
    bootstrap: str,
    topic: str,
    *,
    group_id: str,
    client_id: str,
    factory: Callable[..., Any] = AIOKafkaConsumer,
) -> tuple[Any, list[TopicPartition]]:
    """A started consumer of every partition of ``topic``, assigned by hand, whose
    positions are committed as ``group_id`` inside a producer's transaction (no auto
    commit, ``read_committed``); the caller seeks. ``factory`` makes the consumer (a
    unit test passes a fake). Raises TopicError when the topic does not exist."""
    consumer = factory(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        client_id=client_id,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in await partitions_of(consumer, topic)]
    except BaseException:
        await consumer.stop()
        raise
    consumer.assign(tps)
    return consumer, tps
