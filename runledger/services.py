"""Long-running services started by the CLI: the decider process."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading

from runledger.metrics_http import serving_metrics
from runledger.settings import Settings
from schemas import default_codec
from streams.decider import Decider
from streams.decider_stats import decider_families
from streams.topics import Topics, ensure_topics

log = logging.getLogger("runledger.decider")


# How long a service may take to stop cleanly once asked. A clean stop talks to Kafka
# (abort a transaction, leave the group) and may wait for a page a runner is loading;
# when the broker died too (`up` killed, its children sent SIGTERM by the kernel), those
# calls retry for far longer. A stop that has not finished by then ends the process:
# the same as a crash, which the ledger is built to survive (open transactions abort,
# uncommitted offsets are read again).
STOP_GRACE_S = 20.0
FORCED_EXIT = 3
# SIGHUP: the terminal a service (or `up`) runs in closed. Its default action ends the
# process at once, without the clean stop SIGTERM gets.
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Signals that, coming again while a service stops, end the stop at once. Not SIGHUP: a
# closed terminal sends it more than once by itself (the shell forwards the kernel's to
# its jobs, and the kernel sends another to the foreground job when the shell exits).
HURRY_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def stop_on_signals(stop: asyncio.Event, grace_s: float = STOP_GRACE_S) -> None:
    """SIGINT, SIGTERM and SIGHUP set ``stop`` so services close Kafka clients cleanly;
    if the process is still running ``grace_s`` later, or SIGINT or SIGTERM comes again,
    it exits at once (status 3) with a log line saying so. A later SIGHUP is ignored."""
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        stop.set()
        # A second signal is handled by Python itself, not the loop: it ends a stop that
        # blocks the loop too.
        for again in SIGNALS:
            loop.remove_signal_handler(again)
            signal.signal(again, _second_signal if again in HURRY_SIGNALS else signal.SIG_IGN)
        # A thread, not the loop: a stop that hangs may be blocking the loop itself.
        reason = f"it did not stop within {grace_s:g} s of {sig.name}"
        timer = threading.Timer(grace_s, _exit_now, args=(reason,))
        timer.daemon = True
        timer.start()

    for sig in SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)


_PARENT = os.getppid()  # who started this process (``up``, a shell, a supervisor)


def _second_signal(signum: int, _frame: object) -> None:
    _exit_now(second_signal_reason(signum, _PARENT, os.getppid()))


def second_signal_reason(signum: int, parent: int, parent_now: int) -> str:
    """Why a second signal ends the stop. When the process that started this one is
    gone (``up`` killed: the kernel signals its children, more than once), say that,
    rather than suggest that someone pressed Ctrl-C twice."""
    reason = f"a second {signal.Signals(signum).name} came while stopping"
    if parent_now != parent:
        reason += f"; the process that started it (pid {parent}) is gone"
    return reason


def _exit_now(reason: str) -> None:
    logging.getLogger("runledger.services").error(
        "exiting without a clean stop: %s (nothing recorded is lost)", reason
    )
    logging.shutdown()  # flush the log line above
    os._exit(FORCED_EXIT)


async def run_decider(settings: Settings) -> None:
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings.kafka_bootstrap, topics, settings.partitions)
    decider = Decider(settings.kafka_bootstrap, topics, default_codec())
    async with serving_metrics(
        settings, "decider", lambda: decider_families(decider.stats, len(decider.aggregates))
    ):
        await _decide_until_stopped(decider)


async def _decide_until_stopped(decider: Decider) -> None:
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
