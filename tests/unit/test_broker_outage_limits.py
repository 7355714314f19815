"""What a service does while its broker is away, without a broker: every wait on Kafka
that a caller is blocked on is bounded, retry loops are paced, and their log lines are
counted rather than repeated (the drill with a real broker is
tests/integration/test_broker_outage.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka.cluster import ClusterMetadata
from aiokafka.errors import ProducerFenced

from projections.projector import Projector
from runledger.logs import RepeatedLines
from schemas import default_codec
from streams.bus import CommandBus
from streams.consumer_stop import stop_consumer
from streams.domain.commands import Command, parse_body
from streams.publisher import Publisher, PublishError, TransactionTimedOut
from streams.topics import Topics

NOBODY = "127.0.0.1:1"  # nothing listens there: every connection is refused


class _SilentProducer:
    """An aiokafka producer whose broker never answers: a send is queued, never acked."""

    def __init__(self) -> None:
        self.futures: list[asyncio.Future[Any]] = []

    async def send(self, topic: str, value: bytes, **_: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        return future


def _command() -> Command:
    return Command(
        "c1", "process", "p1", 0, "acct", "actor", "c1", "c1",
        parse_body("process.progress", {"progress": 5}), reply_to="node-a",
    )  # fmt: skip


def test_a_command_kafka_does_not_acknowledge_fails_within_the_command_timeout() -> None:
    """Was: the HTTP request waited as long as the broker was away (26 s in the drill,
    for ever in a longer outage). Now PublishError (the API's 503) within the command
    timeout, while the producer keeps the message (its future is not cancelled)."""
    silent = _SilentProducer()

    async def scenario() -> tuple[BaseException | None, float]:
        bus = CommandBus(NOBODY, Topics("outage."), default_codec(), node_id="node-a")
        await bus._publisher.stop()  # the real one never started: closed, not leaked
        bus._publisher._producer = silent
        bus.ack_timeout_s = 60  # for a command timeout of 0 ("answer 202 at once")
        began = time.monotonic()
        try:
            await asyncio.wait_for(bus.execute(_command(), 0.3), 5)
        except (PublishError, TimeoutError) as exc:
            return exc, time.monotonic() - began
        return None, time.monotonic() - began

    error, took = asyncio.run(scenario())
    assert isinstance(error, PublishError), f"not a PublishError after {took:.1f} s: {error!r}"
    assert "within 0.3 s" in str(error)
    assert took < 2
    assert silent.futures and not silent.futures[0].cancelled()


def test_a_submitted_command_fails_the_same_way_and_is_not_tracked() -> None:
    silent = _SilentProducer()

    async def scenario() -> CommandBus:
        bus = CommandBus(NOBODY, Topics("outage."), default_codec(), node_id="node-a")
        await bus._publisher.stop()  # the real one never started: closed, not leaked
        bus._publisher._producer = silent
        bus.ack_timeout_s = 0.2
        with pytest.raises(PublishError):
            await asyncio.wait_for(bus.submit(_command()), 5)
        return bus

    bus = asyncio.run(scenario())
    assert bus.status("c1") is None


def test_a_failed_metadata_refresh_of_a_publisher_is_paced() -> None:
    """Was: with the broker gone a refresh failed at once and aiokafka's sender asked
    again at once: 100 % CPU and ~15,000 log lines a second. Now each failed refresh
    takes half a second, so a loop waiting on it is paced too."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

    async def attempts_in(seconds: float) -> int:
        publisher = Publisher(NOBODY)
        client = publisher._producer.client
        cluster = ClusterMetadata()
        count = 0
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                assert await client._metadata_update(cluster, None) is False
                count += 1
        finally:
            await publisher.stop()
        return count

    assert asyncio.run(attempts_in(1.0)) <= 3


def test_catching_up_is_bounded_when_the_broker_does_not_answer() -> None:
    """Was: ``GET ...?wait=true`` asked the broker for the partition ends without a
    bound and hung for as long as the broker was away (``Prefer: wait=3`` took 13 s)."""

    async def scenario() -> tuple[bool | None, float]:
        projector = Projector(
            None,  # type: ignore[arg-type]  # no store is read before start()
            bootstrap=NOBODY,
            topics=Topics("outage."),
            codec=default_codec(),
        )
        projector._started.set()  # running, but its broker is gone

        async def never() -> dict[int, int]:
            await asyncio.sleep(3600)
            return {}

        projector.end_offsets = never  # type: ignore[method-assign]
        began = time.monotonic()
        try:
            caught = await asyncio.wait_for(projector.catch_up(0.3), 5)
        except TimeoutError:
            caught = None
        return caught, time.monotonic() - began

    caught, took = asyncio.run(scenario())
    assert caught is False, f"catch_up gave {caught!r} after {took:.1f} s"
    assert took < 2


def _record(name: str, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_repeated_library_lines_are_counted_not_repeated() -> None:
    now = [100.0]
    lines = RepeatedLines(window_s=30, clock=lambda: now[0])
    refused = "Unable connect to node with id %s: %s"
    passed = [lines.filter(_record("aiokafka", refused, 1, "refused")) for _ in range(500)]
    assert passed.count(True) == 1
    # Another kind shows at once; runledger's own lines are never held back.
    assert lines.filter(_record("aiokafka", "Unable to update metadata from %s", [1]))
    assert all(lines.filter(_record("runledger.node", refused, 1, "x")) for _ in range(5))
    now[0] += 31
    after = _record("aiokafka", refused, 1, "refused")
    assert lines.filter(after)
    assert after.getMessage() == (
        "Unable connect to node with id 1: refused [499 more like it in the last 30 s left out]"
    )
    assert not lines.filter(_record("aiokafka", refused, 1, "refused"))


class _ConsumerStoppedDuringOutage:
    """What aiokafka's consumer does on stop() while its broker is away: the fetcher
    cancels a fetch that sleeps its retry backoff, and that CancelledError comes out."""

    def __init__(self, pending: asyncio.Task[None]) -> None:
        self._fetcher = type("Fetcher", (), {"_pending_tasks": {pending}})()
        self._client = self
        self.closed = False

    async def stop(self) -> None:
        raise asyncio.CancelledError

    async def close(self) -> None:
        self.closed = True


def test_a_consumer_stopped_during_an_outage_is_stopped_not_cancelled() -> None:
    """Was: the orchestrator and the runner, asked to stop while the broker was away,
    ended with a CancelledError traceback, status 1 and unclosed clients."""

    async def scenario() -> tuple[_ConsumerStoppedDuringOutage, asyncio.Task[None]]:
        retrying = asyncio.create_task(asyncio.sleep(3600))
        consumer = _ConsumerStoppedDuringOutage(retrying)
        await stop_consumer(consumer)
        return consumer, retrying

    consumer, retrying = asyncio.run(scenario())
    assert consumer.closed and retrying.cancelled()


def test_stopping_a_consumer_still_obeys_a_cancel_of_the_caller() -> None:
    async def scenario() -> bool:
        started = asyncio.Event()

        class Slow(_ConsumerStoppedDuringOutage):
            async def stop(self) -> None:
                started.set()
                await asyncio.sleep(3600)

        consumer = Slow(asyncio.create_task(asyncio.sleep(0)))
        stopping = asyncio.create_task(stop_consumer(consumer))
        await started.wait()
        stopping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stopping
        return consumer.closed

    assert asyncio.run(scenario()) is False


class _FencedOnCommit:
    """A transactional producer whose commit the broker answers with a bumped epoch."""

    def transaction(self) -> Any:
        @contextlib.asynccontextmanager
        async def fenced() -> AsyncIterator[None]:
            yield
            raise ProducerFenced()

        return fenced()


def _commit_after(open_s: float) -> BaseException | None:
    now = [1000.0]

    async def scenario() -> BaseException | None:
        publisher = Publisher(NOBODY, transactional_id="t", clock=lambda: now[0])
        await publisher.stop()  # the real producer never started
        publisher._producer = _FencedOnCommit()
        try:
            async with publisher.transaction():
                now[0] += open_s
        except (ProducerFenced, PublishError) as exc:
            return exc
        return None

    return asyncio.run(scenario())


def test_a_transaction_the_broker_aborted_after_a_long_outage_is_not_a_fencing() -> None:
    """Was: after a 70 s outage the broker aborted the orchestrator's open transaction,
    aiokafka said ProducerFenced, and the orchestrator stopped for good (exit 0,
    "another orchestrator took over"). Now a failure like any other: it restarts."""
    error = _commit_after(75)
    assert isinstance(error, TransactionTimedOut), repr(error)
    assert not isinstance(error, ProducerFenced)
    assert "open for 75 s" in str(error)


def test_a_short_transaction_fenced_is_still_a_fencing() -> None:
    """A newer instance fenced this one: it must stop, as before, not fence it back."""
    assert isinstance(_commit_after(2), ProducerFenced)
