"""A runner asked to stop while it is still starting (its cancel watch not ready yet,
as when `up` is killed right after it printed its token) stops, instead of waiting
for ever for a readiness that will not come."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from runledger.runner import Runner, RunnerOptions
from runledger.settings import Settings


async def _nothing() -> None:
    return None


def test_a_runner_stopped_before_it_is_ready_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings.from_env({"RUNLEDGER_DATA_DIR": str(tmp_path)})

    watch_stopped = asyncio.Event()

    async def never_ready() -> None:  # the broker is gone: the watch never gets ready
        await watch_stopped.wait()

    async def scenario() -> bool:
        runner = Runner(settings, RunnerOptions(kinds=()))
        monkeypatch.setattr(runner.publisher, "start", _nothing)
        monkeypatch.setattr(runner.publisher, "stop", _nothing)
        monkeypatch.setattr(runner.browser, "start", _nothing)
        monkeypatch.setattr(runner.browser, "close", _nothing)
        monkeypatch.setattr(runner.watch, "run", never_ready)
        monkeypatch.setattr(runner.watch, "stop", watch_stopped.set)
        task = asyncio.create_task(runner.run())
        await asyncio.sleep(0.2)
        runner.stop()
        done, _ = await asyncio.wait({task}, timeout=20)
        if not done:
            task.cancel()
        assert not runner.ready.is_set()
        return bool(done)

    assert asyncio.run(scenario()), "run() did not end after stop()"
