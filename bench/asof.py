"""As-of on an aggregate with 10,000 events against a plain read of its current state.

Produces one Process with N events (created, then progress reports) among 20,000
events of other Processes (the generator of ``bench/projector.py``) to a fresh topic
prefix, replays them into a DuckDB file, then measures, each the median of several runs:

(a) the API's ``GET /process/{id}?as_of=`` minus HTTP (``api/as_of.py``): the
    aggregate's rows of the read model's ``events`` table up to the time
    (``Queries.events_until``), back to events (``event_of_row``), folded with
    ``evolve`` up to the time (``state_as_of``);
(b) ``runledger as-of`` minus interpreter start: read the aggregate's partition of
    ``ledger.events`` and ``ledger.outcomes`` from the broker, keep its key, decode,
    fold up to the time (``runledger.audit``);
(c) the fold alone (events already decoded in memory);
(d) a plain read of the current state from the read model (``Queries.get_process``,
    what the API's ``GET /process/{id}`` reads without its cache);
(e) for information, what an SSE reconnect of the Process's stream reads: folding the
    whole history (the general resume), and, when the client has seen the newest event
    already, only that event and the current state (``caught_up`` in
    ``api/stream_kinds.py``).

The last line is ``ratio: <API as-of seconds / plain read seconds>``; the CLI's ratio
is printed above it.

    .venv/bin/python bench/asof.py --bootstrap 127.0.0.1:19092 [--events N]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaProducer
from projector import produce  # bench/projector.py

from projections.queries import Queries
from projections.replay import Progress, replay
from projections.rows import event_of_row
from projections.store import Store
from runledger.audit import load, state_as_of
from schemas import default_codec
from streams.consumer import read_to_end
from streams.domain import commands as c
from streams.domain import history, process
from streams.domain.aggregates import stream_key
from streams.serde import encode_event
from streams.topics import Topics, ensure_topics

T0 = 1_767_225_600_000_000
NOISE = 20_000


async def produce_one(bootstrap: str, topics: Topics, pid: str, total: int) -> int:
    """``total`` events of Process ``pid``; returns the occurred_at of the middle one."""
    codec = default_codec()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    await producer.start()
    state = None
    middle = T0
    try:
        key = stream_key(process.AGGREGATE, pid).encode()
        futures = []
        i = 0
        while state is None or state.seq < total:
            body: c.Body = (
                c.CreateProcess("scan", None, "{}", ()) if i == 0
                else c.ReportProgress(float(i % 100), f"report {i}")
            )  # fmt: skip
            cmd = c.Command(f"c{i}", "process", pid, T0 + i, "acme", "bench", "r", "r", body)
            for ev in process.decide(state, cmd):
                state = process.evolve(state, ev)
                if ev.seq == total // 2:
                    middle = ev.occurred_at
                futures.append(await producer.send(topics.events, encode_event(codec, ev), key))
            i += 1
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return middle


def median_s(fn: object, runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - began)
    return statistics.median(times)


async def main_async(args: argparse.Namespace, bootstrap: str) -> int:
    topics = Topics(f"bench-{uuid.uuid4().hex[:8]}.")
    await ensure_topics(bootstrap, topics, args.partitions)
    await produce(bootstrap, topics, args.partitions, NOISE)
    pid = f"asof-{uuid.uuid4().hex[:8]}"
    middle = await produce_one(bootstrap, topics, pid, args.events)
    codec = default_codec()
    with tempfile.TemporaryDirectory(prefix="bench-asof-") as tmp:
        path = Path(tmp) / "read.duckdb"
        progress = Progress()
        await replay(
            path, read_to_end(bootstrap, topics.events, on_ends=progress.set_range),
            topic=topics.events, progress=progress, ends=lambda: dict(progress.ends),
        )  # fmt: skip

        times = []
        for _ in range(args.runs):
            began = time.perf_counter()
            h = await load(bootstrap, topics, codec, pid, ["process"], args.partitions)
            state = state_as_of(h.events, middle)
            times.append(time.perf_counter() - began)
        as_of = statistics.median(times)
        assert state.seq == args.events // 2, state.seq
        print(f"history: {len(h.events):,} events of {pid}, {len(h.entries):,} entries")
        fold = median_s(lambda: state_as_of(h.events, middle), args.runs)
        with Store(path) as store:
            queries = Queries(store)

            def api_as_of() -> object:  # what api/as_of.py does for ?as_of=
                found = queries.events_until("acme", pid, "process", middle)
                return history.state_as_of([event_of_row(r) for r in found], middle)

            def whole_history_as_of() -> object:  # api/as_of.py before 2026-11-23
                _, found = queries.list_events("acme", pid, limit=1 << 62, offset=0)
                return history.state_as_of([event_of_row(r) for r in found], middle)

            api_state = api_as_of()
            assert getattr(api_state, "seq", None) == args.events // 2, api_state
            assert api_state == state, "the API's as-of and the CLI's differ"
            assert whole_history_as_of() == api_state
            current = queries.get_process("acme", pid)
            assert current is not None and current.seq == args.events
            api = median_s(api_as_of, args.runs)
            whole = median_s(whole_history_as_of, args.runs)
            rows_only = median_s(
                lambda: queries.events_until("acme", pid, "process", middle), args.runs
            )
            found = queries.events_until("acme", pid, "process", middle)
            to_events = median_s(lambda: [event_of_row(r) for r in found], args.runs)
            plain = median_s(lambda: queries.get_process("acme", pid), 50)

            def sse_resume_fold() -> object:  # a resumed stream that folds its history
                _, found = queries.list_events("acme", pid, limit=1 << 62, offset=0)
                return list(history.states_after(event_of_row(r) for r in found))

            def sse_resume_caught_up() -> object:  # api/stream_kinds.py: caught_up
                newest = queries.last_event("acme", pid, "process")
                assert newest is not None
                return newest, queries.get_process("acme", pid)

            resume_fold = median_s(sse_resume_fold, args.runs)
            resume_caught_up = median_s(sse_resume_caught_up, 50)
    print(f"API as-of (events table + fold)          {api * 1000:9.1f} ms")
    print(f"  of which reading the rows              {rows_only * 1000:9.1f} ms")
    print(f"  of which rows back to events           {to_events * 1000:9.1f} ms")
    print(f"  (reading the whole history instead)    {whole * 1000:9.1f} ms")
    print(f"CLI as-of (read partition + decode + fold){as_of * 1000:8.1f} ms")
    print(f"fold alone ({args.events // 2:,} events)            {fold * 1000:9.1f} ms")
    print(f"plain read of the current state          {plain * 1000:9.3f} ms")
    print(f"SSE resume, folding the history          {resume_fold * 1000:9.1f} ms")
    print(f"SSE resume, caught up (newest + current) {resume_caught_up * 1000:9.3f} ms")
    print(f"cli ratio: {as_of / plain:.0f}")
    print(f"ratio: {api / plain:.0f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", help="host:port of a Kafka broker (default: start one)")
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.bootstrap:
        return asyncio.run(main_async(args, args.bootstrap))
    from runledger.broker import start_broker
    from runledger.settings import Settings

    with tempfile.TemporaryDirectory(prefix="bench-kafka-") as tmp:
        broker = start_broker(Settings.from_env(), Path(tmp), keep_data=False)
        try:
            return asyncio.run(main_async(args, broker.bootstrap))
        finally:
            broker.stop()


if __name__ == "__main__":
    sys.exit(main())
