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
    never_retrieved = [r for r in errors if r.name == "asyncio"]
    assert len(never_retrieved) == 1  # the RuntimeError's, not the ProducerFenced's
    assert "RuntimeError" in repr(never_retrieved[0].__dict__)
