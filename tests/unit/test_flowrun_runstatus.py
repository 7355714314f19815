"""``GET /flowrun/{id}/runstatus`` after nodes ran: per-node timing, counts, the run's
duration, the failure and the skip reason (issue 3: "a run status with per-node timing").

The integration test reads it only for a queued run, where every time is null."""

from __future__ import annotations

from typing import Any

from api.run_representations import flowrun_runstatus_json
from streams.domain import commands as c
from streams.domain import flowrun as f

T0 = 1_767_261_600_000_000  # 2026-01-01T10:00:00Z, in microseconds


def _node(node_id: str, task_type: str, start_if: str | None = None) -> dict[str, Any]:
    return {"id": node_id, "data": {"task_type": task_type, "start_if": start_if}}


def _run() -> f.FlowRunState:
    """scan (2 s, passed) → webhook (3.5 s, failed) → wait (skipped: a parent failed),
    completed `failed` at T0 + 7 s."""
    nodes = [_node("scan", "scan"), _node("hook", "webhook"), _node("pause", "wait")]
    edges = [
        {"id": "e1", "source": "scan", "target": "hook"},
        {"id": "e2", "source": "hook", "target": "pause"},
    ]
    steps: list[tuple[int, str, dict[str, Any]]] = [
        (0, "flowrun.create", {"site_id": "s", "flow_id": "fl", "nodes": nodes, "edges": edges}),
        (1_000_000, "flowrun.node_start", {"node_id": "scan"}),
        (3_000_000, "flowrun.node_pass", {"node_id": "scan"}),
        (3_000_000, "flowrun.node_start", {"node_id": "hook"}),
        (6_500_000, "flowrun.node_fail", {"node_id": "hook", "exception": "HTTP 500"}),
        (6_500_000, "flowrun.node_skip", {"node_id": "pause", "reason": "a parent failed"}),
        (7_000_000, "flowrun.complete", {"status": "failed"}),
    ]
    state: f.FlowRunState | None = None
    for n, (at, name, payload) in enumerate(steps):
        body = f.parse_flowrun_body(name, payload)
        cmd = c.Command(f"cmd-{n}", f.AGGREGATE, "run-1", T0 + at, "acme", "t", "corr", "x", body)
        for event in f.decide(state, cmd):
            state = f.evolve(state, event)
    assert state is not None
    return state


def test_runstatus_gives_each_node_its_times_and_duration() -> None:
    status = flowrun_runstatus_json(_run())
    assert (status["id"], status["status"], status["attempt"]) == ("run-1", "failed", 1)
    assert status["time_started"] == "2026-01-01T10:00:01.000000Z"  # the first node start
    assert status["time_completed"] == "2026-01-01T10:00:07.000000Z"
    assert status["duration_seconds"] == 6.0
    assert status["counts"] == {"queued": 0, "working": 0, "passed": 1, "failed": 1, "skipped": 1}
    by_id = {n["id"]: n for n in status["nodes"]}
    assert [n["id"] for n in status["nodes"]] == ["scan", "hook", "pause"]
    assert by_id["scan"] == {
        "id": "scan",
        "task_type": "scan",
        "status": "passed",
        "attempt": 1,
        "time_started": "2026-01-01T10:00:01.000000Z",
        "time_completed": "2026-01-01T10:00:03.000000Z",
        "duration_seconds": 2.0,
        "exception": None,
        "reason": None,
    }
    hook = by_id["hook"]
    assert (hook["status"], hook["duration_seconds"], hook["exception"]) == (
        "failed", 3.5, "HTTP 500",
    )  # fmt: skip
    assert hook["time_completed"] == "2026-01-01T10:00:06.500000Z"
    pause = by_id["pause"]
    assert (pause["status"], pause["time_started"], pause["duration_seconds"]) == (
        "skipped", None, None,
    )  # fmt: skip
    assert pause["reason"] == "a parent failed"
