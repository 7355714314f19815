"""GET /artifact/{hash}: the node serves what runners stored, by content hash."""

from __future__ import annotations

import hashlib
import time

import httpx
import pytest

from runners.artifacts import ArtifactStore
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration


def _client(stack: Stack) -> httpx.Client:
    client = stack.client("artifacts")
    deadline = time.monotonic() + 30
    while client.get("/process").status_code == 401:  # the node applies a new token async
        assert time.monotonic() < deadline, "the node never learned the new token"
        time.sleep(0.1)
    return client


def test_a_stored_artifact_is_served_with_its_media_type(stack: Stack) -> None:
    body = b"<html><body>scanned</body></html>"
    digest = ArtifactStore(stack.data_dir / "artifacts").put(body, "text/html")
    assert digest == hashlib.sha256(body).hexdigest()
    client = _client(stack)
    r = client.get(f"/artifact/{digest}")
    assert r.status_code == 200, r.text
    assert r.content == body
    assert r.headers["content-type"].startswith("text/html")
    assert "immutable" in r.headers["cache-control"]


def test_unknown_malformed_and_unauthenticated_requests_are_refused(stack: Stack) -> None:
    client = _client(stack)
    missing = hashlib.sha256(b"never stored").hexdigest()
    r = client.get(f"/artifact/{missing}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = client.get("/artifact/ABC..%2F..%2Fetc")
    assert r.status_code in (400, 404)
    r = client.get("/artifact/" + "g" * 64)
    assert r.status_code == 400 and r.json()["error"]["field"] == "hash"
    r = client.get(f"/artifact/{missing}%0A")  # a trailing newline is not a hash either
    assert r.status_code == 400 and r.json()["error"]["field"] == "hash"
    r = httpx.get(f"{stack.url}/artifact/{missing}", timeout=5)
    assert r.status_code == 401
