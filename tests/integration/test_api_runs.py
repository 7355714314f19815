"""FlowRuns and CaseRuns over HTTP on the real broker and a real decider: created from a
Flow or Case of the read model, read, listed, cancelled, retried, deleted; the 422s of
an unknown definition and account isolation. No orchestrator runs here, so a run stays
as the API left it."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.integration.test_api_definitions import EDGES, NODES, STEPS

pytestmark = pytest.mark.integration

RUN_KEYS = {
    "status",
    "attempt",
    "time_started",
    "time_completed",
    "exception",
    "reason",
    "object_id",
    "result",
}
WAIT = {"wait": "true"}


@pytest.fixture
def client(stack: Any) -> httpx.Client:
    return stack.authenticated(f"runs-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def other(stack: Any) -> httpx.Client:
    return stack.authenticated(f"other-{uuid.uuid4().hex[:8]}")


def _ok(r: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    return body


def _error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    error: dict[str, Any] = r.json()["error"]
    return error


def _site(client: httpx.Client) -> str:
    return str(_ok(client.post("/site", json={"site_url": "https://example.com"}), 201)["id"])


def _flow(client: httpx.Client, **configs: Any) -> dict[str, Any]:
    body = {"name": "scan then wait", "nodes": NODES, "edges": EDGES, "configs": configs}
    return _ok(client.post("/flow", json=body), 201)


def test_flowrun_copies_the_flow_and_is_read_cancelled_and_deleted(
    client: httpx.Client, other: httpx.Client
) -> None:
    site_id = _site(client)
    flow = _flow(client, end_on_fail=False)
    r = client.post("/flowrun", json={"site_id": site_id, "flow_id": flow["id"]})
    run = _ok(r, 201)
    assert r.headers["Location"] == f"/flowrun/{run['id']}"
    assert (run["site"], run["flow"], run["title"]) == (site_id, flow["id"], flow["name"])
    assert run["status"] == "queued" and run["attempt"] == 1
    assert run["configs"] == {"end_on_fail": False}, "the Flow's end_on_fail"
    assert run["edges"] == flow["edges"]
    assert [n["id"] for n in run["nodes"]] == [n["id"] for n in flow["nodes"]]
    for node, defined in zip(run["nodes"], flow["nodes"], strict=True):
        data = node["data"]
        assert data["status"] == "queued" and data["time_started"] is None
        assert {k: v for k, v in data.items() if k not in RUN_KEYS | {"id"}} == {
            k: v for k, v in defined["data"].items() if k != "id"
        }
        assert {k: v for k, v in node.items() if k != "data"} == {
            k: v for k, v in defined.items() if k != "data"
        }
    assert run["logs"][0]["message"] == f"system starting up for run_id: {run['id']}"
    assert run["time_created"].endswith("Z") and run["time_completed"] is None

    assert _ok(client.get(f"/flowrun/{run['id']}", params=WAIT)) == run
    page = _ok(client.get("/flowrun", params={"site_id": site_id, **WAIT}))
    assert page["count"] == 1 and page["results"] == [run]
    assert _ok(client.get("/flowrun", params={"site_id": "elsewhere"}))["count"] == 0
    status = _ok(client.get(f"/flowrun/{run['id']}/runstatus"))
    assert status["status"] == "queued" and status["duration_seconds"] is None
    assert status["counts"]["queued"] == len(NODES)
    assert {n["id"] for n in status["nodes"]} == {n["id"] for n in NODES}

    error = _error(client.post(f"/flowrun/{run['id']}/retry"), 409)
    assert error["code"] == "invalid_state" and "queued" in error["message"]

    for response in (
        other.get(f"/flowrun/{run['id']}", params=WAIT),
        other.get(f"/flowrun/{run['id']}/runstatus"),
        other.post(f"/flowrun/{run['id']}/cancel"),
        other.post(f"/flowrun/{run['id']}/retry"),
        other.delete(f"/flowrun/{run['id']}"),
    ):
        assert _error(response, 404)["code"] == "not_found"
    assert _ok(other.get("/flowrun", params=WAIT))["count"] == 0

    cancelled = _ok(client.post(f"/flowrun/{run['id']}/cancel", json={"reason": "enough"}))
    assert cancelled["status"] == "cancelled" and cancelled["time_completed"] is not None
    assert {n["data"]["status"] for n in cancelled["nodes"]} == {"skipped"}
    assert {n["data"]["reason"] for n in cancelled["nodes"]} == {"cancelled"}
    assert cancelled["logs"][-1]["message"] == "run cancelled: enough"
    assert _ok(client.get(f"/flowrun/{run['id']}", params=WAIT)) == cancelled
    assert _error(client.post(f"/flowrun/{run['id']}/cancel"), 409)["code"] == "invalid_state"
    assert _error(client.post(f"/flowrun/{run['id']}/retry"), 409)["code"] == "invalid_state"

    deleted = _ok(client.delete(f"/flowrun/{run['id']}"))
    assert deleted == {"message": "flowrun deleted successfully"}
    assert _error(client.get(f"/flowrun/{run['id']}", params=WAIT), 404)["code"] == "not_found"
    assert _ok(client.get("/flowrun", params=WAIT))["count"] == 0
    assert _error(client.delete(f"/flowrun/{run['id']}"), 404)["code"] == "not_found"


def test_flowrun_end_on_fail_comes_from_the_request_then_the_flow_then_true(
    client: httpx.Client,
) -> None:
    site_id = _site(client)
    plain = _flow(client)
    strict = _flow(client, end_on_fail=True)
    cases = [
        ({"flow_id": plain["id"]}, True),
        ({"flow_id": strict["id"], "configs": {"end_on_fail": False}}, False),
        ({"flow_id": strict["id"], "configs": {}}, True),
    ]
    for fields, expected in cases:
        run = _ok(client.post("/flowrun", json={"site_id": site_id, **fields}), 201)
        assert run["configs"] == {"end_on_fail": expected}, fields


def test_a_flowrun_needs_a_site_and_a_flow_of_the_account(
    client: httpx.Client, other: httpx.Client
) -> None:
    site_id = _site(client)
    flow_id = _flow(client)["id"]
    their_flow = _flow(other)["id"]
    unknown = str(uuid.uuid4())
    for fields, field in [
        ({"site_id": site_id, "flow_id": unknown}, "flow_id"),
        ({"site_id": site_id, "flow_id": their_flow}, "flow_id"),
        ({"site_id": unknown, "flow_id": flow_id}, "site_id"),
        ({"site_id": site_id}, "flow_id"),
        ({"flow_id": flow_id}, "site_id"),
        ({"site_id": site_id, "flow_id": 7}, "flow_id"),
        ({"site_id": site_id, "flow_id": flow_id, "configs": []}, "configs"),
        (
            {"site_id": site_id, "flow_id": flow_id, "configs": {"end_on_fail": "yes"}},
            "configs.end_on_fail",
        ),
        ({"id": "mine", "site_id": site_id, "flow_id": flow_id}, "id"),
    ]:
        error = _error(client.post("/flowrun", json=fields), 422)
        assert (error["code"], error["field"]) == ("invalid_field", field), fields
    assert _ok(client.get("/flowrun", params=WAIT))["count"] == 0


def test_caserun_copies_the_case_and_is_read_cancelled_and_deleted(
    client: httpx.Client, other: httpx.Client
) -> None:
    site_id = _site(client)
    case = _ok(client.post("/case", json={"site_id": site_id, "name": "c", "steps": STEPS}), 201)
    run = _ok(client.post("/caserun", json={"site_id": site_id, "case_id": case["id"]}), 201)
    assert (run["site"], run["case"], run["title"]) == (site_id, case["id"], "c")
    assert run["status"] == "queued" and run["exception"] is None
    assert len(run["steps"]) == len(case["steps"])
    for step, defined in zip(run["steps"], case["steps"], strict=True):
        action = step["action"]
        assert action["status"] == "queued" and action["time_started"] is None
        assert {k: v for k, v in action.items() if k not in RUN_KEYS} == defined["action"]
        assert step["screenshot"] is None
    assert run["steps"][0]["assertion"] is None, "the first step asserts nothing"
    assert run["steps"][1]["assertion"]["status"] == "queued"
    assert run["steps"][1]["assertion"]["value"] == "^Con"

    assert _ok(client.get(f"/caserun/{run['id']}", params=WAIT)) == run
    page = _ok(client.get("/caserun", params={"site_id": site_id, **WAIT}))
    assert page["count"] == 1 and page["results"] == [run]
    assert _ok(client.get("/caserun", params={"site_id": "elsewhere"}))["count"] == 0
    for response in (
        other.get(f"/caserun/{run['id']}", params=WAIT),
        other.post(f"/caserun/{run['id']}/cancel"),
        other.delete(f"/caserun/{run['id']}"),
    ):
        assert _error(response, 404)["code"] == "not_found"

    cancelled = _ok(client.post(f"/caserun/{run['id']}/cancel"))
    assert cancelled["status"] == "cancelled" and cancelled["time_completed"] is not None
    assert _ok(client.get(f"/caserun/{run['id']}", params=WAIT)) == cancelled
    assert _error(client.post(f"/caserun/{run['id']}/cancel"), 409)["code"] == "invalid_state"

    assert _ok(client.delete(f"/caserun/{run['id']}")) == {
        "message": "caserun deleted successfully"
    }
    assert _error(client.get(f"/caserun/{run['id']}", params=WAIT), 404)["code"] == "not_found"
    assert _ok(client.get("/caserun", params=WAIT))["count"] == 0


def test_a_caserun_needs_a_site_and_a_case_of_the_account(
    client: httpx.Client, other: httpx.Client
) -> None:
    site_id = _site(client)
    their_site = _site(other)
    theirs = other.post("/case", json={"site_id": their_site, "name": "t", "steps": STEPS})
    their_case = _ok(theirs, 201)["id"]
    unknown = str(uuid.uuid4())
    for fields, field in [
        ({"site_id": site_id, "case_id": unknown}, "case_id"),
        ({"site_id": site_id, "case_id": their_case}, "case_id"),
        ({"site_id": their_site, "case_id": their_case}, "site_id"),
        ({"site_id": site_id}, "case_id"),
    ]:
        error = _error(client.post("/caserun", json=fields), 422)
        assert (error["code"], error["field"]) == ("invalid_field", field), fields
