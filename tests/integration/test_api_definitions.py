"""Sites, Flows and Cases over HTTP on the real broker: create, get, list, delete, the
422s of their validation (with the field), and account isolation."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

NODES = [
    {"id": "1", "data": {"task_type": "scan", "threshold": 95}, "position": {"x": 0, "y": 0}},
    {"id": "2", "data": {"task_type": "wait", "configs": {"timeout": 1}}},
    {
        "id": "3",
        "data": {
            "task_type": "webhook",
            "uri": "https://hooks.example.com/x",
            "start_if": "failed",
        },
    },
]
EDGES = [{"id": "e1", "source": "1", "target": "2"}, {"id": "e2", "source": "1", "target": "3"}]
STEPS = [
    {"action": {"type": "navigate", "path": "/"}},
    {
        "action": {"type": "click", "element": {"selector": "a.contact"}},
        "assertion": {
            "type": "match",
            "element": {"selector": "h1"},
            "value": "^Con",
            "operator": "regex",
        },
    },
]


@pytest.fixture
def client(stack: Any) -> httpx.Client:
    return stack.authenticated(f"defs-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def other(stack: Any) -> httpx.Client:
    return stack.authenticated(f"other-{uuid.uuid4().hex[:8]}")


def _created(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    assert r.headers["Location"].endswith("/" + body["id"])
    return body


def _field(r: httpx.Response) -> str | None:
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_field"
    field: str | None = r.json()["error"]["field"]
    return field


def test_site_lifecycle(client: httpx.Client, other: httpx.Client) -> None:
    site = _created(client.post("/site", json={"site_url": "https://example.com/shop"}))
    assert site["site_url"] == "https://example.com/shop"
    assert site["time_created"].endswith("Z")
    got = client.get(f"/site/{site['id']}", params={"wait": "true"})
    assert got.status_code == 200 and got.json() == site
    page = client.get("/site", params={"wait": "true"}).json()
    assert page["count"] == 1 and page["results"] == [site]
    assert other.get(f"/site/{site['id']}", params={"wait": "true"}).status_code == 404
    assert other.get("/site").json()["count"] == 0
    assert other.delete(f"/site/{site['id']}").status_code == 404
    deleted = client.delete(f"/site/{site['id']}", params={"wait": "true"})
    assert deleted.status_code == 200 and deleted.json() == {"message": "site deleted successfully"}
    assert client.get(f"/site/{site['id']}").status_code == 404
    assert client.get("/site").json()["count"] == 0
    assert client.delete(f"/site/{site['id']}").status_code == 404


@pytest.mark.parametrize("url", ["example.com", "ftp://example.com", "https://", 7])
def test_a_bad_site_url_is_422_on_site_url(client: httpx.Client, url: Any) -> None:
    assert _field(client.post("/site", json={"site_url": url})) == "site_url"


def test_site_pages(client: httpx.Client) -> None:
    ids = [
        _created(client.post("/site", json={"site_url": f"https://s{i}.example"}))["id"]
        for i in range(3)
    ]
    page = client.get("/site", params={"limit": 2, "wait": "true"}).json()
    assert page["count"] == 3 and [s["id"] for s in page["results"]] == ids[:2]
    assert httpx.get(page["next"], headers=client.headers).json()["results"][0]["id"] == ids[2]


def test_flow_lifecycle(client: httpx.Client, other: httpx.Client) -> None:
    body = {
        "name": "scan then wait",
        "nodes": NODES,
        "edges": EDGES,
        "configs": {"end_on_fail": True},
    }
    flow = _created(client.post("/flow", json=body))
    assert flow["name"] == flow["title"] == "scan then wait"
    assert flow["nodes"] == NODES and flow["edges"] == EDGES
    assert flow["configs"] == {"end_on_fail": True}
    got = client.get(f"/flow/{flow['id']}", params={"wait": "true"})
    assert got.status_code == 200 and got.json() == flow
    assert client.get("/flow").json()["results"] == [flow]
    assert other.get(f"/flow/{flow['id']}", params={"wait": "true"}).status_code == 404
    assert other.delete(f"/flow/{flow['id']}").status_code == 404
    assert client.delete(f"/flow/{flow['id']}", params={"wait": "true"}).status_code == 200
    assert client.get(f"/flow/{flow['id']}").status_code == 404
    assert client.get("/flow").json()["count"] == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"edges": [*EDGES, {"id": "e3", "source": "2", "target": "1"}]}, "edges"),
        ({"edges": [{"id": "e1", "source": "1", "target": "9"}]}, "edges[0].target"),
        (
            {"nodes": [{"id": "1", "data": {"task_type": "fax"}}], "edges": []},
            "nodes[0].data.task_type",
        ),
        (
            {
                "nodes": [{"id": str(i), "data": {"task_type": "wait"}} for i in range(101)],
                "edges": [],
            },
            "nodes",
        ),
        ({"name": ""}, "name"),
    ],
)
def test_an_invalid_flow_is_422_with_the_field(
    client: httpx.Client, change: dict[str, Any], field: str
) -> None:
    body = {"name": "f", "nodes": NODES, "edges": EDGES, **change}
    assert _field(client.post("/flow", json=body)) == field


def test_case_lifecycle(client: httpx.Client, other: httpx.Client) -> None:
    site = _created(client.post("/site", json={"site_url": "https://example.com"}))
    second = _created(client.post("/site", json={"site_url": "https://example.org"}))
    # No wait between the Site and its Case: the API waits for the Site to be projected.
    case = _created(
        client.post("/case", json={"site_id": site["id"], "name": "contact", "steps": STEPS})
    )
    assert (case["site"], case["type"], case["num_steps"]) == (site["id"], "recorded", 2)
    assert case["steps"] == STEPS
    _created(client.post("/case", json={"site_id": second["id"], "name": "b", "steps": STEPS}))
    got = client.get(f"/case/{case['id']}", params={"wait": "true"})
    assert got.status_code == 200 and got.json() == case
    assert client.get("/case").json()["count"] == 2
    mine = client.get("/case", params={"site_id": site["id"]}).json()
    assert mine["count"] == 1 and mine["results"] == [case]
    assert other.get(f"/case/{case['id']}").status_code == 404
    assert other.get("/case").json()["count"] == 0
    assert other.delete(f"/case/{case['id']}").status_code == 404
    assert client.delete(f"/case/{case['id']}", params={"wait": "true"}).status_code == 200
    assert client.get(f"/case/{case['id']}").status_code == 404
    assert client.get("/case", params={"site_id": site["id"]}).json()["count"] == 0


def test_a_case_needs_a_site_of_the_account(client: httpx.Client, other: httpx.Client) -> None:
    site = _created(other.post("/site", json={"site_url": "https://example.com"}))
    body = {"site_id": site["id"], "name": "contact", "steps": STEPS}
    assert _field(client.post("/case", json=body)) == "site_id"
    assert _field(client.post("/case", json={**body, "site_id": str(uuid.uuid4())})) == "site_id"


def test_an_invalid_case_is_422_with_the_field(client: httpx.Client) -> None:
    site = _created(client.post("/site", json={"site_url": "https://example.com"}))
    bad = [
        {
            "assertion": {
                "type": "match",
                "element": {"selector": "h1"},
                "value": "(",
                "operator": "regex",
            }
        }
    ]
    r = client.post("/case", json={"site_id": site["id"], "name": "x", "steps": bad})
    assert _field(r) == "steps[0].assertion.value"
    r = client.post(
        "/case", json={"site_id": site["id"], "name": "x", "steps": [{"action": {"type": "hover"}}]}
    )
    assert _field(r) == "steps[0].action.type"


def test_an_idempotency_key_makes_a_create_return_the_same_site(client: httpx.Client) -> None:
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    first = _created(client.post("/site", json={"site_url": "https://a.example"}, headers=headers))
    again = client.post("/site", json={"site_url": "https://a.example"}, headers=headers)
    assert again.status_code == 201 and again.json() == first
    assert again.headers.get("Idempotent-Replayed") == "true"
