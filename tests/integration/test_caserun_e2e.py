"""A CaseRun made by ``POST /caserun`` runs, end to end on the real broker and a real
Chromium: decider and node (as `runledger up` runs them), plus `runledger orchestrator`
and `runledger runner` as child processes, against the local test site.

The orchestrator sees the standalone ``caserun.created`` and publishes a ``case`` job;
the runner runs the steps copied into the run and reports each part. Checked over HTTP
(the CaseRun as the API shows it, the failure screenshot from ``GET /artifact``) and on
``ledger.events`` (each part recorded once, also when the runner is killed mid-run).
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from streams.orchestration import caserun_job_id
from tests.integration.conftest import Stack
from tests.integration.flow_helpers import (
    CASE_STEPS,
    allowed_stack,
    of,
    read_events,
    serve_test_site,
)
from tests.site.server import TestSite

pytestmark = pytest.mark.integration

FINAL = ("passed", "failed", "cancelled")
WAIT = {"wait": "true"}  # read your writes: the node has projected the POST
FAILING_STEPS: list[dict[str, Any]] = [
    CASE_STEPS[0],
    {"action": {"type": "change", "element": {"selector": "#name"}, "value": "Eve"}},
    {
        "action": {"type": "click", "element": {"selector": "#send"}},
        "assertion": {
            "type": "match",
            "element": {"selector": "#result"},
            "value": "Thanks, Mallory!",
        },
    },
    {"action": {"type": "click", "element": {"selector": "#link-home"}}},
]


def waiting_steps(ms: int) -> list[dict[str, Any]]:
    """A quick first step (so the run is seen ``working``), then a wait of ``ms``."""
    return [
        CASE_STEPS[0],
        {"action": {"type": "wait", "value": str(ms)}},
        {"action": {"type": "change", "element": {"selector": "#name"}, "value": "Ada"}},
    ]


@pytest.fixture(scope="module")
def site() -> Iterator[TestSite]:
    yield from serve_test_site()


@pytest.fixture(scope="module")
def case_stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from allowed_stack(
        kafka_bootstrap, tmp_path_factory.mktemp("caserun"), "orchestrator", "runner"
    )


@pytest.fixture(scope="module")
def client(case_stack: Stack) -> httpx.Client:
    client = case_stack.client(f"cases-{uuid.uuid4().hex[:8]}")
    deadline = time.monotonic() + 30
    while client.get("/caserun").status_code == 401:  # the node learns a new token async
        assert time.monotonic() < deadline, "the node never learned the new token"
        time.sleep(0.1)
    return client


def ok(r: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    return body


def start_caserun(client: httpx.Client, site: TestSite, steps: list[dict[str, Any]]) -> str:
    """Site, Case and CaseRun over HTTP; the CaseRun's id (queued when answered)."""
    site_id = ok(client.post("/site", json={"site_url": site.base_url + "/"}), 201)["id"]
    case = {"site_id": site_id, "name": "contact", "steps": steps}
    case_id = ok(client.post("/case", json=case), 201)["id"]
    run = ok(client.post("/caserun", json={"site_id": site_id, "case_id": case_id}), 201)
    assert run["status"] == "queued" and run["flowrun"] is None
    return str(run["id"])


def wait_for(
    client: httpx.Client, stack: Stack, run_id: str, done: Any, timeout: float = 120
) -> dict[str, Any]:
    """GET the CaseRun until ``done(run)``; fails with the runner's log after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        run = ok(client.get(f"/caserun/{run_id}", params=WAIT))
        if done(run):
            return run
        assert time.monotonic() < deadline, (
            run,
            stack.log_tail("orchestrator"),
            stack.log_tail("runner"),
        )
        time.sleep(0.2)


def parts(run: dict[str, Any]) -> list[dict[str, Any]]:
    """Every action and assertion with a status, in the order they run."""
    out = []
    for step in run["steps"]:
        out.append(step["action"])
        if step["assertion"] is not None and "status" in step["assertion"]:
            out.append(step["assertion"])
    return out


def test_a_passing_case_runs_to_passed_with_every_part_timed(
    case_stack: Stack, client: httpx.Client, site: TestSite
) -> None:
    run_id = start_caserun(client, site, CASE_STEPS)
    run = wait_for(client, case_stack, run_id, lambda r: r["status"] in FINAL)
    assert run["status"] == "passed", (run["exception"], run["steps"])
    assert run["exception"] is None and run["time_completed"] is not None
    done = parts(run)
    assert len(done) == 5  # three actions, two assertions
    for part in done:
        assert part["status"] == "passed", run
        assert part["exception"] is None
        assert part["time_started"] is not None and part["time_completed"] is not None
        assert part["time_completed"] >= part["time_started"]
    assert all(step["screenshot"] is None for step in run["steps"])
    assert run["steps"][2]["assertion"]["value"] == "Thanks, Ada!"  # the Case's own fields


def test_a_failing_case_stops_at_its_first_failed_step_with_a_screenshot(
    case_stack: Stack, client: httpx.Client, site: TestSite
) -> None:
    run_id = start_caserun(client, site, FAILING_STEPS)
    run = wait_for(client, case_stack, run_id, lambda r: r["status"] in FINAL)
    assert run["status"] == "failed", run
    steps = run["steps"]
    assert [steps[0]["action"]["status"], steps[0]["assertion"]["status"]] == ["passed"] * 2
    assert steps[1]["action"]["status"] == "passed"
    assert steps[2]["action"]["status"] == "passed"
    failed = steps[2]["assertion"]
    assert failed["status"] == "failed" and failed["time_completed"] is not None
    assert failed["exception"] == "text 'Thanks, Eve!' does not equal 'Thanks, Mallory!'"
    assert run["exception"] == failed["exception"]
    assert steps[3]["action"]["status"] == "queued", "nothing runs after the failed step"
    assert steps[3]["action"]["time_started"] is None
    shot = steps[2]["screenshot"]
    assert shot is not None and len(shot) == 64
    image = client.get(f"/artifact/{shot}")
    assert image.status_code == 200, image.text
    assert image.headers["content-type"].startswith("image/png")
    assert image.content.startswith(b"\x89PNG")


def test_cancel_stops_a_running_standalone_caserun_within_two_seconds(
    case_stack: Stack, client: httpx.Client, site: TestSite
) -> None:
    run_id = start_caserun(client, site, waiting_steps(20_000))
    wait_for(client, case_stack, run_id, lambda r: r["steps"][0]["action"]["status"] == "passed")
    job_id = caserun_job_id(run_id, 1)
    cancelled = ok(client.post(f"/caserun/{run_id}/cancel", json={"reason": "test"}))
    assert cancelled["status"] == "cancelled"
    deadline = time.monotonic() + 10
    line = ""
    while time.monotonic() < deadline and not line:
        log = case_stack.log_tail("runner", 300)
        line = next(
            (x for x in log.splitlines() if "after its run was cancelled" in x and job_id in x), ""
        )
        time.sleep(0.2)
    assert line, case_stack.log_tail("runner")
    latency = float(line.split(" stopped ")[1].split(" s ")[0])
    print(f"standalone caserun cancel latency {latency:.3f}s")
    assert latency < 2.0
    time.sleep(1)
    run = ok(client.get(f"/caserun/{run_id}", params=WAIT))
    assert run["status"] == "cancelled"
    assert [p["status"] for p in parts(run)] == ["passed", "passed", "queued", "queued"]


def test_a_runner_killed_mid_caserun_is_replaced_and_each_part_is_recorded_once(
    case_stack: Stack, client: httpx.Client, site: TestSite
) -> None:
    run_id = start_caserun(client, site, waiting_steps(6_000))
    wait_for(client, case_stack, run_id, lambda r: r["steps"][0]["action"]["status"] == "passed")
    first = case_stack.procs["runner"]
    case_stack.kill("runner", signal.SIGKILL)
    assert first.returncode == -signal.SIGKILL
    assert (
        ok(client.get(f"/caserun/{run_id}", params=WAIT))["steps"][1]["action"]["status"]
        == "queued"
    )
    killed_at = time.monotonic()
    case_stack.start("runner")
    run = wait_for(client, case_stack, run_id, lambda r: r["status"] in FINAL, 120)
    print(f"caserun ended {time.monotonic() - killed_at:.1f}s after the kill")
    assert run["status"] == "passed", (run["exception"], run["steps"])
    events = of(asyncio.run(read_events(case_stack, lambda events: False, 3)), run_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))  # gapless
    recorded = Counter(
        (e.type, getattr(e.data, "index", None), getattr(e.data, "part", None)) for e in events
    )
    assert all(count == 1 for count in recorded.values()), recorded
    assert len(events) == 1 + 2 * 4 + 1  # created, start and pass of 4 parts, completed
