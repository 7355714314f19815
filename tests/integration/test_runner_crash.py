"""A runner killed with SIGKILL mid-job (real broker, real Chromium): ``runledger runner``
runs as a child process, a FlowRun's long ``wait`` node is running in it when it is
killed, and a second runner started afterwards picks the job up (once the dead member's
session timed out). The run ends passed and every node's events are in the ledger once:
gapless seq, one start and one pass per node, the job's log lines not repeated."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.integration.conftest import Stack
from tests.integration.flow_helpers import (
    allowed_stack,
    completed,
    create_run,
    edge,
    logged,
    node,
    of,
    read_events,
    serve_test_site,
    transitions,
)
from tests.site.server import TestSite

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def site() -> Iterator[TestSite]:
    yield from serve_test_site()


@pytest.fixture(scope="module")
def crash_stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from allowed_stack(kafka_bootstrap, tmp_path_factory.mktemp("crash"), "orchestrator")


def test_a_runner_killed_mid_job_is_replaced_and_each_step_is_recorded_once(
    crash_stack: Stack, site: TestSite
) -> None:
    crash_stack.start("runner")
    waiting = node("wait", "wait")
    waiting["data"]["configs"] = {"timeout": 120, "max_wait_time": 60, "min_wait_time": 6}
    nodes = [
        node("scan", "scan", uri="/"),
        waiting,
        node(
            "hook",
            "webhook",
            uri=site.url("/hook"),
            request_type="POST",
            payload='{"after": "crash"}',
        ),
    ]
    edges = [edge("scan", "wait"), edge("wait", "hook")]
    run_id = asyncio.run(create_run(crash_stack, site.base_url + "/", nodes, edges))

    # The wait job is running in the first runner once it logged "waiting".
    events = asyncio.run(read_events(crash_stack, logged(run_id, "waiting"), 90))
    assert logged(run_id, "waiting")(events), crash_stack.log_tail("runner")
    first = crash_stack.procs["runner"]
    crash_stack.kill("runner", signal.SIGKILL)
    assert first.returncode == -signal.SIGKILL
    assert not any(
        e.type == "flowrun.node_passed" and e.data.node_id == "wait" for e in of(events, run_id)
    ), "the wait job ended before the kill"
    killed_at = time.monotonic()

    crash_stack.start("runner")
    events = asyncio.run(read_events(crash_stack, completed(run_id), 120))
    run = of(events, run_id)
    assert run and run[-1].type == "flowrun.completed", (
        [e.type for e in run],
        crash_stack.log_tail("orchestrator"),
        crash_stack.log_tail("runner"),
    )
    print(f"run ended {time.monotonic() - killed_at:.1f}s after the kill")
    assert run[-1].data.status == "passed", [(e.type, e.data) for e in run]
    assert [e.seq for e in run] == list(range(1, len(run) + 1))  # gapless
    assert transitions(run) == [
        ("flowrun.created", None),
        ("flowrun.node_started", "scan"),
        ("flowrun.node_passed", "scan"),
        ("flowrun.node_started", "wait"),
        ("flowrun.node_passed", "wait"),
        ("flowrun.node_started", "hook"),
        ("flowrun.node_passed", "hook"),
        ("flowrun.completed", None),
    ]
    # The re-run of the wait job logged under the same ids: each line once.
    lines = Counter(
        (e.data.step, e.data.message) for e in run if e.type == "flowrun.log" and e.data.step
    )
    assert lines[("wait", "waiting 6s")] == 1, lines
    assert all(count == 1 for count in lines.values()), lines
    assert sum(1 for h in site.hooks if json.loads(h.body or b"{}") == {"after": "crash"}) == 1
