"""A fenced processor stops with one log line, not with aiokafka's leftovers after it."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest
from aiokafka.errors import ProducerFenced

from streams.supervision import supervise

log = logging.getLogger("test.supervision")


def _abandoned(error: BaseException) -> None:
    """A future failed with ``error`` that nobody awaits (as aiokafka's sender leaves)."""
    future = asyncio.get_running_loop().create_future()
    future.set_exception(error)
    del future
    gc.collect()  # its __del__ reports "Future exception was never retrieved"


def test_fenced_leftovers_are_not_reported_as_errors_and_others_still_are(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> bool:
        stopping = asyncio.Event()

        async def start() -> None:
            _abandoned(ProducerFenced())
            raise ProducerFenced()

        async def nothing() -> None:
            pass

        await supervise("decider", stopping, start, nothing, nothing, log)
        _abandoned(RuntimeError("something else"))
        return stopping.is_set()

    with caplog.at_level(logging.DEBUG):
        assert asyncio.run(scenario())
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors if r.name == log.name] == [
        "another decider took over (this one was fenced); stopping"
    ]
    # Only these futures' reports: an earlier test's garbage (an unclosed client that
    # the collection above finalizes) is reported by asyncio too, and is not ours.
    never_retrieved = [
        r for r in errors if r.name == "asyncio" and "never retrieved" in r.getMessage()
    ]
    assert len(never_retrieved) == 1  # the RuntimeError's, not the ProducerFenced's
    assert "RuntimeError" in repr(never_retrieved[0].__dict__)


def test_retries_while_the_broker_is_away_back_off_and_say_so_in_one_line_each(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first failure gets its traceback; the failed starts after it one line each,
    with a delay that doubles up to 5 s (a broker outage logged 235 lines in 12 s)."""
    from streams import supervision

    slept: list[float] = []

    async def no_wait(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(supervision.asyncio, "sleep", no_wait)

    async def scenario() -> None:
        stopping = asyncio.Event()
        starts = 0

        async def start() -> None:
            nonlocal starts
            starts += 1
            if starts in (2, 3, 4, 5, 6, 7):  # the broker went away after the first run
                raise ConnectionError("cannot reach a Kafka broker at h:1: is it running?")

        async def run() -> None:
            if starts == 1:
                raise RuntimeError("the broker went away")
            stopping.set()

        async def nothing() -> None:
            pass

        await supervise("decider", stopping, start, run, nothing, log)

    with caplog.at_level(logging.INFO, logger=log.name):
        asyncio.run(scenario())
    ours = [r for r in caplog.records if r.name == log.name]
    assert [r.levelname for r in ours] == ["ERROR"] + ["WARNING"] * 6
    assert ours[0].exc_info is not None and all(r.exc_info is None for r in ours[1:])
    assert "still cannot start (7 failures in a row): cannot reach" in ours[-1].getMessage()
    assert slept == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0]
