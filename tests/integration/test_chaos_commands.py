"""Chaos through the HTTP API: the ledger's first promise under crashes.

"No acknowledged command lost, no event applied twice, replay equals live" (DESIGN.md,
"Consistency and failure model"). test_crash.py kills the node while events are
produced straight into Kafka, test_api_recovery.py stops the decider cleanly; here
clients send Process commands through the API, as a real worker does, while the
decider is SIGKILLed and restarted 3 to 5 times and the node (API and projector) once
or twice. Each decider kill comes in the middle of a burst of ``Prefer: respond-async``
commands, so that it lands inside one of the decider's transactions (the summary line
counts the aborted records left in ``ledger.events``). Some clients give up after 1 s
and send again, and some answered requests are sent once more: the same command twice.

The client retries a request that got no answer (connection refused or cut, 503) with
the same ``Idempotency-Key``, and stops driving a Process whose command it could not
get acknowledged. Afterwards, once everything settled:

- every command the API acknowledged (2xx) or rejected (404/409) has outcomes in
  ``ledger.outcomes``: one decision (accepted, or rejected) and, for a request that
  reached Kafka more than once, only duplicates of it; 200/201 match an accepted
  outcome, 409 a rejected one;
- an accepted command's events are exactly the ones its outcome names, a rejected
  one has none; ``ledger.events`` has gapless ``seq`` 1..n per aggregate and no
  repeated ``event_id``; ``ledger.dlq`` is empty;
- the commands of each Process, decided in the order the client sent them by the
  pure ``decide``/``evolve``, give the same accept/reject answers and event types as
  the ledger (so a restarted decider decided against the right state);
- a 200/201 body equals the fold of the ledger up to that command's events, and
  ``GET /process/{id}`` and its steps equal the fold of all its events; every
  acknowledged create is in ``GET /process``;
- ``runledger verify`` (the node's read model against a fresh rebuild) exits 0.

The randomness is seeded: ``RUNLEDGER_CHAOS_SEED=N`` repeats a run's choices (not its
timing); the seed is in every failure message.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.auth import Principal
from api.errors import rejection
from api.gateway import derived_id
from api.representations import process_json, step_json
from schemas import default_codec
from streams import serde
from streams.domain import aggregates
from streams.domain.commands import Command, parse_body
from streams.domain.events import Event
from streams.domain.rejection import Rejected
from streams.topics import Topics
from tests.integration.chaos_support import run_verify
from tests.integration.conftest import Stack, start_stack
from tests.integration.kafka_read import read_topic

pytestmark = pytest.mark.integration

ACCOUNT = "chaos"
PROCESS_TYPE = "chaos.test"
COMMAND_TIMEOUT_S = 3  # a waiting command answers 202 this soon with the decider down
MAX_COMMANDS = 450  # scripted commands; the bursts add at most 5 * (BURST + 1)
LOOP_S = 60  # the client loop stops at MAX_COMMANDS or LOOP_S, whichever comes first
KILLS_WITHIN_S = 40  # every kill is scheduled in the loop's first KILLS_WITHIN_S
WORKERS = 6
TARGET_RATE = 10.0  # commands per second, all workers together: the kills land mid-stream
IMPATIENT_SHARE = 0.3  # requests whose client gives up after IMPATIENT_S and sends again
IMPATIENT_S = 1.0
ECHO_SHARE = 0.1  # answered requests sent once more, with the same key
BURST = 40  # commands sent around each decider kill, to catch it inside a transaction
BURST_SENDERS = 6
RETRY_FOR_S = 45.0  # a request is retried with its key this long before it is given up
SETTLE_S = 120.0

STEPS = [{"id": "s1", "name": "One", "order": 1}, {"id": "s2", "name": "Two", "order": 2}]

# One step of a script: (command name, path suffix or None for create, body, must_reject).
Step = tuple[str, str | None, dict[str, Any] | None, bool]


def _script(rng: random.Random) -> list[Step]:
    """The commands of one Process, with the ones that the state must refuse marked."""
    create: Step = ("process.create", None, {"type": PROCESS_TYPE, "steps": STEPS}, False)
    kind = rng.choice(["happy", "fail_retry", "cancel", "twice"])
    p = rng.randint(1, 9)
    if kind == "happy":
        rest: list[Step] = [
            *([("process.start", "/start", None, False)] if rng.random() < 0.5 else []),
            ("process.progress", "/progress", {"progress": p, "message": "warming"}, False),
            ("process.step_start", "/steps/s1/start", None, False),
            ("process.progress", "/progress", {"progress": 40 + p}, False),
            ("process.step_complete", "/steps/s1/complete", {"message": "one"}, False),
            ("process.step_start", "/steps/s2/start", None, False),
            ("process.log", "/log", {"message": "half way", "level": "info"}, False),
            ("process.step_complete", "/steps/s2/complete", None, False),
            ("process.complete", "/complete", {"object_id": f"obj-{p}"}, False),
            ("process.progress", "/progress", {"progress": 99}, True),
        ]
    elif kind == "fail_retry":
        rest = [
            ("process.step_start", "/steps/s1/start", None, False),
            ("process.fail", "/fail", {"exception": "boom"}, False),
            ("process.progress", "/progress", {"progress": 50}, True),
            ("process.retry", "/retry", None, False),
            ("process.progress", "/progress", {"progress": 20 + p}, False),
            ("process.step_start", "/steps/s1/start", None, False),
            ("process.step_complete", "/steps/s1/complete", None, False),
            ("process.complete", "/complete", {"object_id": "retried"}, False),
        ]
    elif kind == "cancel":
        rest = [
            ("process.progress", "/progress", {"progress": p}, False),
            ("process.cancel", "/cancel", {"reason": "enough"}, False),
            ("process.step_start", "/steps/s1/start", None, True),
            ("process.start", "/start", None, True),
        ]
    else:
        rest = [
            ("process.start", "/start", None, False),
            ("process.start", "/start", None, True),
            ("process.step_start", "/steps/s1/start", None, False),
            ("process.step_complete", "/steps/s1/complete", None, False),
            ("process.step_complete", "/steps/s1/complete", None, True),
            ("process.progress", "/progress", {"progress": 70 + p}, False),
            ("process.complete", "/complete", {}, False),
        ]
    return [create, *rest]


@dataclass
class Sent:
    """One command as the client sent it, and what came of it."""

    process_id: str
    name: str
    body: dict[str, Any]
    step_id: str | None
    key: str
    command_id: str
    must_reject: bool
    mode: str
    attempts: int = 0
    status: int | None = None  # the final HTTP status; None: given up
    echo: tuple[int, bool] | None = None  # (status, replayed) of a repeat after the answer
    # Run.node_generation when the last attempt was sent and when its answer came.
    generations: tuple[int, int] = (-1, -2)
    replayed: bool = False
    response: Any = None
    position: tuple[int, int] | None = None
    problems: list[str] = field(default_factory=list)  # unexpected answers on the way

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def rejected(self) -> bool:
        return self.status in (404, 409)


@dataclass
class Run:
    seed: int
    stack: Stack
    sent: list[Sent] = field(default_factory=list)
    by_process: dict[str, list[Sent]] = field(default_factory=lambda: defaultdict(list))
    abandoned: set[str] = field(default_factory=set)
    kills: list[str] = field(default_factory=list)
    bursts: list[threading.Thread] = field(default_factory=list)
    retries: int = 0
    scripted: int = 0  # commands of the Processes' scripts sent so far
    # Even while one node serves; odd from a node's kill until the next one is healthy.
    node_generation: int = 0
    status_checks: int = 0  # GET /command/{id} compared with the ledger
    stop_at: float = 0.0

    def fail(self, problems: list[str], what: str) -> str:
        shown = "\n  ".join(problems[:25])
        more = f"\n  ... and {len(problems) - 25} more" if len(problems) > 25 else ""
        return (
            f"[seed={self.seed}] {what}: {len(problems)} problem(s)\n  {shown}{more}\n"
            f"kills: {self.kills}\ndecider log:\n{self.stack.log_tail('decider', 15)}\n"
            f"node log:\n{self.stack.log_tail('node', 15)}"
        )


# -- the client ---------------------------------------------------------------------------


def _request_options(mode: str) -> tuple[dict[str, str], dict[str, str]]:
    """(query params, headers) of a request mode."""
    if mode == "async":
        return {}, {"Prefer": "respond-async"}
    if mode == "wait":
        return {"wait": "true"}, {}
    if mode == "nowait":
        return {"wait": "false"}, {}
    return {}, {}


async def _send(
    run: Run, client: httpx.AsyncClient, sent: Sent, path: str, impatient: bool
) -> None:
    """POST until the API answers something other than 'no answer' (connection error,
    503, or no answer within 1 s for an ``impatient`` client), with the same
    Idempotency-Key every time, for at most RETRY_FOR_S."""
    params, headers = _request_options(sent.mode)
    headers["Idempotency-Key"] = sent.key
    deadline = time.monotonic() + RETRY_FOR_S
    delay = 0.1
    timeout = IMPATIENT_S if impatient else COMMAND_TIMEOUT_S + 20
    while time.monotonic() < deadline:
        sent.attempts += 1
        before = run.node_generation
        try:
            r = await client.post(
                path,
                json=sent.body if sent.body else None,
                params=params,
                headers=headers,
                timeout=timeout,
            )
        except httpx.TransportError as exc:
            sent.problems.append(f"attempt {sent.attempts}: {type(exc).__name__}")
        else:
            if r.status_code in (401, 503):
                # 401: a restarted node that has not re-read its tokens; 503: Kafka did
                # not take the command. Neither recorded anything final: send again.
                sent.problems.append(f"attempt {sent.attempts}: {r.status_code} {r.text[:120]}")
            else:
                sent.status = r.status_code
                sent.generations = (before, run.node_generation)
                sent.response = r.json()
                sent.replayed = r.headers.get("Idempotent-Replayed") == "true"
                got = r.headers.get("Ledger-Command-Id")
                if got is not None and got != sent.command_id:
                    sent.problems.append(f"Ledger-Command-Id {got} != derived {sent.command_id}")
                position = r.headers.get("Ledger-Position")
                if position:
                    part, off = position.split(":")
                    sent.position = (int(part), int(off))
                return
        run.retries += 1
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


PRINCIPAL = Principal(account=ACCOUNT, actor="chaos-test")


def _new_sent(
    run: Run,
    process_id: str,
    name: str,
    body: dict[str, Any] | None,
    step_id: str | None,
    key: str,
    mode: str,
    must_reject: bool = False,
) -> Sent:
    """A command about to be sent, with the id the API derives from its key; recorded."""
    sent = Sent(
        process_id=process_id,
        name=name,
        body=dict(body or {}),
        step_id=step_id,
        key=key,
        command_id=derived_id(PRINCIPAL, key, f"{name} {process_id}"),
        must_reject=must_reject,
        mode=mode,
    )
    run.sent.append(sent)  # list.append: safe from the burst threads too
    return sent


async def _drive_process(run: Run, client: httpx.AsyncClient, rng: random.Random) -> None:
    principal = PRINCIPAL
    script = _script(rng)
    process_key = f"chaos-{uuid.UUID(int=rng.getrandbits(128))}"
    process_id = derived_id(principal, process_key, "process")
    for index, (name, suffix, body, must_reject) in enumerate(script):
        if run.scripted >= MAX_COMMANDS or time.monotonic() >= run.stop_at:
            return
        key = process_key if suffix is None else f"{process_key}-{index}"
        step_id = suffix.split("/")[2] if suffix and suffix.startswith("/steps/") else None
        mode = rng.choice(["async", "async", "default", "wait", "nowait"])
        sent = _new_sent(run, process_id, name, body, step_id, key, mode, must_reject)
        run.scripted += 1
        run.by_process[process_id].append(sent)
        path = "/process" if suffix is None else f"/process/{process_id}{suffix}"
        await _send(run, client, sent, path, impatient=rng.random() < IMPATIENT_SHARE)
        if sent.status is None:
            run.abandoned.add(process_id)  # its next command might overtake this one
            return
        if rng.random() < ECHO_SHARE:
            # The same request again, as a client that lost the answer sends it: the
            # same command, which the decider must not apply twice.
            first = (sent.status, sent.replayed, sent.response, sent.position)
            sent.status = None
            await _send(run, client, sent, path, impatient=False)
            if sent.status is None:
                run.abandoned.add(process_id)
                return
            sent.echo = (sent.status, sent.replayed)
            sent.status, sent.replayed, sent.response, sent.position = first
        await asyncio.sleep(WORKERS / TARGET_RATE * rng.uniform(0.5, 1.5))


async def _clients(run: Run) -> None:
    token = run.stack.token(ACCOUNT)

    async def worker(number: int) -> None:
        rng = random.Random(f"{run.seed}-{number}")
        async with httpx.AsyncClient(
            base_url=run.stack.url, headers={"Authorization": f"Bearer {token}"}
        ) as client:
            while run.scripted < MAX_COMMANDS and time.monotonic() < run.stop_at:
                await _drive_process(run, client, rng)

    await asyncio.gather(*(worker(n) for n in range(WORKERS)))


async def _burst(run: Run, name: str, answered: list[int]) -> None:
    """A new Process, then BURST log commands on it with ``Prefer: respond-async`` from
    BURST_SENDERS clients at once: meanwhile the decider is busy inside its
    transactions, so a kill lands in one. ``answered[0]`` counts the answers."""
    key = f"chaos-{name}"
    process_id = derived_id(PRINCIPAL, key, "process")
    body = {"type": PROCESS_TYPE, "steps": STEPS}
    token = run.stack.token(ACCOUNT)
    async with httpx.AsyncClient(
        base_url=run.stack.url, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        create = _new_sent(run, process_id, "process.create", body, None, key, "wait")
        await _send(run, client, create, "/process", impatient=False)
        if create.status is None:
            return
        todo = list(range(BURST))

        async def sender() -> None:
            while todo:
                n = todo.pop()
                log = {"message": f"burst {n}", "level": "info"}
                sent = _new_sent(run, process_id, "process.log", log, None, f"{key}-{n}", "async")
                await _send(run, client, sent, f"/process/{process_id}/log", impatient=False)
                answered[0] += 1

        await asyncio.gather(*(sender() for _ in range(BURST_SENDERS)))


def _start_burst(run: Run, name: str) -> tuple[threading.Thread, list[int]]:
    answered = [0]
    thread = threading.Thread(
        target=lambda: asyncio.run(_burst(run, name, answered)), name=name, daemon=True
    )
    thread.start()
    run.bursts.append(thread)
    return thread, answered


def _killer(run: Run, started: float, done: threading.Event) -> None:
    """SIGKILL the decider 3 to 5 times and the node once or twice, at seeded moments
    in the first KILLS_WITHIN_S; each comes back at once (the node: once healthy).
    A decider is killed in the middle of a burst of commands."""
    rng = random.Random(f"{run.seed}-killer")
    plan = [("decider", 0.0)] * rng.randint(3, 5) + [("node", 0.0)] * rng.randint(1, 2)
    rng.shuffle(plan)
    slot = KILLS_WITHIN_S / len(plan)
    plan = [(name, 2 + i * slot + rng.uniform(0, slot - 2)) for i, (name, _) in enumerate(plan)]
    try:
        for number, (name, at) in enumerate(plan):
            time.sleep(max(0.0, started + at - time.monotonic()))
            if name == "decider":
                _, answered = _start_burst(run, f"burst-{run.seed}-{number}")
                target = rng.randint(BURST // 5, BURST * 2 // 3)
                deadline = time.monotonic() + 10
                while answered[0] < target and time.monotonic() < deadline:
                    time.sleep(0.005)
            if name == "node":
                run.node_generation += 1
            run.stack.kill(name, signal.SIGKILL)
            run.kills.append(f"{name}@{time.monotonic() - started:.1f}s")
            if name == "decider":
                time.sleep(rng.uniform(0, 1.5))
            run.stack.start(name)
            if name == "node":
                run.node_generation += 1
    finally:
        done.set()


# -- reading the log ----------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    value: bytes


async def _read_topic(bootstrap: str, topic: str, isolation: str) -> list[Record]:
    """Every record of ``topic`` up to its end when the read began."""
    records = await read_topic(bootstrap, topic, isolation)
    return [Record(r.partition, r.offset, r.value) for r in records if r.value is not None]


def _outcomes(stack: Stack) -> list[serde.Outcome]:
    codec = default_codec()
    records = asyncio.run(
        _read_topic(stack.bootstrap, Topics(stack.prefix).outcomes, "read_committed")
    )
    return [serde.decode_outcome(codec, r.value) for r in records]


def _settle(run: Run) -> list[serde.Outcome]:
    """Wait until every command the API answered has an outcome in the ledger."""
    answered = {s.command_id for s in run.sent if s.status is not None}
    deadline = time.monotonic() + SETTLE_S
    while True:
        outcomes = _outcomes(run.stack)
        missing = answered - {o.command_id for o in outcomes}
        if not missing:
            return outcomes
        if time.monotonic() > deadline:
            problems = [
                f"{s.command_id} {s.name} of {s.process_id} ({s.mode}, {s.status})"
                for s in run.sent
                if s.command_id in missing
            ]
            pytest.fail(run.fail(problems, "answered commands without an outcome (lost)"))
        time.sleep(1)


# -- the checks ---------------------------------------------------------------------------


def _check_outcomes(
    run: Run, outcomes: list[serde.Outcome], events: dict[str, list[tuple[Record, Event]]]
) -> list[str]:
    """One decision per answered command, matching its HTTP answer and its events."""
    problems: list[str] = []
    by_command: dict[str, list[serde.Outcome]] = defaultdict(list)
    for o in outcomes:
        by_command[o.command_id].append(o)
    positions_of: dict[str, set[tuple[int, int]]] = defaultdict(set)
    for pairs in events.values():
        for record, ev in pairs:
            positions_of[ev.command_id].add((record.partition, record.offset))
    for s in run.sent:
        outs = by_command.get(s.command_id, [])
        label = f"{s.name} {s.command_id} of {s.process_id} (HTTP {s.status}, {s.mode})"
        if s.status is None:
            if len(outs) > s.attempts:
                problems.append(f"{label}: {len(outs)} outcomes for {s.attempts} attempts")
            continue
        if not outs:
            problems.append(f"{label}: no outcome")
            continue
        if len(outs) > s.attempts:
            problems.append(f"{label}: {len(outs)} outcomes for {s.attempts} attempts")
        firsts = [o for o in outs if o.accepted and not o.duplicate]
        rejections = [o for o in outs if not o.accepted]
        if firsts:
            if len(firsts) > 1 or rejections:
                problems.append(
                    f"{label}: decided {len(firsts)} times accepted, {len(rejections)} rejected"
                )
            first = firsts[0]
            named = {(p.partition, p.offset) for p in first.events}
            for dup in outs:
                if dup is not first and {(p.partition, p.offset) for p in dup.events} != named:
                    problems.append(f"{label}: a duplicate outcome names other events")
            if positions_of.get(s.command_id, set()) != named:
                problems.append(
                    f"{label}: events in the log {sorted(positions_of.get(s.command_id, set()))}"
                    f" != events of its outcome {sorted(named)}"
                )
            if s.status in (404, 409):
                problems.append(f"{label}: answered {s.status} but accepted in the ledger")
        else:
            if s.command_id in positions_of:
                problems.append(f"{label}: rejected, yet events carry its command_id")
            if s.status in (200, 201):
                problems.append(f"{label}: answered {s.status} but rejected in the ledger")
            if len({o.reason_code for o in rejections}) > 1:
                problems.append(f"{label}: rejected for different reasons")
        if s.must_reject and firsts:
            problems.append(f"{label}: must be rejected by the state, was accepted")
        if s.echo is not None:
            status, replayed = s.echo
            if status in (200, 201) and not (firsts and replayed):
                problems.append(f"{label}: repeated, answered {status} replayed={replayed}")
            if status in (404, 409) and firsts:
                problems.append(f"{label}: repeated, answered {status} though accepted")
    return problems


def _events_by_aggregate(stack: Stack) -> tuple[dict[str, list[tuple[Record, Event]]], list[str]]:
    codec = default_codec()
    topic = Topics(stack.prefix).events
    records = asyncio.run(_read_topic(stack.bootstrap, topic, "read_committed"))
    out: dict[str, list[tuple[Record, Event]]] = defaultdict(list)
    problems: list[str] = []
    seen_ids: dict[str, tuple[int, int]] = {}
    for r in records:
        try:
            ev = serde.decode_event(codec, r.value)
        except Exception as exc:  # noqa: BLE001 - any undecodable event is a finding
            problems.append(f"event at {r.partition}:{r.offset} does not decode: {exc}")
            continue
        if ev.event_id in seen_ids:
            problems.append(
                f"event_id {ev.event_id} at {r.partition}:{r.offset} repeats "
                f"{seen_ids[ev.event_id]}"
            )
        seen_ids[ev.event_id] = (r.partition, r.offset)
        out[aggregates.stream_key(ev.aggregate_type, ev.aggregate_id)].append((r, ev))
    for key, pairs in out.items():
        seqs = [ev.seq for _, ev in pairs]
        if seqs != list(range(1, len(seqs) + 1)):
            problems.append(f"{key}: seq in log order is {seqs}, not 1..{len(seqs)}")
    return out, problems


def _model_check(run: Run, events: dict[str, list[tuple[Record, Event]]]) -> list[str]:
    """Decide each Process's answered commands, in the order they were sent, with the
    pure domain: the same answers and event types as the ledger."""
    problems: list[str] = []
    for process_id, sends in run.by_process.items():
        if process_id in run.abandoned:
            continue
        state = None
        expected: list[str] = []
        for s in sends:
            fields = dict(s.body)
            if s.step_id is not None:
                fields["step_id"] = s.step_id
            cmd = Command(
                s.command_id, "process", process_id, 0, ACCOUNT, "m", s.command_id,
                s.command_id, parse_body(s.name, fields),
            )  # fmt: skip
            try:
                decided = aggregates.decide(state, cmd)
            except Rejected:
                if not s.must_reject:
                    problems.append(f"{process_id}: the script expects {s.name} to be accepted")
                continue
            if s.must_reject:
                problems.append(f"{process_id}: the script expects {s.name} to be rejected")
            for ev in decided:
                state = aggregates.evolve(state, ev)
                expected.append(f"{ev.type}<{s.command_id[:8]}")
        logged = [
            f"{ev.type}<{ev.command_id[:8]}" for _, ev in events.get(f"process:{process_id}", [])
        ]
        if logged != expected:
            problems.append(f"process:{process_id}: ledger {logged} != model {expected}")
    return problems


def _fold(pairs: list[tuple[Record, Event]], upto_seq: int | None = None) -> Any:
    state = None
    for _, ev in pairs:
        if upto_seq is not None and ev.seq > upto_seq:
            break
        state = aggregates.evolve(state, ev)
    return state


def _check_answers(
    run: Run, outcomes: list[serde.Outcome], events: dict[str, list[tuple[Record, Event]]]
) -> list[str]:
    """A 200/201 body is the Process right after its command: the ledger's fold."""
    firsts = {o.command_id: o for o in outcomes if o.accepted and not o.duplicate}
    problems: list[str] = []
    for s in run.sent:
        if s.status not in (200, 201) or s.replayed or s.command_id not in firsts:
            continue
        last = max(p.seq for p in firsts[s.command_id].events)
        folded = process_json(_fold(events[f"process:{s.process_id}"], last))
        if s.response != folded:
            problems.append(f"{s.name} {s.command_id}: answered {s.response} != ledger {folded}")
    return problems


def _check_reads(
    run: Run, client: httpx.Client, events: dict[str, list[tuple[Record, Event]]]
) -> list[str]:
    problems: list[str] = []
    r = client.get("/process", params={"type": PROCESS_TYPE, "limit": 1000, "wait": "true"})
    assert r.status_code == 200, f"[seed={run.seed}] {r.text}"
    listed = {p["id"]: p for p in r.json()["results"]}
    for s in run.sent:
        if s.name == "process.create" and s.acknowledged and s.process_id not in listed:
            problems.append(f"acknowledged create of {s.process_id} missing from GET /process")
    for key, pairs in events.items():
        if not key.startswith("process:"):
            continue
        state = _fold(pairs)
        if state.type != PROCESS_TYPE:
            continue
        pid = state.id
        got = client.get(f"/process/{pid}")
        if got.status_code != 200 or got.json() != process_json(state):
            problems.append(f"GET /process/{pid}: {got.text} != fold {process_json(state)}")
        if listed.get(pid) != process_json(state):
            problems.append(f"GET /process lists {pid} as {listed.get(pid)}")
        steps = client.get(f"/process/{pid}/steps", params={"limit": 100})
        ordered = sorted(state.steps, key=lambda st: (st.order, st.step_id))
        if steps.status_code != 200 or steps.json()["results"] != [step_json(st) for st in ordered]:
            problems.append(f"GET /process/{pid}/steps: {steps.text}")
    return problems


def _check_statuses(run: Run, client: httpx.Client, outcomes: list[serde.Outcome]) -> list[str]:
    """``GET /command/{id}`` of every 202 the running node gave: the ledger's decision.

    Only 202s from the node that still runs are asked for (sent and answered while it
    served): a node remembers the commands it accepted, and other nodes' submissions
    only from its own start on (docs/operations.md, "Several nodes"), and a 202 given
    because the decider was slow only on the node that gave it."""
    decided: dict[str, serde.Outcome] = {}
    for o in outcomes:
        if o.command_id not in decided or (o.accepted and not o.duplicate):
            decided[o.command_id] = o
    current = (run.node_generation, run.node_generation)
    problems: list[str] = []
    deadline = time.monotonic() + 15  # for all of them: the outcomes are in the ledger
    for s in run.sent:
        if s.status != 202 or s.echo is not None or s.generations != current:
            continue
        outcome = decided[s.command_id]
        run.status_checks += 1
        while True:
            r = client.get(f"/command/{s.command_id}")
            body = r.json()
            if r.status_code != 200 or body["status"] != "pending":
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        label = f"GET /command/{s.command_id} ({s.name} of {s.process_id}, {s.mode})"
        if r.status_code != 200:
            problems.append(f"{label}: {r.status_code} {r.text}")
            continue
        position = outcome.position
        expected = {
            "status": "accepted" if outcome.accepted else "rejected",
            "position": None if position is None else f"{position[0]}:{position[1]}",
            "http_status": None if outcome.accepted else rejection(outcome.reason_code)[0],
        }
        got = {name: body[name] for name in expected}
        if got != expected:
            problems.append(f"{label}: {got} != the ledger's {expected}")
    return problems


def _aborted_records(stack: Stack) -> int:
    """Records in ledger.events that a transaction wrote and never committed: proof
    that a kill landed inside a transaction of the decider."""
    topic = Topics(stack.prefix).events
    everything = asyncio.run(_read_topic(stack.bootstrap, topic, "read_uncommitted"))
    committed = asyncio.run(_read_topic(stack.bootstrap, topic, "read_committed"))
    return len(everything) - len(committed)


# -- the test -----------------------------------------------------------------------------


def test_commands_through_the_api_survive_sigkilled_deciders_and_nodes(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    seed = int(os.environ.get("RUNLEDGER_CHAOS_SEED") or random.SystemRandom().randrange(10**6))
    began = time.monotonic()
    stack = start_stack(
        kafka_bootstrap, tmp_path / "stack", {"RUNLEDGER_COMMAND_TIMEOUT_S": str(COMMAND_TIMEOUT_S)}
    )
    run = Run(seed, stack)
    try:
        stack.authenticated(ACCOUNT).close()
        started = time.monotonic()
        run.stop_at = started + LOOP_S
        done = threading.Event()
        killer = threading.Thread(target=_killer, args=(run, started, done), daemon=True)
        killer.start()
        asyncio.run(_clients(run))
        loop_s = time.monotonic() - started
        killer.join(60)
        assert done.is_set(), f"[seed={seed}] the killer did not finish: {run.kills}"
        for burst in run.bursts:
            burst.join(RETRY_FOR_S + 15)
            assert not burst.is_alive(), f"[seed={seed}] {burst.name} did not finish"
        assert len(run.kills) >= 4, f"[seed={seed}] only {run.kills}"
        for name in ("decider", "node"):
            proc = stack.procs.get(name)
            assert proc is not None and proc.poll() is None, (
                f"[seed={seed}] {name} is not running:\n{stack.log_tail(name)}"
            )
        unexpected = [
            f"{s.name} {s.command_id}: HTTP {s.status} {s.response}"
            for s in run.sent
            if s.status is not None and s.status not in (200, 201, 202, 404, 409)
        ]
        assert not unexpected, run.fail(unexpected, "unexpected HTTP answers")

        outcomes = _settle(run)
        events, problems = _events_by_aggregate(stack)
        assert not problems, run.fail(problems, "ledger.events is not a clean log")
        dlq = asyncio.run(_read_topic(stack.bootstrap, Topics(stack.prefix).dlq, "read_committed"))
        assert not dlq, run.fail([f"dead letter at {r.partition}:{r.offset}" for r in dlq], "dlq")
        problems = _check_outcomes(run, outcomes, events)
        assert not problems, run.fail(problems, "outcomes do not match the answers")
        problems = _model_check(run, events)
        assert not problems, run.fail(problems, "the ledger differs from the pure model")
        problems = _check_answers(run, outcomes, events)
        assert not problems, run.fail(problems, "answers differ from the ledger")
        with stack.client(ACCOUNT) as client:
            problems = _check_reads(run, client, events)
            assert not problems, run.fail(problems, "reads differ from the ledger")
            problems = _check_statuses(run, client, outcomes)
            assert not problems, run.fail(problems, "command statuses differ from the ledger")

        stack.kill("node", signal.SIGTERM)
        verified = run_verify(stack)
        assert verified.returncode == 0, run.fail(
            [verified.stdout[-3000:], verified.stderr[-2000:]], "runledger verify"
        )
        aborted = _aborted_records(stack)
        statuses: dict[Any, int] = defaultdict(int)
        for s in run.sent:
            statuses[s.status] += 1
        print(
            f"\nchaos seed={seed}: {len(run.sent)} commands in {loop_s:.1f} s over "
            f"{len(run.by_process)} processes ({len(run.abandoned)} abandoned), "
            f"statuses {dict(statuses)}, {run.retries} retries, kills {run.kills}, "
            f"{aborted} aborted event records, {len(outcomes)} outcomes "
            f"({sum(o.duplicate for o in outcomes)} duplicates, "
            f"{sum(s.echo is not None for s in run.sent)} repeated requests), "
            f"{run.status_checks} GET /command checked; "
            f"total {time.monotonic() - began:.1f} s"
        )
    finally:
        stack.stop()
