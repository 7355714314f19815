"""``runledger tail``: decoded events as JSON lines, live, with filters.

One JSON object per line: the envelope fields, ``data`` (the payload), and
``partition``/``offset`` (where it was read). Lines are flushed one by one, so a pipe
to ``jq`` sees each event as it arrives. Undecodable messages are reported on stderr.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

from runledger.audit import parse_time
from streams.consumer import Delivery, LedgerConsumer, Start, Undecodable, event_document
from streams.domain.events import Event
from streams.topics import require_topics


@dataclass(frozen=True, slots=True)
class Filter:
    """``types``: exact event types (``process.progress``) or aggregate types
    (``process`` matches every ``process.*``); ``accounts``: exact account names.
    Empty means everything."""

    types: frozenset[str] = frozenset()
    accounts: frozenset[str] = frozenset()

    def __call__(self, event: Event) -> bool:
        if self.accounts and event.account not in self.accounts:
            return False
        return not self.types or event.type in self.types or event.aggregate_type in self.types


def parse_start(text: str) -> Start:
    """``beginning``, ``end`` or an ISO time (as ms for offsets_for_times); ValueError.

    A time before 1970 is the beginning: Kafka has no earlier timestamps, and
    offsets_for_times refuses negative ones.
    """
    if text in ("beginning", "end"):
        return text  # type: ignore[return-value]
    return max(0, parse_time(text) // 1000)


def line(delivery: Delivery) -> str:
    doc = event_document(delivery.event)
    doc["partition"] = delivery.partition
    doc["offset"] = delivery.offset
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


async def tail(
    bootstrap: str,
    topic: str,
    *,
    start: Start,
    keep: Callable[[Event], bool],
    out: TextIO | None = None,
    max_events: int | None = None,
    idle_timeout_s: float | None = None,
    warn: Callable[[str], None] | None = None,
) -> int:
    """Print matching events until ``max_events`` were printed or nothing arrived for
    ``idle_timeout_s`` (forever when both are None). Returns the count printed.
    TopicError at once when ``topic`` does not exist; ConsumerError when it cannot be read."""

    out = out or sys.stdout
    say = warn or (lambda m: print(m, file=sys.stderr))

    def undecodable(u: Undecodable) -> None:
        say(f"runledger tail: skipped partition {u.partition} offset {u.offset}: {u.error}")

    await require_topics(bootstrap, [topic])  # fail at once, not after a metadata wait
    printed = 0
    last = time.monotonic()
    async with LedgerConsumer(
        bootstrap, topic, start=start, on_undecodable=undecodable, client_id="runledger-tail"
    ) as consumer:
        while True:
            got: Sequence[Delivery] = await consumer.poll(0.5)
            if got:
                last = time.monotonic()
            for d in got:
                if not keep(d.event):
                    continue
                out.write(line(d) + "\n")
                out.flush()
                printed += 1
                if max_events is not None and printed >= max_events:
                    return printed
            if idle_timeout_s is not None and time.monotonic() - last >= idle_timeout_s:
                return printed
