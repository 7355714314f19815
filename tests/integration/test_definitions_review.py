"""Review of the definitions' validation over HTTP on the real broker: what the unit
tests refuse arrives as a ``422 invalid_field`` naming the path, and is not recorded."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration


@pytest.fixture
def client(stack: Any) -> httpx.Client:
    return stack.authenticated(f"defrev-{uuid.uuid4().hex[:8]}")


def _error(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 422, r.text
    error: dict[str, Any] = r.json()["error"]
    assert error["code"] == "invalid_field"
    return error


def test_a_node_that_can_never_start_is_422_and_not_recorded(client: httpx.Client) -> None:
    nodes = [
        {"id": "a", "data": {"task_type": "scan"}},
        {
            "id": "b",
            "data": {"task_type": "wait", "conditions": [{"parent": "a", "status": "failed"}]},
        },
    ]
    edges = [{"id": "e", "source": "a", "target": "b"}]
    error = _error(client.post("/flow", json={"name": "never", "nodes": nodes, "edges": edges}))
    assert error["field"] == "nodes[1].data.conditions[0]"
    assert "never start" in error["message"]
    assert client.get("/flow").json()["count"] == 0


def test_a_site_url_with_credentials_is_422_and_not_recorded(client: httpx.Client) -> None:
    error = _error(client.post("/site", json={"site_url": "https://u:secret@example.com/"}))
    assert error["field"] == "site_url"
    assert "secret" not in error["message"]
    assert client.get("/site").json()["count"] == 0
