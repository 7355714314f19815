"""The parts of a live swap that need no broker: what the SSE streams would miss at the
switch, waits that move to the new projector, reads that drain from the old store."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, cast

from projections.fold import Batch, fold_batch
from projections.projector import Projector
from projections.watermark import Watermark
from runledger.serving import NodePositions, SwitchableReads, Unpublished
from tests.unit.test_projections_fold import TOPIC, lifecycle, messages


def batch(first: int, count: int) -> Batch:
    """Process events at offsets first..first+count-1 of partition 0, folded."""
    events = lifecycle("p-1")[:count]
    found = fold_batch({}, messages(events, partition=0, first=first), topic=TOPIC)
    assert len(found.events) == count
    return found


def test_unpublished_keeps_only_what_the_old_projector_has_not_published() -> None:
    old = Watermark({0: 3})
    unpublished = Unpublished(old)
    unpublished(batch(0, 3))  # offsets 0-2: the old projector published them
    assert unpublished.past(old.snapshot()) == []
    unpublished(batch(1, 5))  # offsets 1-5: 3, 4 and 5 are past the old one
    assert [a.row.offset for a in unpublished.past(old.snapshot())] == [3, 4, 5]
    old.advance(0, 5)  # the old one went on and published 3 and 4 itself
    assert [a.row.offset for a in unpublished.past(old.snapshot())] == [5]


class FakeProjector:
    """What NodePositions uses of a Projector: its watermark and the two waits."""

    def __init__(self, positions: dict[int, int]) -> None:
        self.watermark = Watermark(positions)

    @property
    def applied(self) -> dict[int, int]:
        return self.watermark.snapshot()

    async def wait_for(self, partition: int, offset: int, timeout: float) -> bool:
        return await self.watermark.wait_for(partition, offset, timeout)

    async def catch_up(self, timeout: float) -> bool:
        return await self.watermark.wait_for_end({0: 10}, timeout)


def test_a_wait_begun_on_the_old_projector_ends_on_the_new_one() -> None:
    async def main() -> None:
        old, new = FakeProjector({0: 5}), FakeProjector({0: 5})
        positions = NodePositions(cast(Projector, old))
        waiting = asyncio.create_task(positions.wait_for(0, 7, 5.0))
        ending = asyncio.create_task(positions.wait_for_end(5.0))
        await asyncio.sleep(0.05)
        positions.pause()  # the old one stops for good at 5
        new.watermark.advance(0, 10)
        positions.move_to(cast(Projector, new))
        assert await asyncio.wait_for(waiting, 1.0) is True
        assert await asyncio.wait_for(ending, 1.0) is True
        assert positions.applied() == {0: 10}
        assert await positions.wait_for(0, 20, 0.05) is False  # a timeout is still one

    asyncio.run(main())


class Reads:
    def __init__(self, name: str, gate: threading.Event | None = None) -> None:
        self.name = name
        self.gate = gate
        self.entered = threading.Event()

    def get_process(self, account: str, process_id: str) -> Any:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(5)
        return self.name


def test_the_old_read_model_drains_before_it_may_close() -> None:
    gate = threading.Event()
    old = Reads("old", gate)
    reads = SwitchableReads(cast(Any, old))
    answers: list[str] = []
    slow = threading.Thread(target=lambda: answers.append(reads.get_process("a", "p")))
    slow.start()
    assert old.entered.wait(5)
    drained = reads.switch(cast(Any, Reads("new")))
    assert reads.get_process("a", "p") == "new"  # later calls go to the new one at once
    assert not drained.is_set()  # ...while the old one still answers its read
    gate.set()
    slow.join(5)
    assert drained.wait(1) and answers == ["old"]
