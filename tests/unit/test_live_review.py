"""Review of the live read path with no broker: the Projector's run loop over a fake
consumer and a real DuckDB store, the Broadcaster and the node's Process cache."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition

from api.broadcaster import Applied, Broadcaster
from api.process_cache import ProcessCache
from projections.errors import ProjectorError, StoreError
from projections.fold import REJECTED, SEQUENCE_GAP, UNDECODABLE, Batch, DeadLetter, fold_batch
from projections.projector import Projector
from projections.store import Store
from streams.domain.events import Event
from streams.domain.process import ProcessState
from streams.topics import Topics
from tests.unit.test_projections_fold import TOPIC, folded, lifecycle, messages

log = logging.getLogger(__name__)


@dataclass
class Record:
    """What the projector reads of an aiokafka ConsumerRecord."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class FakeConsumer:
    """Hands out scripted fetches; ``position`` may run past the records (markers)."""

    def __init__(self, topic: str, fetches: Sequence[tuple[list[Any], dict[int, int]]]) -> None:
        self.topic = topic
        self._fetches = list(fetches)
        self._position: dict[int, int] = {}
        self.stopped = False

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        if not self._fetches:
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        records, positions = self._fetches.pop(0)
        out: dict[TopicPartition, list[Any]] = {}
        for m in records:
            out.setdefault(TopicPartition(self.topic, m.partition), []).append(
                Record(self.topic, m.partition, m.offset, m.key, m.value)
            )
        self._position.update(positions)
        return out

    async def position(self, tp: TopicPartition) -> int:
        return self._position.get(tp.partition, 0)

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self._position.get(tp.partition, 0) for tp in tps}

    @property
    def done(self) -> bool:
        return not self._fetches

    async def stop(self) -> None:
        self.stopped = True


class FakeDeadLetters:
    def __init__(self, fail: int = 0) -> None:
        self.sent: list[DeadLetter] = []
        self._fail = fail

    async def publish(self, source_topic: str, letters: Sequence[DeadLetter]) -> None:
        if self._fail:
            self._fail -= 1
            raise ProjectorError(f"publishing {len(letters)} dead letters failed: timeout")
        self.sent.extend(letters)

    async def stop(self) -> None:
        pass


def projector_over(
    store: Store, consumer: FakeConsumer, dead: FakeDeadLetters, partitions: int = 2
) -> Projector:
    """A Projector that skips start(): its Kafka clients are the fakes."""
    projector = Projector(store, bootstrap="unused:1", topics=Topics("test"), poll_timeout_ms=5)
    projector.topic = TOPIC
    projector._consumer = consumer
    projector._dead_letters = dead  # type: ignore[assignment]
    projector._partitions = [TopicPartition(TOPIC, p) for p in range(partitions)]
    stored = store.positions(TOPIC)
    projector._consumed = dict(stored)
    projector.watermark.advance_all(stored)
    projector._started.set()
    return projector


async def run_until_drained(projector: Projector, consumer: FakeConsumer) -> None:
    task = asyncio.create_task(projector.run())
    for _ in range(400):
        if consumer.done and projector.watermark.reached(
            await consumer.end_offsets(list(projector._partitions))
        ):
            break
        if task.done():
            break
        await asyncio.sleep(0.01)
    await projector.stop()
    await task


def mixed_fetch() -> tuple[list[Any], dict[int, int], dict[str, list[Event]]]:
    """One fetch over two partitions and two accounts with every kind of bad message:
    a duplicate, a seq gap, an event evolve refuses, garbage and an empty value; the
    position of partition 1 runs past its last record (a transaction marker)."""
    a = lifecycle("p-a", account="acme")
    b = lifecycle("p-b", account="globex")
    gap = lifecycle("p-g", account="acme")
    refused = replace(lifecycle("p-r", account="globex")[1], seq=1)  # started, no created
    part0 = messages([*a[:3], a[1], gap[0], gap[2], *a[3:]], partition=0)
    part1 = messages([*b, refused], partition=1)
    garbage = replace(part1[0], offset=len(part1), value=b"\xc3\x01garbage")
    empty = replace(part1[0], offset=len(part1) + 1, value=None)
    records = [*part0, *part1, garbage, empty]
    positions = {0: len(part0), 1: len(part1) + 3}  # +1: a commit marker after them
    return records, positions, {"p-a": a, "p-b": b, "p-g": gap[:1]}


def test_bad_messages_go_to_the_dead_letters_and_positions_pass_them(tmp_path: Path) -> None:
    async def main() -> None:
        with Store(tmp_path / "node.duckdb") as store:
            records, positions, wanted = mixed_fetch()
            consumer = FakeConsumer(TOPIC, [(records, positions)])
            dead = FakeDeadLetters()
            projector = projector_over(store, consumer, dead)
            told: list[Batch] = []
            projector.batch_listeners.append(told.append)
            await run_until_drained(projector, consumer)
            assert store.positions(TOPIC) == positions
            assert projector.applied == positions
            assert sorted(d.reason for d in dead.sent) == sorted(
                [SEQUENCE_GAP, REJECTED, UNDECODABLE, UNDECODABLE]
            )
            stats = projector.stats
            assert (stats.duplicates_dropped, stats.dead_lettered) == (1, 4)
            loaded = store.load_processes(list(wanted))
            for pid, events in wanted.items():
                assert loaded[pid] == folded(events)
            assert "p-r" not in store.load_processes(["p-r"])
            assert sum(len(b.events) for b in told) == sum(map(len, wanted.values()))

    asyncio.run(main())


def test_a_dead_letter_publish_failure_stores_no_position_past_it(tmp_path: Path) -> None:
    async def main() -> None:
        with Store(tmp_path / "node.duckdb") as store:
            records, positions, wanted = mixed_fetch()
            consumer = FakeConsumer(TOPIC, [(records, positions)])
            dead = FakeDeadLetters(fail=1)
            projector = projector_over(store, consumer, dead)
            with pytest.raises(ProjectorError, match="dead letters"):
                await projector.run()
            assert store.positions(TOPIC) == {}
            assert dead.sent == []
            # The next run starts over from the stored positions: the same messages again.
            consumer = FakeConsumer(TOPIC, [(records, positions)])
            projector = projector_over(store, consumer, dead)
            await run_until_drained(projector, consumer)
            assert store.positions(TOPIC) == positions
            assert len(dead.sent) == 4
            loaded = store.load_processes(list(wanted))
            for pid, events in wanted.items():
                assert loaded[pid] == folded(events)

    asyncio.run(main())


class SlowStore(Store):
    """A store whose writes take a while (so the next batch folds meanwhile) and whose
    ``fail_at``-th write fails after its rows went in (the transaction rolls back)."""

    def __init__(self, path: Path, fail_at: int = 0, delay: float = 0.02) -> None:
        super().__init__(path)
        self.writes = 0
        self._fail_at = fail_at
        self._delay = delay

    def write(self, batch: Batch) -> bool:
        time.sleep(self._delay)
        self.writes += 1
        if self.writes == self._fail_at:
            raise StoreError("disk full")
        return super().write(batch)


def interleaved(n: int = 6) -> tuple[list[list[Any]], dict[str, list[Event]]]:
    """Several Processes' lifecycles interleaved on partition 0, cut in small fetches."""
    histories = {f"p-{i}": lifecycle(f"p-{i}", account=f"acct-{i % 3}") for i in range(n)}
    order = [ev for step in zip(*histories.values(), strict=True) for ev in step]
    msgs = messages(order, partition=0)
    return [msgs[i : i + 4] for i in range(0, len(msgs), 4)], histories


@pytest.mark.parametrize("cache_size", [1, 3, 100])
def test_pipelined_batches_over_a_small_cache_fold_like_one_pass(
    tmp_path: Path, cache_size: int
) -> None:
    async def main() -> None:
        chunks, histories = interleaved()
        with SlowStore(tmp_path / "node.duckdb") as store:
            fetches = [(chunk, {0: chunk[-1].offset + 1}) for chunk in chunks]
            consumer = FakeConsumer(TOPIC, fetches)
            projector = projector_over(store, consumer, FakeDeadLetters())
            projector._cache = type(projector._cache)(cache_size)
            await run_until_drained(projector, consumer)
            assert projector.stats.dead_lettered == 0
            loaded = store.load_processes(list(histories))
            for pid, events in histories.items():
                assert loaded[pid] == folded(events)

    asyncio.run(main())


def test_a_failed_write_leaves_no_state_in_the_cache_and_the_rerun_loses_nothing(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        chunks, histories = interleaved()
        fetches = [(chunk, {0: chunk[-1].offset + 1}) for chunk in chunks]
        with SlowStore(tmp_path / "node.duckdb", fail_at=3) as store:
            consumer = FakeConsumer(TOPIC, fetches)
            projector = projector_over(store, consumer, FakeDeadLetters())
            with pytest.raises(Exception, match="disk full"):
                await projector.run()
            assert len(projector._cache) == 0
            stored = store.positions(TOPIC)
            assert projector.applied[0] == stored[0]
            rest = [(c, p) for c, p in fetches if c[-1].offset >= stored[0]]
            rest[0] = ([m for m in rest[0][0] if m.offset >= stored[0]], rest[0][1])
            consumer = FakeConsumer(TOPIC, rest)
            projector2 = projector_over(store, consumer, FakeDeadLetters())
            await run_until_drained(projector2, consumer)
            assert projector2.stats.duplicates_dropped == 0
            loaded = store.load_processes(list(histories))
            for pid, events in histories.items():
                assert loaded[pid] == folded(events)

    asyncio.run(main())


def streamed_batch(pid: str = "p-1", account: str = "acme", first: int = 0) -> Batch:
    return fold_batch({}, messages(lifecycle(pid, account), partition=0, first=first), topic=TOPIC)


def test_a_subscription_whose_filter_raises_is_dropped_and_the_others_still_get_events() -> None:
    async def main() -> None:
        broadcaster = Broadcaster(buffer=100)

        def broken(a: Applied) -> bool:
            raise AttributeError("no such field")

        subs = [broadcaster.subscribe(lambda a: True) for _ in range(3)]
        bad = broadcaster.subscribe(broken)
        subs += [broadcaster.subscribe(lambda a: True, aggregate=("process", "p-1"))]
        broadcaster.publish_batch(streamed_batch())
        for sub in subs:
            assert [a.row.seq for a in await sub.take(0.1)] == [1, 2, 3, 4, 5, 6]
        assert bad.dropped  # its stream ends with the dropped comment; the client resumes
        assert broadcaster.subscribers == len(subs)

    asyncio.run(main())


def test_accounts_in_one_batch_reach_only_their_own_streams() -> None:
    async def main() -> None:
        broadcaster = Broadcaster(buffer=100)
        a = broadcaster.subscribe(lambda x: x.row.account == "acme")
        b = broadcaster.subscribe(lambda x: x.row.account == "globex")
        one = fold_batch(
            {},
            messages([*lifecycle("p-a", "acme"), *lifecycle("p-b", "globex")], partition=0),
            topic=TOPIC,
        )
        broadcaster.publish_batch(one)
        assert {x.row.aggregate_id for x in await a.take(0.1)} == {"p-a"}
        assert {x.row.aggregate_id for x in await b.take(0.1)} == {"p-b"}

    asyncio.run(main())


def test_a_slow_stream_is_dropped_past_its_buffer_and_told_at_once() -> None:
    async def main() -> None:
        broadcaster = Broadcaster(buffer=8)
        slow = broadcaster.subscribe(lambda a: True)
        fast = broadcaster.subscribe(lambda a: True)
        broadcaster.publish_batch(streamed_batch("p-1"))
        assert len(await fast.take(0.1)) == 6
        broadcaster.publish_batch(streamed_batch("p-2", first=6))
        assert slow.dropped and not fast.dropped
        assert await slow.take(5.0) == []  # no wait: the stream ends now
        assert broadcaster.dropped == 1 and broadcaster.subscribers == 1

    asyncio.run(main())


def test_a_batch_that_cannot_be_rendered_ends_every_stream_rather_than_skip_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def main() -> None:
        broadcaster = Broadcaster(buffer=100)
        wide = broadcaster.subscribe(lambda a: True)
        one = broadcaster.subscribe(lambda a: True, aggregate=("process", "p-1"))
        batch = streamed_batch()

        def failing(*args: Any) -> Any:
            raise ValueError("cannot render")

        monkeypatch.setattr("api.broadcaster.event_row", failing)
        broadcaster.publish_batch(batch)
        assert wide.dropped and one.dropped
        assert await wide.take(5.0) == [] and await one.take(5.0) == []
        assert broadcaster.subscribers == 0 and broadcaster.dropped == 2

    asyncio.run(main())


def test_a_listener_that_raises_stops_neither_the_others_nor_the_projection(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        chunks, histories = interleaved(3)
        with Store(tmp_path / "node.duckdb") as store:
            fetches = [(chunk, {0: chunk[-1].offset + 1}) for chunk in chunks]
            consumer = FakeConsumer(TOPIC, fetches)
            projector = projector_over(store, consumer, FakeDeadLetters())
            told: list[Event] = []

            def broken(events: list[Event]) -> None:
                raise RuntimeError("listener bug")

            def broken_batch(batch: Batch) -> None:
                raise RuntimeError("batch listener bug")

            projector.listeners += [broken, told.extend]
            projector.batch_listeners += [broken_batch]
            await run_until_drained(projector, consumer)
            assert len(told) == sum(map(len, histories.values()))
            assert store.positions(TOPIC) == {0: len(told)}

    asyncio.run(main())


def test_the_process_cache_never_keeps_a_state_older_than_a_commit() -> None:
    old, new = folded(lifecycle("p-1")[:3]), folded(lifecycle("p-1")[:4])
    event = lifecycle("p-1")[3]
    assert isinstance(old, ProcessState) and isinstance(new, ProcessState)
    cache = ProcessCache()
    # A read took the version, read the old state; the batch committed and was told
    # before the read returned: the read is not remembered.
    version = cache.version
    cache.forget([event])
    cache.put(old, version)
    assert cache.get("acme", "p-1") is None
    # The read returned before the projector told its commit: the commit drops it.
    version = cache.version
    cache.put(old, version)
    cache.forget([event])
    assert cache.get("acme", "p-1") is None
    # A swap: reads begun on the old file are not remembered.
    version = cache.version
    cache.clear()
    cache.put(new, version)
    assert cache.get("acme", "p-1") is None
    cache.put(new, cache.version)
    assert cache.get("acme", "p-1") is new
    assert cache.get("globex", "p-1") is None  # another account's id answers nothing
