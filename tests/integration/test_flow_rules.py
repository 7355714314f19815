"""FlowRun rules end to end on the real broker and a real Chromium (decider, node,
``runledger orchestrator`` and ``runledger runner`` as child processes, the local test
site on 127.0.0.1 with ``RUNLEDGER_ALLOW_PRIVATE_TARGETS`` set): ``end_on_fail``, a
branch on a failed parent, retry from the failed node, and visual regression between
two runs. Checked on ``ledger.events``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.conftest import Stack
from tests.integration.flow_helpers import (
    allowed_stack,
    completed,
    create_run,
    create_site,
    edge,
    node,
    node_status,
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
def flow_stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from allowed_stack(
        kafka_bootstrap, tmp_path_factory.mktemp("rules"), "orchestrator", "runner"
    )


def _run_to_end(stack: Stack, run_id: str, times: int = 1) -> list[Any]:
    events = asyncio.run(read_events(stack, completed(run_id, times), 120))
    run = of(events, run_id)
    assert run and sum(e.type == "flowrun.completed" for e in run) >= times, (
        [e.type for e in run],
        stack.log_tail("orchestrator"),
        stack.log_tail("runner"),
    )
    assert [e.seq for e in run] == list(range(1, len(run) + 1))  # gapless, each once
    return run


def hook(site: TestSite, marker: str, **data: Any) -> dict[str, Any]:
    return node(
        marker,
        "webhook",
        uri=site.url("/hook"),
        request_type="POST",
        payload=json.dumps({"marker": marker}),
        **data,
    )


def hooks_with(site: TestSite, marker: str) -> int:
    return sum(1 for h in site.hooks if json.loads(h.body or b"{}").get("marker") == marker)


def test_end_on_fail_skips_the_rest_when_a_case_assertion_fails(
    flow_stack: Stack, site: TestSite
) -> None:
    failing_steps = [
        {
            "action": {"type": "navigate", "path": "/"},
            "assertion": {
                "type": "match",
                "element": {"selector": "h1"},
                "value": "a heading this site does not have",
            },
        }
    ]
    nodes = [
        node("scan", "scan", uri="/"),
        node("case", "case"),
        node("pause", "wait"),
        hook(site, "eof-after"),
    ]
    edges = [edge("scan", "case"), edge("case", "pause"), edge("pause", "eof-after")]
    run_id = asyncio.run(
        create_run(flow_stack, site.base_url + "/", nodes, edges, case_steps=failing_steps)
    )
    run = _run_to_end(flow_stack, run_id)
    assert run[-1].data.status == "failed"
    assert node_status(run) == {
        "scan": "passed",
        "case": "failed",
        "pause": "skipped",
        "eof-after": "skipped",
    }
    skips = [e for e in run if e.type == "flowrun.node_skipped"]
    assert all("end_on_fail" in e.data.reason for e in skips), [e.data for e in skips]
    failed = next(e for e in run if e.type == "flowrun.node_failed")
    assert failed.data.object_id  # the CaseRun
    assert hooks_with(site, "eof-after") == 0


def test_end_on_fail_skips_the_rest_when_a_webhook_answers_500(
    flow_stack: Stack, site: TestSite
) -> None:
    site.hook_status = 500
    try:
        nodes = [hook(site, "eof-500"), hook(site, "eof-500-after")]
        run_id = asyncio.run(
            create_run(flow_stack, site.base_url + "/", nodes, [edge("eof-500", "eof-500-after")])
        )
        run = _run_to_end(flow_stack, run_id)
    finally:
        site.hook_status = 200
    assert run[-1].data.status == "failed"
    assert node_status(run) == {"eof-500": "failed", "eof-500-after": "skipped"}
    failed = next(e for e in run if e.type == "flowrun.node_failed")
    assert "500" in failed.data.exception
    assert hooks_with(site, "eof-500") == 1 and hooks_with(site, "eof-500-after") == 0


def test_a_condition_on_a_failed_parent_runs_its_branch(flow_stack: Stack, site: TestSite) -> None:
    nodes = [
        node("check", "webhook", uri=site.url("/missing"), request_type="GET"),  # a 404
        hook(site, "on-failure", start_if="failed"),
        hook(site, "on-success", start_if="passed"),
    ]
    edges = [edge("check", "on-failure"), edge("check", "on-success")]
    run_id = asyncio.run(create_run(flow_stack, site.base_url + "/", nodes, edges))
    run = _run_to_end(flow_stack, run_id)
    assert node_status(run) == {
        "check": "failed",
        "on-failure": "passed",
        "on-success": "skipped",
    }
    assert run[-1].data.status == "failed"  # a node failed, even though it was handled
    assert hooks_with(site, "on-failure") == 1 and hooks_with(site, "on-success") == 0


def test_retry_runs_the_failed_node_again_and_keeps_the_passed_ones(
    flow_stack: Stack, site: TestSite
) -> None:
    nodes = [node("scan", "scan", uri="/"), hook(site, "retried"), node("after", "wait")]
    edges = [edge("scan", "retried"), edge("retried", "after")]
    site.hook_status = 500  # the toggle: the webhook node fails
    try:
        run_id = asyncio.run(create_run(flow_stack, site.base_url + "/", nodes, edges))
        first = _run_to_end(flow_stack, run_id)
    finally:
        site.hook_status = 200  # fixed
    assert first[-1].data.status == "failed"
    assert node_status(first) == {"scan": "passed", "retried": "failed", "after": "skipped"}
    scan_result = next(e for e in first if e.type == "flowrun.node_passed").data.result_json

    with flow_stack.client() as client:
        answer = client.post(f"/flowrun/{run_id}/retry", json={})
    assert answer.status_code < 300, answer.text

    run = _run_to_end(flow_stack, run_id, times=2)
    assert run[-1].type == "flowrun.completed" and run[-1].data.status == "passed"
    assert transitions(run)[len(transitions(first)) :] == [
        ("flowrun.retried", None),
        ("flowrun.node_started", "retried"),
        ("flowrun.node_passed", "retried"),
        ("flowrun.node_started", "after"),
        ("flowrun.node_passed", "after"),
        ("flowrun.completed", None),
    ]
    # The passed scan is kept: started and passed once, with its first result.
    scans = [t for t in transitions(run) if t[1] == "scan"]
    assert scans == [("flowrun.node_started", "scan"), ("flowrun.node_passed", "scan")]
    assert node_status(run) == {"scan": "passed", "retried": "passed", "after": "passed"}
    restarted = [e for e in run if e.type == "flowrun.node_started" and e.data.node_id == "retried"]
    assert [e.data.attempt for e in restarted] == [1, 2]
    assert hooks_with(site, "retried") == 2
    assert next(e for e in run if e.type == "flowrun.node_passed").data.result_json == scan_result


def test_vrt_fails_the_second_scan_of_a_changed_page(flow_stack: Stack, site: TestSite) -> None:
    site_id = asyncio.run(create_site(flow_stack, site.base_url + "/"))

    def scan_run() -> list[Any]:
        nodes = [node("vrt", "scan", uri="/changeable", threshold=99)]
        run_id = asyncio.run(
            create_run(flow_stack, site.base_url + "/", nodes, [], site_id=site_id)
        )
        return _run_to_end(flow_stack, run_id)

    site.variant = 1
    try:
        first = scan_run()
        assert first[-1].data.status == "passed"  # the first scan of the page: a baseline
        baseline = json.loads(
            next(e for e in first if e.type == "flowrun.node_passed").data.result_json
        )["screenshot"]

        unchanged = scan_run()  # the same look again: similarity 100 %
        assert unchanged[-1].data.status == "passed"
        same = json.loads(
            next(e for e in unchanged if e.type == "flowrun.node_passed").data.result_json
        )
        assert same["vrt"]["similarity"] == 1.0
        assert same["vrt"]["baseline"] == baseline  # compared with the first scan

        site.variant = 2
        second = scan_run()
    finally:
        site.variant = 1
    assert second[-1].data.status == "failed"
    failed = next(e for e in second if e.type == "flowrun.node_failed")
    assert "similarity" in failed.data.exception and "threshold" in failed.data.exception
    vrt = json.loads(failed.data.result_json)["vrt"]
    # The baseline is the previous scan of the page: the unchanged one. (Its PNG may not
    # be byte-identical to the first scan's, the pixels are: similarity 1.0 above.)
    assert vrt["baseline"] == same["screenshot"]
    assert vrt["similarity"] < 0.99 and vrt["diff_share"] > 0.01
    assert len(vrt["diff"]) == 64
    assert (flow_stack.data_dir / "artifacts" / vrt["diff"][:2] / vrt["diff"]).is_file()
