"""Commands per second through the decider: aiokafka, faust-streaming, and the Kafka ceiling.

    python bench/decider.py [--commands 50000] [--processes N] [--bootstrap host:port]
                            [--faust-at-least-once] [--faust-ceiling] [--profile FILE]

One run, each measurement on a fresh topic prefix holding the same N commands, all
produced before anything is measured (so this measures the decider, not the producer):

(a) ``streams.decider.Decider`` (aiokafka, transactional);
(b) ``streams.faust_decider`` (faust-streaming agent + Table) with exactly_once, and with
    ``--faust-at-least-once`` also with at_least_once; ``--faust-ceiling`` adds faust
    with the deciding taken out (each command copied to events and outcomes);
(c) the ceiling: read_committed consume of the N commands and, per command, one message
    to the events and one to the outcomes topic (what the deciders write for this mix),
    with the consumed offsets, in one transaction per batch of the same size; no decoding
    and no deciding.

Clock: from the first command a run takes until its consumer group's committed offsets
on the commands topic sum to N. The offsets commit in the same transaction as the
events and outcomes, so at that instant all N outcomes are readable with
``read_committed`` (under at_least_once, the commit follows the writes). Start-up
(group join, rebuild, table recovery) is outside the clock. The last line is
``ratio: <aiokafka decider / baseline>``.

The broker: ``--bootstrap``, else ``RUNLEDGER_KAFKA_BOOTSTRAP``, else one started with
``runledger.broker.start_broker`` for the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from schemas import default_codec
from streams import serde
from streams.decider import Decider
from streams.domain import aggregates
from streams.domain import commands as c
from streams.domain.commands import Command
from streams.domain.events import StepDefinition
from streams.faust_decider import AT_LEAST_ONCE, EXACTLY_ONCE, FaustDecider
from streams.topics import Topics, ensure_topics, partitions_of

TARGET = 5_000  # commands/s the issue asks of the decider
BASELINE = "baseline (aiokafka consume + produce, no decide)"
T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in microseconds: commands carry fixed times

# -- the commands -----------------------------------------------------------------------


def process_script(pid: str, i: int) -> list[tuple[str, c.Body]]:
    """The ten commands a worker sends over one Process's life; the last one comes late
    (after completion), so one in ten is rejected, as late reports are in production."""
    steps = (StepDefinition("fetch", "fetch", 1), StepDefinition("check", "check", 2))
    return [
        (f"{pid}-create", c.CreateProcess("scan", site=f"site-{i % 97}", steps=steps)),
        (f"{pid}-s1", c.StartStep("fetch")),
        (f"{pid}-p25", c.ReportProgress(25.0, "fetching")),
        (f"{pid}-c1", c.CompleteStep("fetch")),
        (f"{pid}-s2", c.StartStep("check")),
        (f"{pid}-p75", c.ReportProgress(75.0)),
        (f"{pid}-log", c.AppendLog("checked 40 pages")),
        (f"{pid}-c2", c.CompleteStep("check", "ok")),
        (f"{pid}-done", c.CompleteProcess(object_id=f"report-{i}")),
        (f"{pid}-late", c.ReportProgress(100.0)),
    ]


def build_commands(n: int, processes: int) -> list[tuple[bytes, bytes]]:
    """``n`` encoded (key, value) commands over ``processes`` Processes, interleaved
    (every Process's first command, then every Process's second, ...)."""
    codec = default_codec()
    scripts = [process_script(f"bench-{i:06d}", i) for i in range(processes)]
    out: list[tuple[bytes, bytes]] = []
    for k in range(max(len(s) for s in scripts)):
        for i, script in enumerate(scripts):
            if k >= len(script) or len(out) == n:
                continue
            command_id, body = script[k]
            pid = f"bench-{i:06d}"
            cmd = Command(command_id, "process", pid, T0 + k, "acme", "bench", pid, "", body)
            key = aggregates.stream_key("process", pid).encode()
            out.append((key, serde.encode_command(codec, cmd)))
    if len(out) < n:
        raise SystemExit(f"{processes} processes give only {len(out)} commands; raise --processes")
    return out


async def produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    try:
        for key, value in messages:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


# -- the clock ----------------------------------------------------------------------------


async def committed_total(admin: AIOKafkaAdminClient, group: str, topic: str) -> int:
    offsets = await admin.list_consumer_group_offsets(group)
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset > 0)


async def timed(
    bootstrap: str,
    group: str,
    topic: str,
    n: int,
    started: Callable[[], bool],
    run: Awaitable[None],
    stop: Callable[[], None],
    timeout: float,
) -> float:
    """Seconds from ``started()`` turning true until ``group`` committed ``n`` offsets."""
    task = asyncio.ensure_future(run)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    deadline = time.monotonic() + timeout
    try:
        while not started():
            if task.done():
                task.result()
                raise RuntimeError("the decider ended before it took a command")
            if time.monotonic() > deadline:
                raise TimeoutError("no command was taken")
            await asyncio.sleep(0.002)
        t0 = time.perf_counter()
        while await committed_total(admin, group, topic) < n:
            if task.done():
                task.result()
                raise RuntimeError("the decider ended before it committed every command")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{group} did not commit {n} commands within {timeout} s")
            await asyncio.sleep(0.02)
        return time.perf_counter() - t0
    finally:
        await admin.close()
        stop()
        await asyncio.wait_for(task, 60)


# -- the three runs -------------------------------------------------------------------------


async def run_aiokafka(bootstrap: str, topics: Topics, n: int, batch: int, timeout: float) -> float:
    decider = Decider(bootstrap, topics, default_codec(), max_batch=batch)
    seconds = await timed(
        bootstrap,
        decider.group_id,
        topics.commands,
        n,
        lambda: decider.stats.commands > 0,
        decider.run(),
        decider.stop,
        timeout,
    )
    print(f"  aiokafka decider stats: {decider.stats}")
    return seconds


async def run_faust(
    bootstrap: str,
    topics: Topics,
    n: int,
    batch: int,
    partitions: int,
    guarantee: str,
    timeout: float,
) -> float:
    with tempfile.TemporaryDirectory(prefix="faust-decider-") as data_dir:
        decider = FaustDecider(
            bootstrap,
            topics,
            default_codec(),
            data_dir=data_dir,
            partitions=partitions,
            processing_guarantee=guarantee,
            max_batch=batch,
        )
        seconds = await timed(
            bootstrap,
            decider.app.conf.id,
            topics.commands,
            n,
            lambda: decider.stats.commands > 0,
            decider.run(),
            decider.stop,
            timeout,
        )
    print(f"  faust decider ({guarantee}) stats: {decider.stats}")
    return seconds


class Baseline:
    """Consume → produce two messages per command → offsets → commit; nothing decided."""

    def __init__(self, bootstrap: str, topics: Topics, batch: int) -> None:
        self.bootstrap, self.topics, self.batch = bootstrap, topics, batch
        self.group_id = f"{topics.prefix}bench-baseline"
        self.consumed = 0
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            enable_idempotence=True,
            transactional_id=self.group_id,
            linger_ms=2,
            max_batch_size=256 * 1024,
        )
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group_id,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await producer.start()
        await consumer.start()
        try:
            parts = await partitions_of(consumer, self.topics.commands)
            consumer.assign([TopicPartition(self.topics.commands, p) for p in parts])
            while not self._stopping.is_set():
                batch = await consumer.getmany(timeout_ms=200, max_records=self.batch)
                if not batch:
                    continue
                offsets = {}
                async with producer.transaction():
                    for tp, messages in batch.items():
                        for msg in messages:
                            self.consumed += 1
                            await producer.send(self.topics.events, msg.value, key=msg.key)
                            await producer.send(self.topics.outcomes, msg.value, key=msg.key)
                        offsets[tp] = messages[-1].offset + 1
                    await producer.send_offsets_to_transaction(offsets, self.group_id)
        finally:
            await consumer.stop()
            await producer.stop()


async def run_baseline(bootstrap: str, topics: Topics, n: int, batch: int, timeout: float) -> float:
    base = Baseline(bootstrap, topics, batch)
    return await timed(
        bootstrap,
        base.group_id,
        topics.commands,
        n,
        lambda: base.consumed > 0,
        base.run(),
        base.stop,
        timeout,
    )


def faust_ceiling_app(
    bootstrap: str, topics: Topics, data_dir: str, guarantee: str, batch: int, partitions: int
) -> tuple[faust.App, list[int]]:
    """The faust decider's app with the deciding taken out: its settings and agents, but
    each command is copied to events and outcomes. What faust itself costs."""
    app = faust.App(
        f"{topics.prefix}bench-faust-ceiling",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        datadir=data_dir,
        processing_guarantee=guarantee,
        topic_partitions=partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=0.2,
        producer_acks=-1,
        producer_linger=0.002,
        producer_max_batch_size=256 * 1024,
        stream_buffer_maxsize=batch * 2,
        stream_wait_empty=False,
        web_enabled=False,
        autodiscover=False,
    )
    app.in_worker = True  # as FaustDecider does: faust's transactions need it

    def raw(*names: str) -> Any:
        return app.topic(
            *names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )

    events, outcomes, taken = raw(topics.events), raw(topics.outcomes), [0]

    @app.agent(raw(topics.commands), name="copy")
    async def copy(stream: Any) -> None:
        async for batch_ in stream.take_events(batch, within=0.05):
            sent = []
            for event in batch_:
                taken[0] += 1
                msg = event.message
                sent.append(await events.send(key=msg.key, value=msg.value))
                sent.append(await outcomes.send(key=msg.key, value=msg.value))
            await asyncio.gather(*sent)

    if guarantee == EXACTLY_ONCE:  # read what it writes, as the faust decider must

        @app.agent(raw(topics.events, topics.outcomes), name="written")
        async def drop(stream: Any) -> None:
            async for _ in stream.take(10_000, within=1.0):
                pass

    return app, taken


async def run_faust_ceiling(
    bootstrap: str,
    topics: Topics,
    n: int,
    batch: int,
    partitions: int,
    guarantee: str,
    timeout: float,
) -> float:
    with tempfile.TemporaryDirectory(prefix="faust-ceiling-") as data_dir:
        app, taken = faust_ceiling_app(bootstrap, topics, data_dir, guarantee, batch, partitions)
        stopping = asyncio.Event()

        async def run() -> None:
            try:
                await app.start()
                await stopping.wait()
            finally:
                await app.stop()

        return await timed(
            bootstrap,
            app.conf.id,
            topics.commands,
            n,
            lambda: taken[0] > 0,
            run(),
            stopping.set,
            timeout,
        )


# -- main ------------------------------------------------------------------------------------


async def bench(args: argparse.Namespace, bootstrap: str) -> None:
    n, batch, parts, timeout = args.commands, args.batch, args.partitions, args.timeout
    processes = args.processes or max(1, -(-n // 10))
    guarantees = [EXACTLY_ONCE] + ([AT_LEAST_ONCE] if args.faust_at_least_once else [])
    runs: dict[str, Callable[[Topics], Awaitable[float]]] = {
        "aiokafka decider": lambda t: run_aiokafka(bootstrap, t, n, batch, timeout),
    }
    for g in guarantees if not args.skip_faust else []:
        runs[f"faust decider ({g})"] = lambda t, g=g: run_faust(  # type: ignore[misc]
            bootstrap, t, n, batch, parts, g, timeout
        )
    for g in guarantees if args.faust_ceiling else []:
        runs[f"faust, no decide ({g})"] = lambda t, g=g: run_faust_ceiling(  # type: ignore[misc]
            bootstrap, t, n, batch, parts, g, timeout
        )
    runs[BASELINE] = lambda t: run_baseline(bootstrap, t, n, batch, timeout)

    run_id = uuid.uuid4().hex[:8]
    prefixes = {name: Topics(f"dev-{run_id}-{i}.") for i, name in enumerate(runs)}
    print(
        f"commands: {n} over {processes} processes; partitions: {parts}; batch: {batch}; "
        f"broker: {bootstrap}; prefixes: dev-{run_id}-*"
    )
    print(f"python {platform.python_version()} on {os.cpu_count()} CPUs ({platform.machine()})")
    messages = build_commands(n, processes)
    for topics in prefixes.values():
        await ensure_topics(bootstrap, topics, parts)
        await produce(bootstrap, topics.commands, messages)
    print("commands produced; measuring")

    rates: dict[str, float] = {}
    for name, run in runs.items():
        profiler = cProfile.Profile() if args.profile and name == "aiokafka decider" else None
        if profiler:
            profiler.enable()
        seconds = await run(prefixes[name])
        if profiler:
            profiler.disable()
            profiler.dump_stats(args.profile)
            print(f"  cProfile of this run written to {args.profile}")
        rates[name] = n / seconds
        print(f"{name}: {n} commands in {seconds:.2f} s = {rates[name]:,.0f} commands/s")

    aio = rates["aiokafka decider"]
    verdict = "meets" if aio >= TARGET else "MISSES"
    print(f"target: {TARGET:,} commands/s; the aiokafka decider {verdict} it")
    for name, rate in rates.items():
        if name.startswith("faust"):
            print(f"{name} / aiokafka decider: {rate / aio:.2f}")
    print(f"ratio: {aio / rates[BASELINE]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=50_000)
    parser.add_argument("--processes", type=int, default=0, help="default: commands / 10")
    parser.add_argument("--bootstrap", default="", help="default: RUNLEDGER_KAFKA_BOOTSTRAP")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--batch", type=int, default=2000, help="max commands per transaction")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per run")
    parser.add_argument("--skip-faust", action="store_true")
    parser.add_argument(
        "--faust-ceiling",
        action="store_true",
        help="also measure faust copying commands with no decide (what faust itself costs)",
    )
    parser.add_argument(
        "--faust-at-least-once",
        action="store_true",
        help="also measure the faust decider with at_least_once",
    )
    parser.add_argument("--profile", default="", help="write a cProfile of the aiokafka run")
    args = parser.parse_args()

    from runledger.settings import Settings

    settings = Settings.from_env()
    bootstrap = args.bootstrap or settings.kafka_bootstrap
    with contextlib.ExitStack() as stack:
        if not bootstrap:
            try:
                from runledger.broker import start_broker
            except ImportError:
                raise SystemExit(
                    "no broker: pass --bootstrap or set RUNLEDGER_KAFKA_BOOTSTRAP"
                ) from None
            log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-kafka-")))
            broker = start_broker(settings, log_dir, keep_data=False)
            stack.callback(broker.stop)
            bootstrap = broker.bootstrap
        asyncio.run(bench(args, bootstrap))


if __name__ == "__main__":
    main()
