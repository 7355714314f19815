"""A batch the read model has no room for is held and written again until it fits,
said once, and given up (nothing written) when the projector stops. The real disk is
drilled in tests/integration/test_disk_full.py."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import duckdb
import pytest

from projections import full_disk
from projections.database_errors import store_error
from projections.errors import StoreError, StoreFull
from projections.full_disk import HeldWrites

NO_ROOM = 'Could not write file "/d/node.duckdb.wal": No space left on device'


class _Disk:
    """A store whose first ``full`` writes fail for want of room."""

    def __init__(self, full: int, error: StoreError | None = None) -> None:
        self.path = Path("/d/node.duckdb")
        self.full = full
        self.error = error or StoreFull(f"writing a batch failed: {NO_ROOM}")
        self.attempts = 0
        self.written: list[Any] = []

    def write(self, batch: Any) -> bool:
        self.attempts += 1
        if self.attempts <= self.full:
            raise self.error
        self.written.append(batch)
        return True


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(full_disk, "restart_delay", lambda failures: 0.01)


def _writes(disk: _Disk, stopping: asyncio.Event | None = None) -> HeldWrites:
    return HeldWrites(disk, stopping or asyncio.Event())  # type: ignore[arg-type]


def test_a_batch_without_room_is_held_said_once_and_written_when_there_is_room(
    caplog: pytest.LogCaptureFixture,
) -> None:
    disk = _Disk(full=5)

    async def go() -> HeldWrites:
        writes = _writes(disk)
        await writes.write("batch")
        return writes

    with caplog.at_level(logging.INFO, logger="projections.full_disk"):
        writes = asyncio.run(go())
    assert disk.written == ["batch"] and disk.attempts == 6
    assert writes.held_s == 0
    said = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in said] == ["WARNING", "INFO"], said
    assert said[0][1].startswith(
        "projector: no room to write to the read model: writing a batch failed: "
        f"{NO_ROOM}. Nothing is lost"
    )
    assert "free space on the filesystem of /d" in said[0][1]
    assert said[1][1].startswith("projector: room again in /d: the batch held for 0 s")
    assert said[1][1].endswith("(5 attempts failed); catching up")


def test_the_hold_counts_while_it_lasts() -> None:
    disk = _Disk(full=10**6)

    async def go() -> float:
        writes = _writes(disk)
        task = asyncio.ensure_future(writes.write("batch"))
        while disk.attempts < 3:
            await asyncio.sleep(0.01)
        held = writes.held_s
        task.cancel()
        return held

    assert asyncio.run(go()) > 0


def test_a_stop_gives_the_held_batch_up_with_nothing_written() -> None:
    disk = _Disk(full=10**6)

    async def go() -> None:
        stopping = asyncio.Event()
        writes = _writes(disk, stopping)
        task = asyncio.ensure_future(writes.write("batch"))
        while disk.attempts < 2:
            await asyncio.sleep(0.01)
        stopping.set()
        with pytest.raises(StoreFull):
            await asyncio.wait_for(task, 5)
        assert writes.held_s == 0

    asyncio.run(go())
    assert disk.written == []


def test_any_other_store_error_is_raised_at_once() -> None:
    disk = _Disk(full=1, error=StoreError("writing a batch failed: Constraint Error"))
    with pytest.raises(StoreError, match="Constraint Error"):
        asyncio.run(_writes(disk).write("batch"))
    assert disk.attempts == 1


@pytest.mark.parametrize(
    ("reason", "full"),
    [
        ("No space left on device", True),
        ("Disk quota exceeded", True),
        ("File too large", True),
        ("Permission denied", False),
        ("Constraint Error: duplicate key", False),
    ],
)
def test_a_write_that_found_no_room_is_told_from_other_failures(reason: str, full: bool) -> None:
    error = store_error("writing a batch failed", duckdb.IOException(f"Could not write: {reason}"))
    assert isinstance(error, StoreFull) is full
    assert str(error) == f"writing a batch failed: Could not write: {reason}"
