"""A FlowRun end to end on the real broker and a real Chromium: decider and node (as
`runledger up` runs them), plus `runledger orchestrator` and `runledger runner` as
child processes, against the local test site.

The run is driven with commands on ``ledger.commands`` (``site.create``,
``case.create``, ``flowrun.create``) through the command bus, and checked on
``ledger.events``: the ledger itself, not a projection, must hold every step.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator

import pytest

from schemas import default_codec
from streams.bus import CommandBus
from streams.domain import flowrun as f
from streams.domain.events import Event
from streams.topics import Topics
from tests.integration.conftest import Stack
from tests.integration.flow_helpers import (
    allowed_stack,
    command,
    completed,
    node,
    of,
    serve_test_site,
)
from tests.integration.flow_helpers import create_run as _create
from tests.integration.flow_helpers import read_events as _events
from tests.site.server import TestSite

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def site() -> Iterator[TestSite]:
    yield from serve_test_site()


@pytest.fixture(scope="module")
def flow_stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from allowed_stack(
        kafka_bootstrap, tmp_path_factory.mktemp("flow"), "orchestrator", "runner"
    )


def test_scan_case_webhook_flow_passes_with_every_event_in_the_ledger(
    flow_stack: Stack, site: TestSite
) -> None:
    nodes = [
        node("scan", "scan", uri="/", threshold=90),
        node("case", "case"),
        node(
            "hook",
            "webhook",
            uri=site.url("/hook"),
            request_type="POST",
            headers='{"X-Test": "e2e"}',
            payload='{"hello": "flow"}',
        ),
    ]
    edges = [{"source": "scan", "target": "case"}, {"source": "case", "target": "hook"}]
    started = time.monotonic()
    run_id = asyncio.run(_create(flow_stack, site.base_url + "/", nodes, edges))
    events = asyncio.run(_events(flow_stack, completed(run_id), 120))
    run = of(events, run_id)
    assert run, f"no events of the run\n{flow_stack.log_tail('runner')}"
    assert run[-1].type == "flowrun.completed", (
        [e.type for e in run],
        flow_stack.log_tail("orchestrator"),
        flow_stack.log_tail("runner"),
    )
    assert run[-1].data.status == "passed", [(e.type, e.data) for e in run]
    assert [e.seq for e in run] == list(range(1, len(run) + 1))  # gapless, each once
    kinds = [(e.type, getattr(e.data, "node_id", None)) for e in run if e.type != "flowrun.log"]
    assert kinds == [
        ("flowrun.created", None),
        ("flowrun.node_started", "scan"),
        ("flowrun.node_passed", "scan"),
        ("flowrun.node_started", "case"),
        ("flowrun.node_passed", "case"),
        ("flowrun.node_started", "hook"),
        ("flowrun.node_passed", "hook"),
        ("flowrun.completed", None),
    ]
    reports = [e for e in run if e.type != "flowrun.log"]
    scan_result = json.loads(reports[2].data.result_json)
    assert scan_result["status"] == 200 and len(scan_result["screenshot"]) == 64
    assert (flow_stack.data_dir / "artifacts" / scan_result["screenshot"][:2]).is_dir()
    caserun_id = reports[4].data.object_id
    case_events = of(events, caserun_id)
    assert [
        (e.type, getattr(e.data, "index", None), getattr(e.data, "part", None)) for e in case_events
    ] == [
        ("caserun.created", None, None),
        ("caserun.step_started", 0, "action"),
        ("caserun.step_passed", 0, "action"),
        ("caserun.step_started", 0, "assertion"),
        ("caserun.step_passed", 0, "assertion"),
        ("caserun.step_started", 1, "action"),
        ("caserun.step_passed", 1, "action"),
        ("caserun.step_started", 2, "action"),
        ("caserun.step_passed", 2, "action"),
        ("caserun.step_started", 2, "assertion"),
        ("caserun.step_passed", 2, "assertion"),
        ("caserun.completed", None, None),
    ]
    hooks = [h for h in site.hooks if h.headers.get("X-Test") == "e2e"]
    assert len(hooks) == 1 and json.loads(hooks[0].body) == {"hello": "flow"}
    print(f"flow passed in {time.monotonic() - started:.1f}s")


def test_a_private_target_is_refused_without_the_setting(flow_stack: Stack, site: TestSite) -> None:
    flow_stack.kill("runner", signal.SIGTERM)  # leaves the groups: no session timeout
    flow_stack.extra_env.pop("RUNLEDGER_ALLOW_PRIVATE_TARGETS", None)
    flow_stack.start("runner")
    try:
        run_id = asyncio.run(_create(flow_stack, site.base_url + "/", [node("scan", "scan")], []))
        events = asyncio.run(_events(flow_stack, completed(run_id), 90))
        run = of(events, run_id)
        failed = [e for e in run if e.type == "flowrun.node_failed"]
        assert failed, ([e.type for e in run], flow_stack.log_tail("runner"))
        assert "refused" in failed[0].data.exception
        assert "loopback" in failed[0].data.exception
        assert run[-1].type == "flowrun.completed" and run[-1].data.status == "failed"
    finally:
        flow_stack.kill("runner", signal.SIGTERM)
        flow_stack.extra_env["RUNLEDGER_ALLOW_PRIVATE_TARGETS"] = "1"
        flow_stack.start("runner")


def test_cancel_stops_a_running_job_within_two_seconds(flow_stack: Stack, site: TestSite) -> None:
    waiting = node("wait", "wait")
    waiting["data"]["configs"] = {"timeout": 120, "max_wait_time": 60, "min_wait_time": 60}
    after = node("hook", "webhook", uri=site.url("/hook"), payload='{"after": "cancel"}')
    run_id = asyncio.run(
        _create(
            flow_stack,
            site.base_url + "/",
            [waiting, after],
            [{"source": "wait", "target": "hook"}],
        )
    )

    def waiting(events: list[Event]) -> bool:  # the runner's first report of the job
        return any(
            e.aggregate_id == run_id
            and e.type == "flowrun.log"
            and e.data.message.startswith("waiting")
            for e in events
        )

    assert waiting(asyncio.run(_events(flow_stack, waiting, 60))), flow_stack.log_tail("runner")

    async def cancel() -> None:
        bus = CommandBus(flow_stack.bootstrap, Topics(flow_stack.prefix), default_codec())
        await bus.start()
        try:
            outcome = await bus.execute(
                command(bus, f.AGGREGATE, run_id, f.CancelFlowRun("test")), 30
            )
            assert outcome is not None and outcome.accepted, outcome
        finally:
            await bus.stop()

    asyncio.run(cancel())
    deadline = time.monotonic() + 10
    line = ""
    while time.monotonic() < deadline and not line:
        log = flow_stack.log_tail("runner", 200)
        line = next((x for x in log.splitlines() if "after its run was cancelled" in x), "")
        time.sleep(0.2)
    assert line, flow_stack.log_tail("runner")
    latency = float(line.split(" stopped ")[1].split(" s ")[0])
    print(f"cancel latency {latency:.3f}s")
    assert latency < 2.0
    events = asyncio.run(_events(flow_stack, lambda events: False, 3))
    run = of(events, run_id)
    assert run[-1].type == "flowrun.cancelled" or run[-1].type == "flowrun.log"
    assert not [e for e in run if e.type in ("flowrun.node_passed", "flowrun.node_failed")]
    assert not [h for h in site.hooks if b"cancel" in h.body]
