"""The projector's dead-letter producer: skipped messages go to ``ledger.dlq`` with why.

Each dead letter keeps the original key and bytes; headers say ``reason`` (see
``projections.fold``), ``error`` (a sentence) and where it came from
(``source_topic``, ``source_partition``, ``source_offset``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from projections.errors import ProjectorError
from projections.fold import UNKNOWN_FINGERPRINT, DeadLetter

log = logging.getLogger("projections.projector")  # the projector's lines, as before

MAX_ERROR_BYTES = 4096


def headers_of(letter: DeadLetter, source_topic: str) -> list[tuple[str, bytes]]:
    """The Kafka headers a dead letter carries."""
    msg = letter.message
    return [
        ("reason", letter.reason.encode()),
        ("error", letter.error.encode("utf-8", "replace")[:MAX_ERROR_BYTES]),
        ("source_topic", source_topic.encode()),
        ("source_partition", str(msg.partition).encode()),
        ("source_offset", str(msg.offset).encode()),
    ]


class DeadLetterPublisher:
    """Publishes dead letters with ``acks=all`` and an idempotent producer."""

    def __init__(self, bootstrap: str, topic: str, *, client_id: str) -> None:
        self.topic = topic
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            client_id=client_id,
            acks="all",
            enable_idempotence=True,
        )
        self._started = False

    async def start(self) -> None:
        try:
            await self._producer.start()
        except KafkaError as exc:
            raise ProjectorError(f"cannot start the dead-letter producer: {exc}") from exc
        self._started = True

    async def stop(self) -> None:
        if self._started:
            self._started = False
            await self._producer.stop()

    async def publish(self, source_topic: str, letters: Sequence[DeadLetter]) -> None:
        """Return once Kafka acknowledged every letter; ProjectorError if it did not."""
        try:
            sent = []
            for letter in letters:
                msg = letter.message
                # Kafka takes no record that has neither key nor value.
                value = b"" if msg.value is None and msg.key is None else msg.value
                headers = headers_of(letter, source_topic)
                sent.append(
                    await self._producer.send(self.topic, value=value, key=msg.key, headers=headers)
                )
            await asyncio.gather(*sent)
        except KafkaError as exc:
            raise ProjectorError(f"publishing {len(letters)} dead letters failed: {exc}") from exc


def log_dead_letters(topic: str, dlq: str, letters: tuple[DeadLetter, ...]) -> None:
    """One warning per batch that dead-lettered something, and for an unknown schema
    fingerprint one error line that says what it means and what to do: it freezes an
    aggregate in this node's read model (its later events become sequence gaps)."""
    reasons = Counter(d.reason for d in letters)
    first = letters[0]
    log.warning(
        "projector: dead-lettered %d messages of %s to %s (%s); the first at partition %d "
        "offset %d: %s; list them with `runledger dlq`",
        len(letters),
        topic,
        dlq,
        ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items())),
        first.message.partition,
        first.message.offset,
        first.error,
    )
    unknown = next((d for d in letters if d.reason == UNKNOWN_FINGERPRINT), None)
    if unknown is not None:
        log.error(
            "projector: the event at partition %d offset %d of %s has a schema this node "
            "does not know (%s): this node's schemas/ are probably older than the writer's, "
            "and every later event of its aggregate will be dead-lettered as sequence_gap "
            "(the aggregate stays frozen here); upgrade this node, then run `runledger "
            "verify` and `runledger replay --to NEW.duckdb` + `runledger swap --from NEW.duckdb` "
            "(docs/operations.md, Dead letters)",
            unknown.message.partition,
            unknown.message.offset,
            topic,
            unknown.error,
        )
