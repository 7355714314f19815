"""The restart loop shared by the ledger's transactional stream processors.

A processor (the decider, the orchestrator) starts by fencing older instances and
rebuilding from the log, then loops. After a failure it closes, waits a second and
starts again, which rebuilds from the log; once fenced by a newer instance it stops,
because retrying would fence that one in turn and the two would take turns. While the
broker is away, every start fails the same way: those retries wait longer each time (up
to ``MAX_RESTART_DELAY_S``) and say so in one line each, where the first failure of a
run gets its traceback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka.errors import ProducerFenced

RESTART_DELAY_S = 1.0
MAX_RESTART_DELAY_S = 5.0


async def supervise(
    name: str,
    stopping: asyncio.Event,
    start: Callable[[], Awaitable[None]],
    loop: Callable[[], Awaitable[None]],
    close: Callable[[], Awaitable[None]],
    log: logging.Logger,
) -> None:
    """Run ``start`` then ``loop`` until ``stopping`` is set, restarting after failures."""
    quiet_fenced_futures(asyncio.get_running_loop(), log)
    failures = 0  # in a row since the last start that worked: the broker is away, say
    while not stopping.is_set():
        try:
            await start()
            failures = 0
            await loop()
        except asyncio.CancelledError:
            raise
        except ProducerFenced:
            log.error("another %s took over (this one was fenced); stopping", name)
            stopping.set()
            break
        except Exception as exc:
            if stopping.is_set():
                break
            failures += 1
            if failures == 1:  # the first failure of a story gets its traceback
                log.exception("%s failed; rebuilding from the ledger and resuming", name)
            else:
                log.warning(
                    "%s still cannot start (%d failures in a row): %s; retrying in %.0f s",
                    name,
                    failures,
                    exc,
                    restart_delay(failures),
                )
            await asyncio.sleep(restart_delay(failures))
        finally:
            await close()


def restart_delay(failures: int) -> float:
    """Seconds before the next start after ``failures`` in a row (1 or more): 1 s, then
    twice as long per failed start, up to ``MAX_RESTART_DELAY_S``."""
    return min(MAX_RESTART_DELAY_S, RESTART_DELAY_S * 2 ** max(0, failures - 1))


def quiet_fenced_futures(loop: asyncio.AbstractEventLoop, log: logging.Logger) -> None:
    """Log at debug level what asyncio would report as "Future exception was never
    retrieved" for a ProducerFenced: aiokafka's sender leaves such futures behind when a
    newer instance fences this one, and two tracebacks after the one line that says so
    (``supervise``) would read like a second failure. Everything else is reported as
    before."""
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        if isinstance(context.get("exception"), ProducerFenced):
            log.debug("after fencing: %s", context.get("message"))
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
