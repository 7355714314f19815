"""Stopping an aiokafka consumer while its broker is away.

aiokafka 0.14's fetcher cancels its pending fetch requests on close and awaits them;
a request that failed is sleeping its retry backoff (always, while the broker is
away), and the CancelledError of that sleep comes out of ``consumer.stop()`` in a task
that nobody cancelled. A service asked to stop during an outage then ended with a
traceback and status 1, its other Kafka clients never closed.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka import AIOKafkaConsumer


async def stop_consumer(consumer: AIOKafkaConsumer) -> None:
    """``consumer.stop()``, finished even when a fetch's retry was cancelled under it.

    A cancellation of the caller itself still propagates.
    """
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        # What stop() did not get to: the fetches still pending, then the connections.
        fetcher = consumer._fetcher
        for pending in list(getattr(fetcher, "_pending_tasks", ())):
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pending
        await consumer._client.close()
