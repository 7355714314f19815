"""``GET /flowrun/{id}/stream`` and ``GET /caserun/{id}/stream`` on the real broker.

No orchestrator and no runner: the runs are driven by the commands a runner would send
(``flowrun.node_start``, ``caserun.step_pass``, ...) through the command bus, which
also says where each event landed, so every expected position comes from the ledger,
not from the node under test. The node runs with a 2 s window and a 0.3 s heartbeat.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest

from schemas import default_codec
from streams.bus import CommandBus
from streams.domain import caserun as cr
from streams.domain import flowrun as fr
from streams.domain.commands import Body
from streams.topics import Topics
from tests.integration.conftest import Stack, start_stack
from tests.integration.flow_helpers import CASE_STEPS, command, edge, node
from tests.integration.test_api_streams import Message, read_stream

pytestmark = pytest.mark.integration

WINDOW_S = 2.0
Step = tuple[str, str, Body]  # aggregate type, id, command body


@pytest.fixture(scope="module")
def run_stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {"RUNLEDGER_SSE_WINDOW_S": str(WINDOW_S), "RUNLEDGER_SSE_HEARTBEAT_S": "0.3"}
    running = start_stack(kafka_bootstrap, tmp_path_factory.mktemp("runsse"), env)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def client(run_stack: Stack) -> httpx.Client:
    return run_stack.authenticated("acme")


# -- driving a run as a runner would --------------------------------------------------


def flowrun_steps(run_id: str) -> list[Step]:
    """A two-node FlowRun (a -> b), both nodes passing, with a log line: 7 events."""
    nodes = [node("a", "wait", seconds=0), node("b", "wait", seconds=0)]
    create = fr.CreateFlowRun(
        site_id="site-1",
        flow_id="flow-1",
        nodes_json=json.dumps(nodes, sort_keys=True, separators=(",", ":")),
        edges_json=json.dumps([edge("a", "b")], separators=(",", ":")),
        title="sse",
    )
    bodies: list[Body] = [
        create,
        fr.NodeStart("a"),
        fr.LogFlowRun("a is waiting", "a"),
        fr.NodePass("a"),
        fr.NodeStart("b"),
        fr.NodePass("b"),
        fr.CompleteFlowRun(fr.PASSED),
    ]
    return [(fr.AGGREGATE, run_id, b) for b in bodies]


def caserun_steps(run_id: str) -> list[Step]:
    """A CaseRun of the test Case (5 parts), every part started and passed: the last
    pass also completes the run, so its command gives two events (12 in all)."""
    steps = json.dumps(CASE_STEPS, sort_keys=True, separators=(",", ":"))
    bodies: list[Body] = [cr.CreateCaseRun("site-1", "case-1", steps, "sse")]
    for index, step in enumerate(CASE_STEPS):
        for part in ("action", "assertion"):
            if part in step:
                bodies += [cr.CaseStepStart(index, part), cr.CaseStepPass(index, part)]
    return [(cr.AGGREGATE, run_id, b) for b in bodies]


async def _execute(stack: Stack, steps: Sequence[Step], pause: float) -> list[str]:
    bus = CommandBus(stack.bootstrap, Topics(stack.prefix), default_codec())
    await bus.start()
    positions: list[str] = []
    try:
        for aggregate, aggregate_id, body in steps:
            outcome = await bus.execute(command(bus, aggregate, aggregate_id, body), 30)
            assert outcome is not None and outcome.accepted, outcome
            positions += [f"{e.partition}:{e.offset}" for e in outcome.events]
            await asyncio.sleep(pause)
    finally:
        await bus.stop()
    return positions


def execute(stack: Stack, steps: Sequence[Step], pause: float = 0) -> list[str]:
    """Run ``steps`` as commands; the positions of the events they caused, in order."""
    return asyncio.run(_execute(stack, steps, pause))


class Driver(threading.Thread):
    """``execute`` on a thread, so a stream can be read while the run moves on."""

    def __init__(self, stack: Stack, steps: Sequence[Step], pause: float) -> None:
        super().__init__(daemon=True)
        self.args_ = (stack, steps, pause)
        self.positions: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.positions = execute(*self.args_)
        except BaseException as exc:  # reported by finish()
            self.error = exc

    def finish(self) -> list[str]:
        self.join(60)
        assert not self.is_alive(), "the run's commands did not finish"
        if self.error is not None:
            raise self.error
        return self.positions


# -- reading -----------------------------------------------------------------------------


def follow(
    client: httpx.Client, path: str, rng: random.Random | None = None
) -> tuple[list[Message], int]:
    """Every message of ``path`` up to ``done``, reconnecting with Last-Event-ID after
    each close (the window) or, with ``rng``, after a random number of messages and a
    random pause; the messages and the number of connections."""
    got: list[Message] = []
    last_id: str | None = None
    connections = 0
    while not got or got[-1].event != "done":
        connections += 1
        assert connections < 200, f"no done on {path}; got {[m.event for m in got]}"
        stop_after = rng.choice([1, 2, 3]) if rng else None
        read = read_stream(client, path, last_id, stop_after=stop_after)
        got += read.messages
        ids = [m.id for m in read.messages if m.id and m.event != "done"]
        last_id = ids[-1] if ids else last_id
        if rng:
            time.sleep(rng.choice([0, 0.05, 0.3]))  # events happen while away
    return got, connections


def check_messages(client: httpx.Client, noun: str, run_id: str, got: list[Message]) -> None:
    """Each message: ``id`` the event's position, ``event`` its type, ``data`` the run
    after the event and the event; the last is ``done`` with the final status."""
    *events, done = got
    datas = [json.loads(m.data) for m in events]
    assert [d["event"]["position"] for d in datas] == [m.id for m in events]
    assert [d["event"]["type"] for d in datas] == [m.event for m in events]
    assert [d["event"]["seq"] for d in datas] == list(range(1, len(events) + 1))
    assert all(d["state"]["id"] == run_id for d in datas)
    current = client.get(f"/{noun}/{run_id}", params={"wait": "true"}).json()
    assert datas[-1]["state"] == current
    assert done.event == "done" and done.id is None
    assert json.loads(done.data) == {"status": current["status"], "position": events[-1].id}
    # ?as_of at each event's time answers the state sent after it, unless a later event
    # (of the same command) has the same time.
    times = [d["event"]["created_at"] for d in datas]
    for i, d in enumerate(datas):
        if times[i] not in times[i + 1 :]:
            r = client.get(f"/{noun}/{run_id}", params={"as_of": times[i]})
            assert r.status_code == 200, r.text
            assert r.json() == d["state"], (noun, d["event"]["type"])


# -- tests -------------------------------------------------------------------------------


def test_a_flowrun_is_followed_live_to_done_across_window_cuts(
    run_stack: Stack, client: httpx.Client
) -> None:
    run_id = str(uuid.uuid4())
    steps = flowrun_steps(run_id)
    positions = execute(run_stack, steps[:1])  # the stream answers 404 until it exists
    # ~3.5 s of commands against a 2 s window: the window cuts the stream on the way.
    driver = Driver(run_stack, steps[1:], pause=0.5)
    driver.start()
    got, connections = follow(client, f"/flowrun/{run_id}/stream")
    positions += driver.finish()
    assert connections >= 2
    assert [m.id for m in got[:-1]] == positions  # no gap, no duplicate
    check_messages(client, "flowrun", run_id, got)
    datas = [json.loads(m.data) for m in got[:-1]]
    assert [d["event"]["type"] for d in datas] == [
        "flowrun.created",
        "flowrun.node_started",
        "flowrun.log",
        "flowrun.node_passed",
        "flowrun.node_started",
        "flowrun.node_passed",
        "flowrun.completed",
    ]
    # The state is the run right after each event, not after the latest one.
    node_a = [next(n for n in d["state"]["nodes"] if n["id"] == "a") for d in datas]
    assert [n["data"]["status"] for n in node_a[:4]] == ["queued", "working", "working", "passed"]
    logged = [any(x["message"] == "a is waiting" for x in d["state"]["logs"]) for d in datas]
    assert logged == [False, False, True, True, True, True, True]
    assert [d["state"]["status"] for d in datas][-1] == "passed"
    assert len({d["state"]["status"] for d in datas[:-1]} & set(fr.RUN_TERMINAL)) == 0


def test_a_finished_flowrun_stream_replays_and_ends_with_done_before_the_window(
    run_stack: Stack, client: httpx.Client
) -> None:
    run_id = str(uuid.uuid4())
    positions = execute(run_stack, flowrun_steps(run_id))
    began = time.monotonic()
    read = read_stream(client, f"/flowrun/{run_id}/stream")
    took = time.monotonic() - began
    assert read.ended and took < WINDOW_S  # done closed it, not the window
    assert [m.id for m in read.messages[:-1]] == positions
    check_messages(client, "flowrun", run_id, read.messages)
    # Resuming after any event gives exactly the rest, then done.
    for k, last in enumerate(positions):
        again = read_stream(client, f"/flowrun/{run_id}/stream", last_id=last)
        assert again.ended
        assert [m.id for m in again.messages[:-1]] == positions[k + 1 :]
        assert again.messages[-1].event == "done"


def test_a_caserun_stream_resumes_mid_run_without_gap_or_duplicate(
    run_stack: Stack, client: httpx.Client
) -> None:
    run_id = str(uuid.uuid4())
    steps = caserun_steps(run_id)
    positions = execute(run_stack, steps[:1])
    driver = Driver(run_stack, steps[1:], pause=0.2)
    driver.start()
    got, connections = follow(client, f"/caserun/{run_id}/stream", random.Random(7))
    positions += driver.finish()
    assert connections > 3
    assert [m.id for m in got if m.event != "done"] == positions
    assert [m.event for m in got].count("done") == 1
    check_messages(client, "caserun", run_id, got)
    datas = [json.loads(m.data) for m in got[:-1]]
    # The last pass and the completion come from one command, in one batch: each
    # message still carries the state right after its own event.
    *_, last_pass, completed = datas
    assert last_pass["event"]["type"] == "caserun.step_passed"
    assert last_pass["state"]["status"] == "working"
    assert completed["event"]["type"] == "caserun.completed"
    assert completed["state"]["status"] == "passed"
    passed_parts = [_parts_passed(d["state"]) for d in datas]
    passes = [d["event"]["type"] == "caserun.step_passed" for d in datas]
    assert passed_parts == [sum(passes[: i + 1]) for i in range(len(passes))]


def _parts_passed(state: dict[str, Any]) -> int:
    count = 0
    for step in state["steps"]:
        for part in (step["action"], step["assertion"]):
            if isinstance(part, dict) and part.get("status") == "passed":
                count += 1
    return count


def test_a_cancelled_caserun_ends_its_stream_with_done(
    run_stack: Stack, client: httpx.Client
) -> None:
    run_id = str(uuid.uuid4())
    steps = caserun_steps(run_id)[:2] + [(cr.AGGREGATE, run_id, cr.CancelCaseRun("enough"))]
    positions = execute(run_stack, steps[:2])
    driver = Driver(run_stack, steps[2:], pause=0)
    driver.start()
    got, _ = follow(client, f"/caserun/{run_id}/stream")
    positions += driver.finish()
    assert [m.id for m in got[:-1]] == positions
    check_messages(client, "caserun", run_id, got)
    assert json.loads(got[-1].data)["status"] == "cancelled"
    other = run_stack.authenticated("globex")
    assert other.get(f"/caserun/{run_id}/stream").status_code == 404
    assert client.get(f"/flowrun/{run_id}/stream").status_code == 404  # not a flowrun
