"""``POST /flow`` checks that each ``case`` node names a Case of the caller's account,
on the real broker and read model: a missing, deleted or other account's Case is the
same 422 on the node's path, and nothing is recorded."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.integration.test_api_definitions import STEPS

pytestmark = pytest.mark.integration


@pytest.fixture
def client(stack: Any) -> httpx.Client:
    return stack.authenticated(f"flowcase-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def other(stack: Any) -> httpx.Client:
    return stack.authenticated(f"other-{uuid.uuid4().hex[:8]}")


def _created(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def _case(client: httpx.Client) -> str:
    site = _created(client.post("/site", json={"site_url": "https://example.com"}))
    case = _created(client.post("/case", json={"site_id": site["id"], "name": "c", "steps": STEPS}))
    return str(case["id"])


def _flow(case_ids: list[str]) -> dict[str, Any]:
    """A scan, then one case node per id (nodes[1], nodes[2], ...)."""
    nodes: list[dict[str, Any]] = [{"id": "scan", "data": {"task_type": "scan"}}]
    edges = []
    for i, case_id in enumerate(case_ids):
        nodes.append({"id": f"case{i}", "data": {"task_type": "case", "case_id": case_id}})
        edges.append({"id": f"e{i}", "source": "scan", "target": f"case{i}"})
    return {"name": "scan then cases", "nodes": nodes, "edges": edges}


def _refused(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    r = client.post("/flow", json=body)
    assert r.status_code == 422, r.text
    error: dict[str, Any] = r.json()["error"]
    assert error["code"] == "invalid_field"
    return error


def test_a_flow_naming_cases_of_the_account_is_created(client: httpx.Client) -> None:
    first, second = _case(client), _case(client)  # created a moment ago: waited for
    flow = _created(client.post("/flow", json=_flow([first, second])))
    assert [n["data"].get("case_id") for n in flow["nodes"]] == [None, first, second]


def test_an_unknown_case_is_422_on_the_node_path(client: httpx.Client) -> None:
    known, unknown = _case(client), str(uuid.uuid4())
    error = _refused(client, _flow([known, unknown]))
    assert error["field"] == "nodes[2].data.case_id"
    assert unknown in error["message"]
    assert client.get("/flow", params={"wait": "true"}).json()["count"] == 0


def test_another_accounts_case_looks_exactly_like_a_missing_one(
    client: httpx.Client, other: httpx.Client
) -> None:
    theirs, missing = _case(other), str(uuid.uuid4())
    error, absent = _refused(client, _flow([theirs])), _refused(client, _flow([missing]))
    assert error["field"] == absent["field"] == "nodes[1].data.case_id"
    assert error["message"].replace(theirs, "<id>") == absent["message"].replace(missing, "<id>")
    assert client.get("/flow", params={"wait": "true"}).json()["count"] == 0


def test_a_deleted_case_is_422(client: httpx.Client) -> None:
    case_id = _case(client)
    deleted = client.delete(f"/case/{case_id}", params={"wait": "true"})
    assert deleted.status_code == 200, deleted.text
    assert _refused(client, _flow([case_id]))["field"] == "nodes[1].data.case_id"


def test_field_errors_of_the_graph_come_before_the_lookup(client: httpx.Client) -> None:
    body = _flow([str(uuid.uuid4())])
    body["edges"].append({"id": "loop", "source": "case0", "target": "scan"})
    assert _refused(client, body)["field"] == "edges"


def test_a_retried_create_replays_though_its_case_was_deleted_since(
    client: httpx.Client,
) -> None:
    """An Idempotency-Key retry of an accepted create is answered as the first was: the
    Flow exists, whatever became of its Case since (a lost response, then a retry)."""
    case_id = _case(client)
    key = {"Idempotency-Key": f"flow-{uuid.uuid4()}"}
    first = _created(client.post("/flow", json=_flow([case_id]), headers=key))
    assert client.delete(f"/case/{case_id}", params={"wait": "true"}).status_code == 200
    again = client.post("/flow", json=_flow([case_id]), headers=key)
    assert again.status_code == 201, again.text
    assert again.json()["id"] == first["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    # Without the key it is a new Flow, and its Case is gone: refused.
    _refused(client, _flow([case_id]))
