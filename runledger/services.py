"""Long-running services started by the CLI: the decider process."""

from __future__ import annotations

import asyncio
import logging
import signal

from runledger.settings import Settings
from schemas import default_codec
from streams.decider import Decider
from streams.topics import Topics, ensure_topics

log = logging.getLogger("runledger.decider")


def stop_on_signals(stop: asyncio.Event) -> None:
    """SIGINT and SIGTERM set ``stop`` so services close Kafka clients cleanly."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def run_decider(settings: Settings) -> None:
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings.kafka_bootstrap, topics, settings.partitions)
    decider = Decider(settings.kafka_bootstrap, topics, default_codec())
    stop = asyncio.Event()
    stop_on_signals(stop)
    task = asyncio.create_task(decider.run())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if task.done():
        log.info("the decider stopped by itself")
        task.result()
        return
    log.info("stopping the decider")
    decider.stop()
    try:
        await asyncio.wait_for(task, 15)
    except TimeoutError:
        task.cancel()
