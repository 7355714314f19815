"""How the orchestrator gets its memory back on start: it reads ``ledger.events`` from
offset 0 up to its committed positions.

Events before those positions had their commands and jobs published in the transaction
that committed them, so they are only folded, never acted on again. The reading is here,
the folding stays with the orchestrator (it decodes and counts as its loop does).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition


async def read_upto(
    consumer_factory: Callable[..., AIOKafkaConsumer],
    bootstrap: str,
    upto: dict[TopicPartition, int],
    on_message: Callable[[Any], None],
) -> None:
    """Pass every committed message before the positions ``upto`` (per partition) to
    ``on_message``, in order per partition; no consumer is made when there are none.

    ``consumer_factory`` makes the consumer from aiokafka's keyword arguments (a unit
    test passes a fake). Raises aiokafka's errors when the broker cannot be read.
    """
    remaining = {tp for tp, end in upto.items() if end > 0}
    if not remaining:
        return
    consumer = consumer_factory(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
        client_id="runledger-orchestrator-rebuild",
    )
    await consumer.start()
    try:
        consumer.assign(list(remaining))
        await consumer.seek_to_beginning(*remaining)
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=500, max_records=20_000)
            for tp, messages in batch.items():
                for msg in messages:
                    if msg.offset < upto[tp]:
                        on_message(msg)
            for tp in list(remaining):
                if await consumer.position(tp) >= upto[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
