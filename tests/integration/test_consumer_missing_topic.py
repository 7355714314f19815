"""LedgerConsumer on a topic that does not exist: the error is the helper's own
``ConsumerError`` (what its docstring and docs/consumers.md promise), not a
``TopicError`` from the topics module that a service's ``except ConsumerError`` misses."""

from __future__ import annotations

import asyncio
import functools

import pytest

import streams.consumer
from streams.consumer import ConsumerError, LedgerConsumer
from streams.topics import Topics, partitions_of

pytestmark = pytest.mark.integration


def test_a_missing_topic_raises_consumer_error(
    kafka_bootstrap: str, topic_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real metadata wait, shortened from 30 s: the broker is real, the topic absent.
    monkeypatch.setattr(
        streams.consumer, "partitions_of", functools.partial(partitions_of, timeout=0.5)
    )
    topic = Topics(topic_prefix).events

    async def start() -> None:
        async with LedgerConsumer(kafka_bootstrap, topic):
            pass

    with pytest.raises(ConsumerError, match=f"{topic} does not exist"):
        asyncio.run(start())
