"""``runledger dlq``: what is in ``ledger.dlq``, for the operator who must act on it.

Reads the dead-letter topic (every partition, read_committed) from a start to the end
it had when the command began, or live with ``follow``, and prints one JSON line per
dead letter or a summary table; what a letter says and how both writers' headers are
read is in :mod:`runledger.dlq_letters`.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import AsyncGenerator, Callable, Iterable
from typing import Any, TextIO

from runledger.dlq_letters import Letter, Summary, letter_document
from runledger.tail import reader_gone
from schemas import Codec
from streams.consumer_start import Start, seek_start


async def read_letters(
    bootstrap: str, topic: str, *, start: Start, follow: bool
) -> AsyncGenerator[list[Letter], None]:
    """Batches of ``topic``'s records (every partition, read_committed) from ``start``:
    up to the end offsets the topic had at the call, or forever with ``follow``.
    Empty batches when nothing came for half a second, so the caller can time out.
    ConsumerError when the broker or the topic cannot be read."""
    from aiokafka import TopicPartition
    from aiokafka.errors import KafkaError

    from streams.reader import ConsumerError, read_committed_client
    from streams.topics import partitions_of

    consumer = read_committed_client(bootstrap, "runledger-dlq")
    try:
        await consumer.start()
        tps = [TopicPartition(topic, p) for p in await partitions_of(consumer, topic)]
        consumer.assign(tps)
        ends = dict(await consumer.end_offsets(tps))
        await seek_start(consumer, tps, {}, start)
        while True:
            if not follow and all([await consumer.position(tp) >= ends[tp] for tp in tps]):
                return
            fetched = await consumer.getmany(timeout_ms=500)
            yield [
                Letter(r.partition, r.offset, r.timestamp, r.key, r.value, tuple(r.headers))
                for tp in sorted(fetched)
                for r in fetched[tp]
                if follow or r.offset < ends[tp]
            ]
    except KafkaError as exc:
        raise ConsumerError(f"cannot read {topic}: {exc}") from exc
    finally:
        await consumer.stop()


async def dlq(
    bootstrap: str,
    topic: str,
    codec: Codec,
    *,
    start: Start,
    keep: Callable[[Letter], bool],
    follow: bool = False,
    summary: Summary | None = None,
    out: TextIO | None = None,
    max_letters: int | None = None,
    idle_timeout_s: float | None = None,
) -> int:
    """Print each matching dead letter as a JSON line, or with ``summary`` only count it
    there; stop at the end the topic had at the start (``follow``: never), after
    ``max_letters`` or ``idle_timeout_s`` without a record. Returns the letters kept.

    TopicError at once when ``topic`` does not exist; ConsumerError when it cannot be
    read; BrokenPipeError when ``out``'s reader went away.
    """
    from streams.topics import require_topics

    out = out or sys.stdout
    since_ms = start if isinstance(start, int) else None
    await require_topics(bootstrap, [topic])  # fail at once, not after a metadata wait
    kept = 0
    last = time.monotonic()
    letters = read_letters(bootstrap, topic, start=start, follow=follow)
    async with contextlib.aclosing(letters):  # the consumer stops when this loop does
        async for batch in letters:
            chosen = _chosen(
                batch, keep, since_ms, None if max_letters is None else max_letters - kept
            )
            kept += len(chosen)
            if summary is not None:
                for letter in chosen:
                    summary.add(letter)
            elif chosen:
                out.write("".join(_json_line(letter_document(x, codec)) for x in chosen))
                out.flush()
            elif reader_gone(out):
                raise BrokenPipeError("the reader of dlq's output went away")
            if max_letters is not None and kept >= max_letters:
                break
            if batch:
                last = time.monotonic()
            elif idle_timeout_s is not None and time.monotonic() - last >= idle_timeout_s:
                break
    return kept


def _chosen(
    batch: Iterable[Letter], keep: Callable[[Letter], bool], since_ms: int | None, room: int | None
) -> list[Letter]:
    chosen = [x for x in batch if (since_ms is None or x.timestamp_ms >= since_ms) and keep(x)]
    return chosen if room is None else chosen[:room]


def _json_line(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n"
