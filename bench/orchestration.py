"""From a node's completion to the next node's start, across 500 flow steps.

    python bench/orchestration.py [--steps 500] [--chain 101]

A broker (``RUNLEDGER_KAFKA_BOOTSTRAP``, else one started for the run), the decider and
node of ``bench/_stack.py``, plus ``runledger orchestrator`` and
``runledger runner --kinds wait`` as child processes. FlowRuns whose nodes are a chain
of ``wait`` nodes with a 0 s wait run one after the other until ``--steps`` steps (an
edge a → b taken) have run. A step's latency is from ``flowrun.node_passed`` of a to
``flowrun.node_started`` of b, both ``occurred_at`` (the decider's clock, one
process): the event reaching the orchestrator, ``next_steps``, the start command
through the decider. The runner's own time (job from ``node_started`` to
``node_passed``) is shown next to it. The last line is ``ratio: <p99 / p50>`` of the
step latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _stack  # noqa: E402
from aiokafka import AIOKafkaConsumer, TopicPartition  # noqa: E402

from schemas import default_codec  # noqa: E402
from streams import serde  # noqa: E402
from streams.bus import CommandBus  # noqa: E402
from streams.domain import flowrun as f  # noqa: E402
from streams.domain import site as site_domain  # noqa: E402
from streams.domain.commands import Body, Command  # noqa: E402
from streams.domain.events import Event  # noqa: E402
from streams.topics import partitions_of  # noqa: E402

ACCOUNT = "bench"
CONFIGS = {"timeout": 60, "max_wait_time": 10, "min_wait_time": 0}


def _command(bus: CommandBus, aggregate: str, aggregate_id: str, body: Body) -> Command:
    return Command(
        command_id=str(uuid.uuid4()),
        aggregate_type=aggregate,
        aggregate_id=aggregate_id,
        issued_at=time.time_ns() // 1000,
        account=ACCOUNT,
        actor="bench",
        correlation_id=aggregate_id,
        causation_id="bench",
        body=body,
        reply_to=bus.node_id,
    )


def _chain(length: int) -> tuple[str, str]:
    ids = [f"w{i:03d}" for i in range(length)]
    nodes = [{"id": i, "data": {"id": i, "task_type": "wait", "configs": CONFIGS}} for i in ids]
    edges = [{"source": a, "target": b} for a, b in zip(ids, ids[1:], strict=False)]
    dump = json.dumps
    return dump(nodes, sort_keys=True), dump(edges, sort_keys=True)


async def _run_flows(stack: _stack.Stack, runs: int, chain: int) -> list[list[Event]]:
    codec = default_codec()
    bus = CommandBus(stack.bootstrap, stack.topics, codec)
    await bus.start()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack.bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    out: list[list[Event]] = []
    try:
        tps = [
            TopicPartition(stack.topics.events, p)
            for p in await partitions_of(consumer, stack.topics.events)
        ]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        site_id = str(uuid.uuid4())
        outcome = await bus.execute(
            _command(bus, "site", site_id, site_domain.CreateSite("http://example.com/")), 30
        )
        assert outcome is not None and outcome.accepted, outcome
        nodes_json, edges_json = _chain(chain)
        for n in range(runs):
            run_id = str(uuid.uuid4())
            create = f.CreateFlowRun(
                site_id=site_id,
                flow_id="bench",
                nodes_json=nodes_json,
                edges_json=edges_json,
                end_on_fail=True,
                title=f"bench {n}",
            )
            outcome = await bus.execute(_command(bus, f.AGGREGATE, run_id, create), 30)
            assert outcome is not None and outcome.accepted, outcome
            events: list[Event] = []
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=200)
                for messages in batch.values():
                    for m in messages:
                        event = serde.decode_event(codec, m.value)
                        if event.aggregate_id == run_id:
                            events.append(event)
                if any(e.type == "flowrun.completed" for e in events):
                    break
            else:
                raise RuntimeError(f"run {n} did not complete: {stack.log_tail('orchestrator')}")
            status = next(e for e in events if e.type == "flowrun.completed").data.status
            assert status == "passed", status
            out.append(events)
            print(f"run {n + 1}/{runs}: {chain - 1} steps", flush=True)
    finally:
        await consumer.stop()
        await bus.stop()
    return out


def _latencies(events: list[Event]) -> tuple[list[float], list[float]]:
    started = {e.data.node_id: e.occurred_at for e in events if e.type == "flowrun.node_started"}
    passed = {e.data.node_id: e.occurred_at for e in events if e.type == "flowrun.node_passed"}
    order = sorted(started, key=started.__getitem__)
    steps = [(started[b] - passed[a]) / 1e6 for a, b in zip(order, order[1:], strict=False)]
    jobs = [(passed[n] - started[n]) / 1e6 for n in order]
    return steps, jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--chain", type=int, default=101, help="nodes per run (max 200)")
    args = parser.parse_args()
    runs = -(-args.steps // (args.chain - 1))
    _stack.quiet_logs()
    with _stack.running_stack() as stack:
        stack.start("orchestrator")
        with open(stack.data_dir / "runner.log", "ab") as out:
            runner = subprocess.Popen(
                [sys.executable, "-m", "runledger", "runner", "--kinds", "wait"],
                env=stack.env(),
                cwd=_stack.ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            all_events = asyncio.run(_run_flows(stack, runs, args.chain))
        finally:
            runner.terminate()
            runner.wait(30)
    steps: list[float] = []
    jobs: list[float] = []
    for events in all_events:
        s, j = _latencies(events)
        steps += s
        jobs += j
    steps = steps[: args.steps]

    def line(name: str, values: list[float]) -> str:
        p = _stack.percentile
        return (
            f"{name}: n {len(values)}, p50 {p(values, 50) * 1000:.1f} ms, "
            f"p90 {p(values, 90) * 1000:.1f} ms, p99 {p(values, 99) * 1000:.1f} ms"
        )

    print(line("node passed -> next node started", steps))
    print(line("job (node started -> node passed)", jobs))
    print(f"ratio: {_stack.percentile(steps, 99) / _stack.percentile(steps, 50):.2f}")


if __name__ == "__main__":
    main()
