"""FlowRuns and CaseRuns in the read model: folded, written, reloaded, read per account."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from projections import rows
from projections.fold import RawMessage, fold_batch
from projections.queries import Queries
from projections.store import Store
from schemas import default_codec
from streams.domain import aggregates, snapshot
from streams.domain import caserun as cr
from streams.domain import commands as c
from streams.domain import flowrun as fr
from streams.domain.events import Event
from streams.serde import encode_event

T0 = 1_700_000_000_000_000
TOPIC = "test.ledger.events"

NODES = [
    {"id": "1", "data": {"task_type": "scan", "threshold": 95, "configs": {"timeout": 30}}},
    {"id": "2", "data": {"task_type": "webhook", "start_if": "passed"}},
    {"id": "3", "data": {"task_type": "wait", "start_if": "failed"}},
]
EDGES = [{"id": "a", "source": "1", "target": "2"}, {"id": "b", "source": "1", "target": "3"}]
STEPS = [
    {
        "action": {"type": "navigate", "path": "/"},
        "assertion": {"type": "exists", "selector": "h1"},
    },
    {"action": {"type": "click", "selector": "#go"}},
]


def _flowrun(site_id: str = "s-1") -> c.Body:
    return c.parse_body(
        "flowrun.create",
        {"site_id": site_id, "flow_id": "f-1", "nodes": NODES, "edges": EDGES, "title": "t"},
    )


def _caserun(site_id: str = "s-1") -> c.Body:
    return c.parse_body("caserun.create", {"site_id": site_id, "case_id": "k-1", "steps": STEPS})


def run_events() -> list[Event]:
    """A FlowRun that fails and is retried, one that is cancelled, one of another account
    and one deleted; a CaseRun that fails with a screenshot, one cancelled, one deleted."""
    plan: list[tuple[str, str, str, c.Body]] = [
        ("flowrun", "r-1", "acme", _flowrun()),
        ("flowrun", "r-1", "acme", fr.NodeStart("1")),
        ("flowrun", "r-1", "acme", fr.NodePass("1", '{"similarity":99.0}', "scan-1")),
        ("flowrun", "r-1", "acme", fr.NodeStart("2")),
        ("flowrun", "r-1", "acme", fr.NodeFail("2", "HTTP 500")),
        ("flowrun", "r-1", "acme", fr.NodeSkip("3", "its start condition does not hold")),
        ("flowrun", "r-1", "acme", fr.LogFlowRun("all nodes final")),
        ("flowrun", "r-1", "acme", fr.CompleteFlowRun("failed")),
        ("flowrun", "r-1", "acme", fr.RetryFlowRun()),
        ("flowrun", "r-2", "acme", _flowrun("s-2")),
        ("flowrun", "r-2", "acme", fr.NodeStart("1")),
        ("flowrun", "r-2", "acme", fr.CancelFlowRun("user")),
        ("flowrun", "r-3", "zeta", _flowrun()),
        ("flowrun", "r-4", "acme", _flowrun()),
        ("flowrun", "r-4", "acme", fr.DeleteFlowRun()),
        ("caserun", "k-1", "acme", _caserun()),
        ("caserun", "k-1", "acme", cr.CaseStepStart(0, "action")),
        ("caserun", "k-1", "acme", cr.CaseStepPass(0, "action")),
        ("caserun", "k-1", "acme", cr.CaseStepStart(0, "assertion")),
        ("caserun", "k-1", "acme", cr.CaseStepFail(0, "assertion", "no h1", "ab" * 16)),
        ("caserun", "k-2", "acme", _caserun("s-2")),
        ("caserun", "k-2", "acme", cr.CaseStepStart(0, "action")),
        ("caserun", "k-2", "acme", cr.CancelCaseRun()),
        ("caserun", "k-3", "acme", _caserun()),
        ("caserun", "k-3", "acme", cr.DeleteCaseRun()),
    ]
    states: dict[tuple[str, str], Any] = {}
    out: list[Event] = []
    for i, (kind, aid, acct, body) in enumerate(plan):
        cmd = c.Command(f"r-{i}", kind, aid, T0 + i, acct, "tester", "r", "r", body)
        for event in aggregates.decide(states.get((kind, aid)), cmd):
            states[(kind, aid)] = aggregates.evolve(states.get((kind, aid)), event)
            out.append(event)
    return out


def as_messages(events: Sequence[Event], first: int = 0) -> list[RawMessage]:
    codec = default_codec()
    return [RawMessage(0, first + i, encode_event(codec, e)) for i, e in enumerate(events)]


def test_runs_are_projected_and_reloaded_equal(tmp_path: Path) -> None:
    batch = fold_batch({}, as_messages(run_events()), topic=TOPIC)
    assert not batch.dead_letters
    with Store(tmp_path / "read.duckdb") as store:
        assert store.write(batch)
        assert store.load_states(list(batch.states)) == batch.states


def test_runs_folded_in_two_batches_equal_one_batch(tmp_path: Path) -> None:
    events = run_events()
    whole = fold_batch({}, as_messages(events), topic=TOPIC).states
    with Store(tmp_path / "read.duckdb") as store:
        for part, first in ((events[:7], 0), (events[7:], 7)):
            batch = fold_batch({}, as_messages(part, first), topic=TOPIC, load=store.load_states)
            assert not batch.dead_letters
            assert store.write(batch)
        assert store.load_states(list(whole)) == whole


def test_runs_are_read_per_account_with_node_and_step_states(tmp_path: Path) -> None:
    with Store(tmp_path / "read.duckdb") as store:
        store.write(fold_batch({}, as_messages(run_events()), topic=TOPIC))
        reads = Queries(store)
        run = reads.get_flowrun("acme", "r-1")
        assert run is not None and run.status == fr.QUEUED and run.attempt == 2
        assert [(n.node_id, n.status) for n in run.nodes] == [
            ("1", fr.PASSED),
            ("2", fr.QUEUED),
            ("3", fr.QUEUED),
        ]
        assert run.nodes[0].time_started == T0 + 1 and run.nodes[0].object_id == "scan-1"
        assert run.logs[0].message.startswith("system starting up")
        cancelled = reads.get_flowrun("acme", "r-2")
        assert cancelled is not None and cancelled.status == fr.CANCELLED
        assert {n.status for n in cancelled.nodes} == {fr.SKIPPED}
        assert reads.get_flowrun("zeta", "r-1") is None, "another account's"
        assert reads.get_flowrun("acme", "r-3") is None
        assert reads.get_flowrun("acme", "r-4") is None, "deleted"
        assert [r.id for r in reads.list_flowruns("acme", limit=10, offset=0).items] == [
            "r-1",
            "r-2",
        ]
        assert reads.list_flowruns("acme", limit=10, offset=0, site_id="s-2").count == 1
        assert reads.list_flowruns("acme", limit=1, offset=1).items[0].id == "r-2"
        assert reads.list_flowruns("zeta", limit=10, offset=0).count == 1

        case_run = reads.get_caserun("acme", "k-1")
        assert case_run is not None and case_run.status == cr.FAILED
        assert case_run.exception == "no h1" and case_run.steps[0].screenshot == "ab" * 16
        assert case_run.steps[0].assertion is not None
        assert case_run.steps[0].assertion.status == cr.FAILED
        assert case_run.steps[1].action.status == cr.QUEUED
        assert reads.get_caserun("zeta", "k-1") is None
        assert reads.get_caserun("acme", "k-3") is None, "deleted"
        page = reads.list_caseruns("acme", limit=10, offset=0)
        assert page.count == 2 and [r.status for r in page.items] == [cr.FAILED, cr.CANCELLED]
        assert reads.list_caseruns("acme", limit=10, offset=0, site_id="s-2").count == 1


def test_run_rows_round_trip() -> None:
    states = fold_batch({}, as_messages(run_events())).states
    flowruns = [s for s in states.values() if isinstance(s, fr.FlowRunState)]
    caseruns = [s for s in states.values() if isinstance(s, cr.CaseRunState)]
    columns = rows.flowrun_columns(flowruns)
    back = [rows.flowrun_from_row(r) for r in zip(*columns.values(), strict=True)]
    assert back == flowruns
    columns = rows.caserun_columns(caseruns)
    assert [rows.caserun_from_row(r) for r in zip(*columns.values(), strict=True)] == caseruns


def test_a_caserun_with_a_step_that_only_asserts_reads_back() -> None:
    # A generated Case ends with such a step; its CaseRun's row and the decider's answer
    # (a JSON snapshot) failed to read back, so GET /caserun and POST /caserun were 500s.
    steps = [*STEPS, {"action": None, "assertion": {"type": "exists", "selector": "#done"}}]
    body = c.parse_body("caserun.create", {"site_id": "s-1", "case_id": "k-1", "steps": steps})
    cmd = c.Command("r-0", "caserun", "k-9", T0, "acme", "tester", "r", "r", body)
    state = None
    for event in aggregates.decide(None, cmd):
        state = aggregates.evolve(state, event)
    assert isinstance(state, cr.CaseRunState) and state.steps[2].action is None
    columns = rows.caserun_columns([state])
    assert [rows.caserun_from_row(r) for r in zip(*columns.values(), strict=True)] == [state]
    answer = json.loads(json.dumps(snapshot.run_to_dict(state)))
    assert snapshot.run_from_dict("caserun", answer) == state
