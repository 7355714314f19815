"""Chaos for the FlowRun orchestrator: SIGKILLed mid-flow, its runs still end right.

A stack (decider, node, orchestrator, one runner) on the real broker runs FlowRuns
over cheap, deterministic Flows (``wait`` nodes of a fraction of a second, ``webhook``
nodes to a receiver in the test that answers 500 on ``/fail/...``; a chain, a diamond,
a handled failure branch with a merge, an ``end_on_fail`` chain that stops, a run
without ``end_on_fail``; see ``chaos_support.make_flow``). Runs are created one after
the other while the orchestrator is SIGKILLed and restarted 3 to 5 times at seeded
moments, and the runner once. Afterwards, from the ledger:

- every run completed once, with the status its graph implies, and every node ended
  as ``chaos_support.expected_outcomes`` works it out (passed / failed / skipped);
- a node that ran has one ``node_started`` (attempt 1) and one pass or fail, a skipped
  node one skip and no start; ``ledger.jobs`` holds one committed job per started
  node, none for a skipped one; per-aggregate ``seq`` is gapless and no ``event_id``
  repeats; every command was decided once (``ledger.outcomes``); ``ledger.dlq`` is empty;
- a webhook node that ran was delivered at least once, every delivery with the same
  ``Idempotency-Key`` (the one derived from its run, node and attempt); a skipped one
  never;
- ``GET /flowrun/{id}`` equals the fold of the run's events;
- ``runledger verify`` (the node's read model against a rebuild) exits 0.

Seeded: ``RUNLEDGER_CHAOS_SEED=N`` repeats a run's choices (not its timing); the seed
is printed and in every failure message.
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from api.run_representations import flowrun_json
from runners.jobs_notify import delivery_key
from streams.domain import aggregates
from streams.domain import flowrun as f
from streams.domain.events import Event
from streams.orchestration import job_for
from streams.topics import Topics
from tests.integration.chaos_support import (
    TEMPLATES,
    Flow,
    HookServer,
    aborted_records,
    committed_records,
    expected_outcomes,
    in_flight,
    make_flow,
    read_events_checked,
    read_jobs,
    read_outcomes,
    run_verify,
    serve_hooks,
    watch_then,
)
from tests.integration.conftest import Stack, start_stack
from tests.integration.flow_helpers import (
    ACCOUNT,
    create_run,
    create_site,
    node_status,
    read_events,
)

pytestmark = pytest.mark.integration

KILLS_WITHIN_S = 22.0  # every kill is scheduled in the first KILLS_WITHIN_S of the runs
MIN_RUNS = 8  # runs are created until the killer is done, at least MIN_RUNS of them
MAX_RUNS = 16
SETTLE_S = 60.0  # for every run to complete after the last one was created
READ_S = 20.0  # for the node to show each run as its events say


@dataclass
class Chaos:
    seed: int
    stack: Stack
    hooks: HookServer
    runs: dict[str, Flow] = field(default_factory=dict)  # run id -> its Flow
    created_at: dict[str, float] = field(default_factory=dict)  # run id -> wall clock
    kills: list[tuple[str, float]] = field(default_factory=list)  # (process, wall clock)
    lock: threading.Lock = field(default_factory=threading.Lock)  # runs come from 2 threads
    sighted: int = 0  # orchestrator kills made right after an event it was handed

    def fail(self, problems: list[str], what: str) -> str:
        shown = "\n  ".join(problems[:25])
        more = f"\n  ... and {len(problems) - 25} more" if len(problems) > 25 else ""
        return (
            f"[seed={self.seed}] {what}: {len(problems)} problem(s)\n  {shown}{more}\n"
            f"kills: {self.kill_log()}\n"
            f"orchestrator log:\n{self.stack.log_tail('orchestrator', 15)}\n"
            f"runner log:\n{self.stack.log_tail('runner', 10)}"
        )

    def kill_log(self) -> list[str]:
        first = min(self.created_at.values(), default=0.0)
        return [f"{name}@{at - first:.1f}s" for name, at in self.kills]


def _killer(chaos: Chaos, rng: random.Random, site_id: str, done: threading.Event) -> None:
    """SIGKILL the orchestrator 3 to 5 times and the runner once, at seeded moments in
    the first KILLS_WITHIN_S; each is started again (the orchestrator after up to 1 s).

    An orchestrator kill comes right after a "wide" run is created: 0 to 15 ms after
    one of the first 3 events that follow on ``ledger.events``, when the orchestrator
    has just been handed that event and is, now and then, inside the transaction that
    publishes what it causes. (Measured with the offsets committed before that
    transaction instead of in it: about one such kill in five left a run stuck.)"""
    plan = ["orchestrator"] * rng.randint(3, 5) + ["runner"]
    rng.shuffle(plan)
    slot = KILLS_WITHIN_S / len(plan)
    moments = [1.0 + i * slot + rng.uniform(0, slot - 1.0) for i in range(len(plan))]
    events_topic = Topics(chaos.stack.prefix).events
    started = time.monotonic()

    def kill(name: str) -> None:
        chaos.stack.kill(name, signal.SIGKILL)
        chaos.kills.append((name, time.time()))

    try:
        for number, (name, at) in enumerate(zip(plan, moments, strict=True)):
            time.sleep(max(0.0, started + at - time.monotonic()))
            if name == "runner":
                kill(name)
            else:
                flow = make_flow("wide", f"k{number}", chaos.hooks, [])
                chaos.sighted += asyncio.run(
                    watch_then(
                        chaos.stack.bootstrap,
                        events_topic,
                        lambda: kill("orchestrator"),
                        functools.partial(_create, chaos, flow, site_id),
                        skip=rng.randint(0, 2),
                        delay=rng.uniform(0, 0.015),
                        timeout=5,
                    )
                )
                time.sleep(rng.uniform(0, 1.0))
            chaos.stack.start(name)
    finally:
        done.set()


async def _create(chaos: Chaos, flow: Flow, site_id: str) -> None:
    began = time.time()
    run_id = await create_run(
        chaos.stack,
        chaos.hooks.base_url + "/",
        flow.nodes,
        flow.edges,
        site_id=site_id,
        end_on_fail=flow.end_on_fail,
    )
    with chaos.lock:
        chaos.runs[run_id] = flow
        chaos.created_at[run_id] = began


def _create_runs(chaos: Chaos, rng: random.Random, site_id: str, done: threading.Event) -> None:
    """A run every 0.5 to 2 s until the killer is done (MIN_RUNS to MAX_RUNS of them);
    the first ones take each template once."""
    order = list(TEMPLATES)
    rng.shuffle(order)
    number = 0
    while number < MAX_RUNS and (number < MIN_RUNS or not done.is_set()):
        template = order[number] if number < len(order) else rng.choice(TEMPLATES)
        waits = [round(rng.uniform(0.1, 0.6), 2) for _ in range(2)]
        asyncio.run(_create(chaos, make_flow(template, f"r{number}", chaos.hooks, waits), site_id))
        number += 1
        time.sleep(rng.uniform(0.5, 2.0))


def _all_completed(run_ids: set[str]) -> Any:
    def done(events: list[Event]) -> bool:
        ended = {e.aggregate_id for e in events if e.type == "flowrun.completed"}
        return run_ids <= ended

    return done


# -- the checks -----------------------------------------------------------------------


def _check_runs(chaos: Chaos, ledger: dict[str, list[Event]], jobs: Counter[Any]) -> list[str]:
    """Each run's events: completed once as its graph implies, each node started and
    ended once (or skipped), one job per started node, webhooks delivered under one key."""
    problems: list[str] = []
    for run_id, flow in chaos.runs.items():
        label = f"run {run_id} ({flow.template} {flow.tag})"
        events = ledger.get(aggregates.stream_key(f.AGGREGATE, run_id), [])
        nodes, status = expected_outcomes(flow)
        completions = [e.data.status for e in events if isinstance(e.data, f.FlowRunCompleted)]
        if completions != [status]:
            problems.append(f"{label}: completed {completions}, expected [{status!r}]")
        got = node_status(events)
        if got != nodes:
            problems.append(f"{label}: nodes {got} != expected {nodes}")
        counts = Counter(
            (e.type.removeprefix("flowrun.node_"), getattr(e.data, "node_id", None))
            for e in events
            if e.type.startswith("flowrun.node_")
        )
        for node_id, outcome in nodes.items():
            seen = {kind: counts[(kind, node_id)] for kind in ("started", outcome)}
            if outcome != "skipped" and seen != {"started": 1, outcome: 1}:
                problems.append(f"{label}: node {node_id} events {dict(seen)}")
            if outcome == "skipped" and seen != {"started": 0, "skipped": 1}:
                problems.append(f"{label}: skipped node {node_id} events {dict(seen)}")
            ran = outcome != "skipped"
            job_count = sum(n for (r, nid, _), n in jobs.items() if (r, nid) == (run_id, node_id))
            if job_count != (1 if ran else 0) or (ran and jobs[(run_id, node_id, 1)] != 1):
                problems.append(f"{label}: node {node_id} ({outcome}) has {job_count} jobs")
        starts = [e.data.attempt for e in events if isinstance(e.data, f.NodeStarted)]
        if any(attempt != 1 for attempt in starts):
            problems.append(f"{label}: node attempts {starts}")
        problems += _check_hooks(chaos, run_id, flow, events, nodes)
    return problems


def _check_hooks(
    chaos: Chaos, run_id: str, flow: Flow, events: list[Event], nodes: dict[str, str]
) -> list[str]:
    problems: list[str] = []
    state = _fold(events)
    for node_id in flow.webhooks:
        keys = chaos.hooks.received(flow.tag, node_id)
        label = f"run {run_id} ({flow.template}) webhook {node_id}"
        if nodes[node_id] == "skipped":
            if keys:
                problems.append(f"{label}: skipped, yet delivered {len(keys)} times")
            continue
        if not keys:
            problems.append(f"{label}: {nodes[node_id]}, yet never delivered")
            continue
        wanted = delivery_key(job_for(state, node_id, 1)) if state is not None else None
        if set(keys) != {wanted}:
            problems.append(f"{label}: keys {Counter(keys)} != the node's {wanted}")
    return problems


def _fold(events: list[Event]) -> Any:
    state = None
    for ev in events:
        state = aggregates.evolve(state, ev)
    return state


def _check_decided_once(outcomes: list[Any]) -> list[str]:
    by_command: dict[str, list[Any]] = {}
    for o in outcomes:
        by_command.setdefault(o.command_id, []).append(o)
    problems = []
    for command_id, outs in by_command.items():
        firsts = [o for o in outs if o.accepted and not o.duplicate]
        rejected = [o for o in outs if not o.accepted]
        if len(firsts) > 1 or (firsts and rejected):
            problems.append(
                f"command {command_id} ({outs[0].command} by {outs[0].actor}): accepted "
                f"{len(firsts)} times, rejected {len(rejected)} times"
            )
    return problems


def _check_reads(chaos: Chaos, ledger: dict[str, list[Event]]) -> list[str]:
    """``GET /flowrun/{id}`` equals the fold of the run's events (waiting up to READ_S
    for the projector to catch up)."""
    problems: list[str] = []
    deadline = time.monotonic() + READ_S
    client = chaos.stack.authenticated(ACCOUNT)
    try:
        for run_id in chaos.runs:
            expected = flowrun_json(_fold(ledger[aggregates.stream_key(f.AGGREGATE, run_id)]))
            while True:
                got = client.get(f"/flowrun/{run_id}", params={"wait": "true"})
                if got.status_code == 200 and got.json() == expected:
                    break
                if time.monotonic() > deadline:
                    problems.append(f"GET /flowrun/{run_id}: {got.text[:800]} != {expected}")
                    break
                time.sleep(0.2)
    finally:
        client.close()
    return problems


# -- the test -------------------------------------------------------------------------


def test_flowruns_end_right_with_a_sigkilled_orchestrator(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    seed = int(os.environ.get("RUNLEDGER_CHAOS_SEED") or random.SystemRandom().randrange(10**6))
    print(f"\norchestrator chaos seed={seed}")
    began = time.monotonic()
    rng = random.Random(seed)
    with serve_hooks() as hooks:
        stack = start_stack(
            kafka_bootstrap, tmp_path / "stack", {"RUNLEDGER_ALLOW_PRIVATE_TARGETS": "1"}
        )
        chaos = Chaos(seed, stack, hooks)
        try:
            stack.start("orchestrator")
            stack.start("runner")
            site_id = asyncio.run(create_site(stack, hooks.base_url + "/"))
            done = threading.Event()
            killer = threading.Thread(
                target=_killer,
                args=(chaos, random.Random(f"{seed}-killer"), site_id, done),
                daemon=True,
            )
            killer.start()
            _create_runs(chaos, rng, site_id, done)
            killer.join(60)
            assert done.is_set(), f"[seed={seed}] the killer did not finish: {chaos.kill_log()}"
            for name in ("orchestrator", "runner"):
                proc = stack.procs.get(name)
                assert proc is not None and proc.poll() is None, chaos.fail([name], "not running")

            run_ids = set(chaos.runs)
            asyncio.run(read_events(stack, _all_completed(run_ids), SETTLE_S))
            settled_s = time.monotonic() - began
            topics = Topics(stack.prefix)
            ledger, problems = read_events_checked(stack.bootstrap, topics.events)
            assert not problems, chaos.fail(problems, "ledger.events is not a clean log")
            jobs = Counter(
                (j.run_id, j.node_id, j.attempt) for j in read_jobs(stack.bootstrap, topics.jobs)
            )
            problems = _check_runs(chaos, ledger, jobs)
            assert not problems, chaos.fail(problems, "runs differ from their graphs")
            outcomes = read_outcomes(stack.bootstrap, topics.outcomes)
            problems = _check_decided_once(outcomes)
            assert not problems, chaos.fail(problems, "commands decided more than once")
            dead = committed_records(stack.bootstrap, topics.dlq)
            assert not dead, chaos.fail([f"{dead} records in ledger.dlq"], "dead letters")
            problems = _check_reads(chaos, ledger)
            assert not problems, chaos.fail(problems, "reads differ from the ledger")

            spans: dict[str, tuple[float, float | None]] = {}
            for run_id, at in chaos.created_at.items():
                ends = [
                    e.occurred_at / 1e6
                    for e in ledger[aggregates.stream_key(f.AGGREGATE, run_id)]
                    if e.type == "flowrun.completed"
                ]
                spans[run_id] = (at, ends[0] if ends else None)
            mid_flow = [in_flight(spans, at) for name, at in chaos.kills if name == "orchestrator"]
            assert sum(1 for n in mid_flow if n > 0) >= 3, chaos.fail(
                [f"runs in flight at each orchestrator kill: {mid_flow}"], "kills missed the runs"
            )

            for name in ("orchestrator", "runner", "node"):
                stack.kill(name, signal.SIGTERM)
            verified = run_verify(stack)
            assert verified.returncode == 0, chaos.fail(
                [verified.stdout[-3000:], verified.stderr[-2000:]], "runledger verify"
            )
            orchestrated = [o for o in outcomes if o.actor == "orchestrator"]
            deliveries = sum(len(keys) for keys in hooks.deliveries.values())
            print(
                f"orchestrator chaos seed={seed}: {len(chaos.runs)} runs "
                f"({dict(Counter(flow.template for flow in chaos.runs.values()))}), "
                f"kills {chaos.kill_log()}, runs in flight at the orchestrator kills {mid_flow}, "
                f"{chaos.sighted} kills right after an event, "
                f"aborted records: commands {aborted_records(stack.bootstrap, topics.commands)}, "
                f"jobs {aborted_records(stack.bootstrap, topics.jobs)}; "
                f"{len(orchestrated)} orchestrator outcomes "
                f"({sum(o.duplicate for o in orchestrated)} duplicates, "
                f"{sum(not o.accepted for o in orchestrated)} rejected), "
                f"{sum(jobs.values())} jobs, {deliveries} webhook deliveries over "
                f"{len(hooks.deliveries)} nodes; settled at {settled_s:.1f} s, "
                f"total {time.monotonic() - began:.1f} s"
            )
        finally:
            stack.stop()
