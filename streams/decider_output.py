"""The records the decider writes inside a batch's transaction, as they look on the wire.

Events keyed by their aggregate with a ``type`` header, outcomes with the headers the
waiting caller filters on, and dead letters with where they came from and why. Apart
from :mod:`streams.decider` so its ``_process`` reads as the pipeline; the faust decider
writes its own. The dead-letter line is logged as ``streams.decider``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka.structs import TopicPartition

from schemas import Codec
from streams import serde
from streams.bus import outcome_headers
from streams.dead_letter_headers import command_letter_headers
from streams.domain import aggregates
from streams.domain.events import Event
from streams.publisher import Publisher

log = logging.getLogger("streams.decider")


async def send_events(
    publisher: Publisher, topic: str, codec: Codec, key: bytes, events: list[Event]
) -> list[asyncio.Future[Any]]:
    """Queue ``events`` on ``topic`` under ``key``; one future per event, resolving to
    its RecordMetadata. Raises PublishError when the producer refuses one."""
    futures = []
    for event in events:
        value = serde.encode_event(codec, event)
        headers = [("type", event.type.encode())]
        futures.append(await publisher.send(topic, key, value, headers))
    return futures


async def send_outcome(
    publisher: Publisher, topic: str, codec: Codec, outcome: serde.Outcome
) -> None:
    """Queue ``outcome`` on ``topic``, keyed by its aggregate like the events."""
    key = aggregates.stream_key(outcome.aggregate_type, outcome.aggregate_id).encode()
    headers = outcome_headers(outcome.reply_to, outcome.command_id)
    value = serde.encode_outcome(codec, outcome)
    await publisher.send(topic, key, value, headers)


async def send_dead_letter(
    publisher: Publisher, topic: str, tp: TopicPartition, msg: Any, exc: Exception
) -> None:
    """Log and queue on ``topic`` the command message ``msg`` (read from ``tp``) that
    did not decode, with why (streams/dead_letter_headers.py)."""
    log.warning(
        "command at %s/%d offset %d dead-lettered: %s", tp.topic, tp.partition, msg.offset, exc
    )
    headers = command_letter_headers(exc, tp.topic, tp.partition, msg.offset)
    await publisher.send(topic, msg.key, msg.value or b"", headers)
