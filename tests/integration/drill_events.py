"""Events written straight onto a test ledger's events topic, without a decider: the
inputs of the tail and consumer drills (tests/integration/test_tail_drill.py,
test_consumer_drill.py), which read the topic and need no stack.

Each Process ``p<n>`` of :func:`write_events` has ``created`` then ``progress``
events, so every event is identified by ``(aggregate_id, seq)``.
"""

from __future__ import annotations

import asyncio
import time

from schemas import default_codec
from streams import serde
from streams.domain import events as e
from streams.publisher import Publisher
from streams.topics import Topics, ensure_topics

PARTITIONS = 2
PER_PROCESS = 5


def make_event(pid: str, seq: int, account: str = "acme") -> e.Event:
    data: e.Payload = e.ProcessCreated("drill") if seq == 1 else e.ProgressReported(float(seq))
    return e.Event(
        event_id=e.event_id_for("process", pid, seq),
        aggregate_type="process",
        aggregate_id=pid,
        seq=seq,
        type=data.TYPE,
        occurred_at=time.time_ns() // 1000,
        account=account,
        actor="drill",
        command_id=f"cmd-{pid}-{seq}",
        correlation_id="corr",
        causation_id="cause",
        data=data,
    )


async def make_ledger(bootstrap: str, prefix: str) -> str:
    """The events topic of a new ledger under ``prefix`` (topics created)."""
    topics = Topics(prefix)
    await ensure_topics(bootstrap, topics, PARTITIONS)
    return topics.events


async def write_events(
    bootstrap: str,
    topic: str,
    count: int,
    *,
    first: int = 0,
    rate: float | None = None,
    garbage_after: int | None = None,
    account: str | None = None,
) -> list[tuple[str, int]]:
    """Write events ``first`` .. ``first + count - 1`` (event i is seq ``i % 5 + 1`` of
    process ``p<i // 5>``), at ``rate`` per second when given; after the event number
    ``garbage_after``, a message that is no event at all. The account is ``account``,
    else ``acme`` and ``other`` by turns per process. Returns the events'
    ``(aggregate_id, seq)`` in the order written."""
    codec = default_codec()
    publisher = Publisher(bootstrap, client_id="drill")
    await publisher.start()
    written: list[tuple[str, int]] = []
    started = time.monotonic()
    try:
        pending = []
        for n, i in enumerate(range(first, first + count)):
            pid, seq = f"p{i // PER_PROCESS}", i % PER_PROCESS + 1
            owner = account or ("acme" if (i // PER_PROCESS) % 2 == 0 else "other")
            event = make_event(pid, seq, owner)
            value = serde.encode_event(codec, event)
            pending.append(await publisher.send(topic, pid.encode(), value))
            written.append((pid, seq))
            if garbage_after is not None and i == garbage_after:
                pending.append(await publisher.send(topic, pid.encode(), b"\x00not an event"))
            if rate is not None:
                delay = started + (n + 1) / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
        await asyncio.gather(*pending)
    finally:
        await publisher.stop()
    return written
