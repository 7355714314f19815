"""Errors of the API as docs/api.md lists them, each as
``{"error": {"code", "message", "field"}}``: 401, 404, 400, 413, 415, 422, and
account isolation (another account's Process answers 404 like a missing one).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import httpx
import pytest

from runledger.tokens import revoke_token

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(stack: Any) -> httpx.Client:
    return stack.authenticated("acme")


@pytest.fixture
def fresh(stack: Any) -> httpx.Client:
    """A client of an account that owns nothing yet."""
    return stack.authenticated(f"err-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def anonymous(stack: Any) -> httpx.Client:
    return httpx.Client(base_url=stack.url, timeout=30)


def assert_error(r: httpx.Response, status: int, code: str, field: str | None = None) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "field"}
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert body["error"]["field"] == field, body


def create(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    r = client.post("/process", json={"type": "scan", **fields}, params={"wait": "true"})
    assert r.status_code == 201, r.text
    return r.json()


def count(client: httpx.Client) -> int:
    r = client.get("/process", params={"wait": "true"})
    assert r.status_code == 200, r.text
    return int(r.json()["count"])


# -- 401 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/process"),
        ("POST", "/process"),
        ("GET", "/process/00000000-0000-0000-0000-000000000000"),
        ("POST", "/process/00000000-0000-0000-0000-000000000000/cancel"),
        ("DELETE", "/process/00000000-0000-0000-0000-000000000000"),
        ("GET", "/process/00000000-0000-0000-0000-000000000000/events"),
    ],
)
def test_without_a_token_is_401(anonymous: httpx.Client, method: str, path: str) -> None:
    body = json.dumps({"type": "scan"}) if method == "POST" else None
    r = anonymous.request(method, path, content=body, headers={"Content-Type": "application/json"})
    assert_error(r, 401, "unauthenticated")


def test_an_empty_authorization_header_is_401(anonymous: httpx.Client) -> None:
    r = anonymous.get("/process", headers={"Authorization": ""})
    assert_error(r, 401, "unauthenticated")


@pytest.mark.parametrize("header", ["Bearer rl_not-a-real-token", "rl_not-a-real-token"])
def test_an_unknown_token_is_401(anonymous: httpx.Client, header: str) -> None:
    r = anonymous.get("/process", headers={"Authorization": header})
    assert_error(r, 401, "invalid_token")
    r = anonymous.post("/process", json={"type": "scan"}, headers={"Authorization": header})
    assert_error(r, 401, "invalid_token")


def test_a_token_works_with_and_without_bearer(stack: Any, anonymous: httpx.Client) -> None:
    stack.authenticated("acme")
    token = stack.token("acme")
    for header in (token, f"Bearer {token}", f"bearer {token}"):
        r = anonymous.get("/process", headers={"Authorization": header})
        assert r.status_code == 200, r.text


def test_a_revoked_token_is_401(stack: Any, anonymous: httpx.Client) -> None:
    account = f"revoke-{uuid.uuid4().hex[:8]}"
    stack.authenticated(account)
    token = stack.token(account)
    asyncio.run(revoke_token(stack.settings, account, token))
    # a node remembers a token for up to two seconds; then it learns of the revocation
    deadline = time.monotonic() + 15
    while True:
        r = anonymous.get("/process", headers={"Authorization": f"Bearer {token}"})
        if r.status_code != 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert_error(r, 401, "invalid_token")


# -- 404 -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["", "/runstatus", "/steps", "/events", "/steps/fetch/runstatus"])
def test_reads_of_an_unknown_process_are_404(client: httpx.Client, path: str) -> None:
    assert_error(client.get(f"/process/{uuid.uuid4()}{path}"), 404, "not_found")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("start", None),
        ("cancel", {}),
        ("retry", None),
        ("approve", None),
        ("review", {}),
        ("progress", {"progress": 5}),
        ("log", {"message": "hello"}),
        ("complete", {}),
        ("fail", {"exception": "x"}),
        ("steps/fetch/start", None),
        ("steps/fetch/complete", {}),
        ("steps/fetch/fail", {"exception": "x"}),
        ("steps/fetch/restart", None),
    ],
)
def test_commands_on_an_unknown_process_are_404(client: httpx.Client, path: str, body: Any) -> None:
    r = client.post(f"/process/{uuid.uuid4()}/{path}", json=body)
    assert_error(r, 404, "not_found")


def test_delete_of_an_unknown_process_is_404(client: httpx.Client) -> None:
    assert_error(client.delete(f"/process/{uuid.uuid4()}"), 404, "not_found")


def test_an_unknown_step_is_404(client: httpx.Client) -> None:
    pid = create(client, steps=[{"id": "fetch"}])["id"]
    r = client.get(f"/process/{pid}/steps/nope/runstatus")
    assert_error(r, 404, "not_found", "step_id")
    client.post(f"/process/{pid}/start", params={"wait": "true"})
    assert_error(
        client.post(f"/process/{pid}/steps/nope/complete", json={}), 404, "not_found", "step_id"
    )


@pytest.mark.parametrize("path", ["/nope", "/process/x/y/z", "/processes"])
def test_an_unknown_route_is_404_json(client: httpx.Client, path: str) -> None:
    assert_error(client.get(path), 404, "not_found")


def test_a_wrong_method_is_an_error_in_the_same_shape(client: httpx.Client) -> None:
    r = client.put("/process", json={"type": "scan"})
    assert_error(r, 405, "method_not_allowed")
    # Allow names every method of the path, though list and create are two routes.
    assert r.headers["Allow"] == "GET, HEAD, POST"
    assert "allowed: GET, HEAD, POST" in r.json()["error"]["message"]
    r = client.post("/process/some-id")
    assert_error(r, 405, "method_not_allowed")
    assert r.headers["Allow"] == "DELETE, GET, HEAD"


# -- 400 -------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"{", b'{"type": "scan",}', b"not json", b'{"type": "scan"'])
def test_malformed_json_is_400(fresh: httpx.Client, raw: bytes) -> None:
    r = fresh.post("/process", content=raw, headers={"Content-Type": "application/json"})
    assert_error(r, 400, "invalid_json")
    assert count(fresh) == 0


@pytest.mark.parametrize("value", [[1, 2], "scan", 42, None, True])
def test_a_body_that_is_not_an_object_is_400(fresh: httpx.Client, value: Any) -> None:
    r = fresh.post(
        "/process", content=json.dumps(value), headers={"Content-Type": "application/json"}
    )
    assert_error(r, 400, "invalid_json")
    assert count(fresh) == 0


def nested(depth: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        doc = {"a": doc}
    return doc


def test_json_nested_too_deep_to_parse_is_400(fresh: httpx.Client) -> None:
    raw = b'{"type": "scan", "info": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    r = fresh.post("/process", content=raw, headers={"Content-Type": "application/json"})
    assert_error(r, 400, "invalid_json")
    assert count(fresh) == 0


def test_a_document_nested_deeper_than_100_levels_is_422(
    client: httpx.Client, fresh: httpx.Client
) -> None:
    body = json.dumps({"type": "scan", "info": nested(500)})
    r = fresh.post("/process", content=body, headers={"Content-Type": "application/json"})
    assert_error(r, 422, "invalid_field", "info")
    assert count(fresh) == 0
    pid = create(client)["id"]
    client.post(f"/process/{pid}/start", params={"wait": "true"})
    summary = json.dumps({"result_summary": nested(500)})
    r = client.post(
        f"/process/{pid}/complete", content=summary, headers={"Content-Type": "application/json"}
    )
    assert_error(r, 422, "invalid_field", "result_summary")


def test_a_document_nested_100_levels_is_kept(fresh: httpx.Client) -> None:
    info = nested(100)
    created = create(fresh, info=info)
    assert created["info"] == info
    assert fresh.get(f"/process/{created['id']}").json()["info"] == info


def test_a_report_with_malformed_json_is_400(client: httpx.Client) -> None:
    pid = create(client)["id"]
    r = client.post(
        f"/process/{pid}/progress",
        content=b"{progress: 5}",
        headers={"Content-Type": "application/json"},
    )
    assert_error(r, 400, "invalid_json")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=abc", "limit"),
        ("limit=-5", "limit"),
        ("offset=-1", "offset"),
        ("offset=x", "offset"),
        ("status=done", "status"),
        ("status=Running", "status"),
        ("wait=maybe", "wait"),
        ("after=12", "after"),
        ("after=a:b", "after"),
    ],
)
def test_a_bad_list_query_is_400(client: httpx.Client, query: str, field: str) -> None:
    assert_error(client.get(f"/process?{query}"), 400, "invalid_query", field)


def test_a_bad_page_of_events_or_steps_is_400(client: httpx.Client) -> None:
    pid = create(client)["id"]
    assert_error(client.get(f"/process/{pid}/events?limit=0"), 400, "invalid_query", "limit")
    assert_error(client.get(f"/process/{pid}/steps?offset=-1"), 400, "invalid_query", "offset")
    # The query is read before the Process is looked up, on both: the same answer for an
    # id that does not exist, not a 404 on one and a 400 on the other.
    for path in ("events", "steps"):
        r = client.get(f"/process/no-such-process/{path}?limit=0")
        assert_error(r, 400, "invalid_query", "limit")


def test_the_largest_limit_is_accepted(client: httpx.Client) -> None:
    assert client.get("/process?limit=1000").status_code == 200


@pytest.mark.parametrize("key", ["", "k" * 256])
def test_a_bad_idempotency_key_is_400(fresh: httpx.Client, key: str) -> None:
    r = fresh.post("/process", json={"type": "scan"}, headers={"Idempotency-Key": key})
    assert_error(r, 400, "invalid_idempotency_key")
    assert count(fresh) == 0


# -- 413, 415 --------------------------------------------------------------------------


def test_a_body_over_one_mib_is_413(fresh: httpx.Client) -> None:
    body = json.dumps({"type": "scan", "info": {"blob": "x" * 1_100_000}})
    r = fresh.post("/process", content=body, headers={"Content-Type": "application/json"})
    assert_error(r, 413, "body_too_large")
    assert count(fresh) == 0


def test_a_streamed_body_over_one_mib_is_413(fresh: httpx.Client) -> None:
    """Without Content-Length (chunked) the node counts what it reads."""

    def chunks() -> Any:
        yield b'{"type": "scan", "info": {"blob": "'
        for _ in range(11):
            yield b"x" * 100_000
        yield b'"}}'

    r = fresh.post("/process", content=chunks(), headers={"Content-Type": "application/json"})
    assert_error(r, 413, "body_too_large")
    assert count(fresh) == 0


def test_a_body_just_under_the_limit_is_read(fresh: httpx.Client) -> None:
    # 1 MiB of JSON reaches the validation (422: info is too large), not 413
    body = json.dumps({"type": "scan", "info": {"blob": "x" * 1_000_000}})
    assert len(body) < 1_048_576
    r = fresh.post("/process", content=body, headers={"Content-Type": "application/json"})
    assert_error(r, 422, "invalid_field", "info")


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_that_is_not_json_is_415(fresh: httpx.Client, ctype: str | None) -> None:
    headers = {"Content-Type": ctype} if ctype else {}
    r = fresh.post("/process", content=b'{"type": "scan"}', headers=headers)
    assert_error(r, 415, "unsupported_media_type")
    assert count(fresh) == 0


def test_json_with_a_charset_is_accepted(fresh: httpx.Client) -> None:
    r = fresh.post(
        "/process",
        content=b'{"type": "scan"}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert r.status_code == 201, r.text


# -- 422 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "type"),
        ({"site": "s"}, "type"),
        ({"type": ""}, "type"),
        ({"type": 7}, "type"),
        ({"type": "scan", "id": "mine"}, "id"),
        ({"type": "scan", "site": 5}, "site"),
        ({"type": "scan", "info": [1]}, "info"),
        ({"type": "scan", "steps": "fetch"}, "steps"),
        ({"type": "scan", "steps": [{"id": "a"}, {"id": "a"}]}, "steps[1].id"),
        ({"type": "scan", "steps": [{"id": "a"}, {"name": "no id"}]}, "steps[1].id"),
        ({"type": "scan", "steps": [{"id": "a", "enabled": "yes"}]}, "steps[0].enabled"),
        ({"type": "scan", "steps": [{"id": "a", "order": "1"}]}, "steps[0].order"),
        ({"type": "scan", "steps": [{"id": "a"}, "b"]}, "steps[1]"),
    ],
)
def test_an_unusable_create_field_is_422(
    fresh: httpx.Client, body: dict[str, Any], field: str
) -> None:
    assert_error(fresh.post("/process", json=body), 422, "invalid_field", field)
    assert count(fresh) == 0


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("progress", {"progress": 101}, "progress"),
        ("progress", {"progress": True}, "progress"),
        ("log", {}, "message"),
        ("log", {"message": "x", "level": "loud"}, "level"),
        ("fail", {}, "exception"),
        ("fail", {"exception": ""}, "exception"),
        ("steps/fetch/fail", {}, "exception"),
        ("review", {"result_summary": "text"}, "result_summary"),
        ("complete", {"result_summary": [1]}, "result_summary"),
        ("complete", {"object_id": 5}, "object_id"),
        ("cancel", {"reason": 5}, "reason"),
    ],
)
def test_an_unusable_report_field_is_422(
    client: httpx.Client, path: str, body: dict[str, Any], field: str
) -> None:
    created = create(client, steps=[{"id": "fetch"}])
    pid = created["id"]
    assert_error(client.post(f"/process/{pid}/{path}", json=body), 422, "invalid_field", field)
    # nothing was published: the Process is as it was created
    assert client.get(f"/process/{pid}", params={"wait": "true"}).json() == created


# -- account isolation ----------------------------------------------------------------


def test_another_account_cannot_see_or_touch_a_process(stack: Any) -> None:
    owner = stack.authenticated(f"a-{uuid.uuid4().hex[:8]}")
    other = stack.authenticated(f"b-{uuid.uuid4().hex[:8]}")
    mine = create(owner, steps=[{"id": "fetch"}])
    pid = mine["id"]
    theirs = create(other)

    for path in ("", "/runstatus", "/steps", "/events", "/steps/fetch/runstatus"):
        assert_error(other.get(f"/process/{pid}{path}"), 404, "not_found")
    listed = other.get("/process", params={"limit": 1000}).json()
    assert [p["id"] for p in listed["results"]] == [theirs["id"]]
    assert listed["count"] == 1
    for path, body in [
        ("start", None),
        ("progress", {"progress": 50}),
        ("log", {"message": "hi"}),
        ("steps/fetch/start", None),
        ("cancel", {}),
        ("fail", {"exception": "x"}),
        ("complete", {}),
        ("steps/fetch/restart", None),
    ]:
        assert_error(other.post(f"/process/{pid}/{path}", json=body), 404, "not_found")
    assert_error(other.delete(f"/process/{pid}"), 404, "not_found")

    # nothing of it reached the owner's Process
    after = owner.get(f"/process/{pid}", params={"wait": "true"})
    assert after.status_code == 200
    assert after.json() == mine
    assert [p["id"] for p in owner.get("/process").json()["results"]] == [pid]
