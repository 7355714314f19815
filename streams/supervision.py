"""The restart loop shared by the ledger's transactional stream processors.

A processor (the decider, the orchestrator) starts by fencing older instances and
rebuilding from the log, then loops. After a failure it closes, waits a second and
starts again, which rebuilds from the log; once fenced by a newer instance it stops,
because retrying would fence that one in turn and the two would take turns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka.errors import ProducerFenced

RESTART_DELAY_S = 1.0


async def supervise(
    name: str,
    stopping: asyncio.Event,
    start: Callable[[], Awaitable[None]],
    loop: Callable[[], Awaitable[None]],
    close: Callable[[], Awaitable[None]],
    log: logging.Logger,
) -> None:
    """Run ``start`` then ``loop`` until ``stopping`` is set, restarting after failures."""
    while not stopping.is_set():
        try:
            await start()
            await loop()
        except asyncio.CancelledError:
            raise
        except ProducerFenced:
            log.error("another %s took over (this one was fenced); stopping", name)
            stopping.set()
            break
        except Exception:
            if stopping.is_set():
                break
            log.exception("%s failed; rebuilding from the ledger and resuming", name)
            await asyncio.sleep(RESTART_DELAY_S)
        finally:
            await close()
