"""Watching ``ledger.events`` for cancels, so a runner stops a cancelled job at once.

The watch reads every partition from its end (no consumer group, ``read_committed``)
and looks only at the message headers and key: a ``flowrun.cancelled``,
``flowrun.deleted``, ``caserun.cancelled``, ``caserun.deleted``, ``process.cancelled``
or ``process.deleted`` event calls ``on_cancel(run_id, event_time)``. The Process
events stop the ``generate`` job of a ``case.generate`` Process (its ``run_id`` is the
Process id); a cancel of any other Process matches no job and costs nothing. Nothing
is decoded, so following the ledger costs little; the poll interval (200 ms) bounds the
delay a watch adds to a cancel.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from streams.consumer_stop import stop_consumer
from streams.topics import Topics, partitions_of

log = logging.getLogger(__name__)

CANCELS = frozenset(
    {
        "flowrun.cancelled",
        "flowrun.deleted",
        "caserun.cancelled",
        "caserun.deleted",
        "process.cancelled",
        "process.deleted",
    }
)

OnCancel = Callable[[str, float], None]


def cancelled_run(key: bytes | None, headers: object) -> str | None:
    """The run id a cancel event is about, or None for any other event."""
    kind = None
    for name, value in headers or ():  # type: ignore[attr-defined]
        if name == "type":
            kind = bytes(value).decode(errors="replace")
    if kind not in CANCELS or not key:
        return None
    _, _, run_id = key.decode(errors="replace").partition(":")
    return run_id or None


class CancelWatch:
    def __init__(self, bootstrap: str, topics: Topics, on_cancel: OnCancel) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.on_cancel = on_cancel
        self.ready = asyncio.Event()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            isolation_level="read_committed",
            client_id="runledger-runner-cancels",
        )
        await consumer.start()
        try:
            parts = await partitions_of(consumer, self.topics.events)
            tps = [TopicPartition(self.topics.events, p) for p in parts]
            consumer.assign(tps)
            await consumer.seek_to_end(*tps)
            for tp in tps:
                await consumer.position(tp)
            self.ready.set()
            while not self._stopping.is_set():
                batch = await consumer.getmany(timeout_ms=200, max_records=5000)
                for messages in batch.values():
                    for msg in messages:
                        run_id = cancelled_run(msg.key, msg.headers)
                        if run_id is not None:
                            # Most cancels (every plain Process's, and every run whose
                            # jobs another runner holds) stop nothing here: the job loop
                            # logs the jobs it really stops, naming them.
                            log.debug("run %s cancelled", run_id)
                            self.on_cancel(run_id, msg.timestamp / 1000)
        finally:
            await stop_consumer(consumer)
