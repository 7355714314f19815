"""``runledger tail``: decoded events as JSON lines, live, with filters.

One JSON object per line: the envelope fields, ``data`` (the payload), and
``partition``/``offset`` (where it was read). Each batch read is flushed as soon as it
is written, so a pipe to ``jq`` sees events as they arrive. Undecodable messages are
reported on stderr. A reader that closes the pipe (``| head -3``) ends tail at once,
also while no event flows: see :func:`reader_gone`.
"""

from __future__ import annotations

import difflib
import json
import os
import select
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

from runledger.audit import parse_time
from streams.consumer import Delivery, LedgerConsumer, Start, Undecodable, event_document
from streams.domain.aggregates import EVOLVERS
from streams.domain.events import PAYLOAD_TYPES, Event
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


def check_types(kinds: Sequence[str]) -> None:
    """ValueError naming the first of ``kinds`` that is neither an event type
    (``process.progress``) nor an aggregate type (``process``), with the closest known
    name: a misspelt filter would otherwise match nothing, silently, forever."""
    known = sorted(set(EVOLVERS) | set(PAYLOAD_TYPES))
    for kind in kinds:
        if kind in known:
            continue
        close = difflib.get_close_matches(kind, known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else "known: " + ", ".join(EVOLVERS)
        raise ValueError(f"{kind!r} names no aggregate type nor event type; {hint}")


def parse_start(text: str) -> Start:
    """``beginning``, ``end`` or an ISO time (as ms for offsets_for_times); ValueError.

    A time before 1970 is the beginning: Kafka has no earlier timestamps, and
    offsets_for_times refuses negative ones.
    """
    if text in ("beginning", "end"):
        return text  # type: ignore[return-value]
    return max(0, parse_time(text) // 1000)


def reader_gone(out: TextIO) -> bool:
    """Whether ``out`` is a pipe or socket whose reader went away (``| head`` exited).

    A write would fail then with BrokenPipeError, but tail writes only when an event
    comes: without this check ``runledger tail | head -3`` waits forever after the
    third line on a quiet ledger (GNU ``tail -f`` checks the same way). Linux flags the
    write end of a pipe without a reader with POLLERR, a closed socket or a hung-up
    terminal with POLLHUP; files and captured output (no descriptor) are never gone.
    """
    try:
        fd = out.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation: no descriptor
        return False
    poller = select.poll()
    poller.register(fd, 0)  # no event asked: only the error conditions are reported
    return any(flags & (select.POLLERR | select.POLLHUP) for _, flags in poller.poll(0))


def detach(out: TextIO) -> None:
    """Point ``out``'s descriptor at /dev/null after its reader went away, so that what
    is left in its buffer can be flushed at exit without a second BrokenPipeError
    ("Exception ignored ... BrokenPipeError" on stderr)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):  # no descriptor: nothing to flush
        pass


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

    A time ``start`` also skips records stamped before it (a time in the future prints
    nothing until then). TopicError at once when ``topic`` does not exist;
    ConsumerError when it cannot be read; BrokenPipeError when ``out``'s reader went
    away (checked at least every half second).
    """

    out = out or sys.stdout
    say = warn or (lambda m: print(m, file=sys.stderr))
    since_ms = start if isinstance(start, int) else None

    def undecodable(u: Undecodable) -> None:
        say(f"runledger tail: skipped partition {u.partition} offset {u.offset}: {u.error}")

    await require_topics(bootstrap, [topic])  # fail at once, not after a metadata wait
    printed = 0
    async with LedgerConsumer(
        bootstrap, topic, start=start, on_undecodable=undecodable, client_id="runledger-tail"
    ) as consumer:
        last = time.monotonic()  # idle since the consumer is ready, not since the launch
        while True:
            got: Sequence[Delivery] = await consumer.poll(0.5)
            lines = []
            for d in got:
                if since_ms is not None and d.timestamp_ms < since_ms:
                    continue
                if not keep(d.event):
                    continue
                lines.append(line(d))
                if max_events is not None and printed + len(lines) >= max_events:
                    break
            if lines:  # one write and one flush per batch rather than per line
                out.write("\n".join(lines) + "\n")
                out.flush()
                printed += len(lines)
            elif reader_gone(out):  # also while events flow that the filter drops
                raise BrokenPipeError("the reader of tail's output went away")
            if max_events is not None and printed >= max_events:
                return printed
            if got:
                # After the write: a slow reader (a full pipe blocks the write) is not
                # an idle ledger, and must not end tail while events are waiting.
                last = time.monotonic()
            elif idle_timeout_s is not None and time.monotonic() - last >= idle_timeout_s:
                return printed
