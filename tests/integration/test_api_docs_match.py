"""The running node answers as docs/api.md and its own ``/openapi.json`` say.

Every route of the app is probed (no token, an unknown token, unknown ids, bad query
values, bodies that are not JSON, a method the path does not have); every answer must
have a status that the operation lists in ``/openapi.json``, and every error must be
``{"error": {code, message, field}}`` with a code that docs/api.md's error table lists
under that status. Then real objects are created and read, and their JSON must have
exactly the fields of their OpenAPI schema.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from api import ApiDeps, create_app

pytestmark = pytest.mark.integration

API_MD = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
PUBLIC = {"/health", "/metrics", "/openapi.json"}
STREAMS = {"/stream", "/process/{process_id}/stream", "/flowrun/{flowrun_id}/stream"}
STREAMS.add("/caserun/{caserun_id}/stream")


def error_table() -> dict[str, int]:
    section = API_MD.split("\n## Errors\n", 1)[1].split("\n## ", 1)[0]
    table = {}
    for status, codes in re.findall(r"^\| (\d{3}) \| ([^|]+) \|", section, re.M):
        for code in re.findall(r"`([a-z_]+)`", codes):
            table[code] = int(status)
    return table


TABLE = error_table()


def app_routes() -> list[tuple[str, str]]:
    """(METHOD, path) of every API operation of the app (the dashboard is not one)."""
    app = create_app(ApiDeps(reads=None, commands=None, positions=None))  # type: ignore[arg-type]
    found = []
    for route in app.routes:
        if not getattr(route, "include_in_schema", True):
            continue
        for method in sorted(getattr(route, "methods", None) or ()):
            if method != "HEAD":
                found.append((method, route.path))  # type: ignore[attr-defined]
    return found


ROUTES = app_routes()


def concrete(path: str) -> str:
    """``path`` with an id nobody has in each parameter (a well-formed hash)."""
    return re.sub(
        r"\{(\w+)\}", lambda m: "0" * 64 if m.group(1) == "hash" else str(uuid.uuid4()), path
    )


@pytest.fixture(scope="module")
def document(stack: Any) -> dict[str, Any]:
    r = httpx.get(stack.url + "/openapi.json")
    assert r.status_code == 200, r.text
    return dict(r.json())


@pytest.fixture(scope="module")
def client(stack: Any) -> httpx.Client:
    return stack.authenticated("docs-match")


def send(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """The response, its body read in full; a stream that answers 200 is closed at once
    (it would stay open for the node's window)."""
    with client.stream(method, url, headers=headers, **kwargs) as r:
        if r.status_code != 200 or "text/event-stream" not in r.headers.get("content-type", ""):
            r.read()
    return r


def check(document: dict[str, Any], method: str, path: str, r: httpx.Response) -> None:
    """The answer of ``method path`` is one ``/openapi.json`` lists for it; an error has
    the error shape and a code the error table lists under its status."""
    op = document["paths"][path][method.lower()]
    assert str(r.status_code) in op["responses"], (
        f"{method} {path} answered {r.status_code}, /openapi.json lists "
        f"{sorted(op['responses'])}: {r.text[:200]}"
    )
    if r.status_code < 400:
        return
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "field"}, body
    code = body["error"]["code"]
    assert TABLE.get(code) == r.status_code, (
        f"{method} {path}: {r.status_code} {code}, docs/api.md's table says {TABLE.get(code)}"
    )


def test_the_probed_statuses_and_codes_are_documented(
    stack: Any, client: httpx.Client, document: dict[str, Any]
) -> None:
    anonymous = httpx.Client(base_url=stack.url, timeout=30)
    listed = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    assert listed == set(ROUTES)
    for method, path in ROUTES:
        url = concrete(path)
        op = document["paths"][path][method.lower()]
        query = {p["name"] for p in op["parameters"] if p["in"] == "query"}
        json_body: dict[str, Any] | None = {} if method in ("POST", "DELETE") else None

        r = send(anonymous, method, url, json=json_body)
        check(document, method, path, r)
        if path in PUBLIC:
            assert r.status_code == 200, (method, path)
            continue
        assert (r.status_code, r.json()["error"]["code"]) == (401, "unauthenticated")
        assert r.headers["www-authenticate"] == 'Bearer realm="runledger"'

        r = send(anonymous, method, url, json=json_body, headers={"Authorization": "rl_nope"})
        check(document, method, path, r)
        assert (r.status_code, r.json()["error"]["code"]) == (401, "invalid_token")

        r = send(client, method, url, json=json_body)
        check(document, method, path, r)
        if method == "GET" and "{" in path:
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", path

        # A bad value of every query parameter the operation offers.
        bad = {"limit": "0", "offset": "-1", "wait": "maybe", "after": "x", "as_of": "noon"}
        if path in ("/process", "/stream"):
            bad["status"] = "nope"
        if path == "/stream":
            bad["type"] = "nope"
        for name, value in bad.items():
            if name not in query:
                continue
            r = send(client, method, url, params={name: value}, json=json_body)
            check(document, method, path, r)
            if method == "GET" and "{" not in path:  # else the id may be looked up first
                assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_query"), (
                    path,
                    name,
                )

        if path in STREAMS:
            r = send(client, method, url, headers={"Last-Event-ID": "x"})
            check(document, method, path, r)
            assert r.json()["error"]["code"] == "invalid_last_event_id"

        if method in ("POST", "DELETE"):
            probes: list[dict[str, Any]] = [
                {"content": b"x", "headers": {"Content-Type": "text/plain"}},
                {"content": b"{", "headers": {"Content-Type": "application/json"}},
                {"content": b"[]", "headers": {"Content-Type": "application/json"}},
                {
                    "content": b" " * (1_048_576 + 1),
                    "headers": {"Content-Type": "application/json"},
                },
                {"json": {}, "headers": {"Idempotency-Key": "k" * 256}},
                {"json": {}, "headers": {"X-Correlation-Id": "x" * 256}},
                {"json": {}, "headers": {"Prefer": "respond-async"}},
            ]
            seen = set()
            for probe in probes:
                r = send(client, method, url, **probe)
                check(document, method, path, r)
                seen.add(r.status_code)
            if method == "POST":  # every POST reads its body first
                assert {400, 413, 415} <= seen, (path, seen)

        r = send(client, "PUT", url, json={})
        assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed", path
        assert TABLE["method_not_allowed"] == 405


def test_the_artifact_hash_error_is_documented(
    client: httpx.Client, document: dict[str, Any]
) -> None:
    r = send(client, "GET", "/artifact/not-a-hash")
    check(document, "GET", "/artifact/{hash}", r)
    assert r.json()["error"]["code"] == "invalid_hash"


def _operation(document: dict[str, Any], url: str) -> dict[str, Any]:
    """The GET operation of ``/openapi.json`` whose path template ``url`` matches."""
    for path, ops in document["paths"].items():
        if re.fullmatch(re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(path)), url):
            return dict(ops["get"])
    raise AssertionError(url)


def _schema(document: dict[str, Any], name: str) -> set[str]:
    return set(document["components"]["schemas"][name]["properties"])


def _ok(r: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    return dict(r.json())


def test_every_object_has_the_fields_of_its_schema(
    client: httpx.Client, document: dict[str, Any]
) -> None:
    wait = {"wait": "true"}
    page = {"count", "next", "previous", "results"}
    site = _ok(client.post("/site", json={"site_url": "https://example.com"}, params=wait), 201)
    flow = _ok(
        client.post(
            "/flow",
            json={"name": "f", "nodes": [{"id": "1", "data": {"task_type": "wait"}}]},
            params=wait,
        ),
        201,
    )
    case = _ok(
        client.post(
            "/case",
            json={
                "site_id": site["id"],
                "name": "c",
                "steps": [{"action": {"type": "navigate", "path": "/"}}],
            },
            params=wait,
        ),
        201,
    )
    process = _ok(
        client.post(
            "/process",
            json={"type": "scan", "steps": [{"id": "a", "name": "A", "order": 1}]},
            params=wait,
        ),
        201,
    )
    flowrun = _ok(
        client.post("/flowrun", json={"site_id": site["id"], "flow_id": flow["id"]}, params=wait),
        201,
    )
    caserun = _ok(
        client.post("/caserun", json={"site_id": site["id"], "case_id": case["id"]}, params=wait),
        201,
    )
    for schema, obj, one in (
        ("Site", site, f"/site/{site['id']}"),
        ("Flow", flow, f"/flow/{flow['id']}"),
        ("Case", case, f"/case/{case['id']}"),
        ("Process", process, f"/process/{process['id']}"),
        ("FlowRun", flowrun, f"/flowrun/{flowrun['id']}"),
        ("CaseRun", caserun, f"/caserun/{caserun['id']}"),
    ):
        assert set(obj) == _schema(document, schema), schema
        assert set(_ok(client.get(one))) == _schema(document, schema), one
        listing = _ok(client.get("/" + one.split("/")[1], params={"limit": 1}))
        assert set(listing) == page and set(listing["results"][0]) == _schema(document, schema)

    data_schema = document["components"]["schemas"]["FlowRunNode"]["properties"]["data"]
    assert set(flowrun["nodes"][0]["data"]) <= set(data_schema["properties"])
    step = caserun["steps"][0]
    step_props = document["components"]["schemas"]["CaseRun"]["properties"]["steps"]["items"]
    assert set(step) == set(step_props["properties"])
    assert {"status", "time_started", "time_completed", "exception"} <= set(step["action"])
    assert set(flowrun["logs"][0]) == set(
        document["components"]["schemas"]["FlowRun"]["properties"]["logs"]["items"]["properties"]
    )

    p = f"/process/{process['id']}"
    assert set(_ok(client.get(p + "/runstatus"))) == _schema(document, "RunStatus")
    steps = _ok(client.get(p + "/steps"))
    assert set(steps) == page and set(steps["results"][0]) == _schema(document, "Step")
    assert set(_ok(client.get(p + "/steps/a/runstatus"))) == _schema(document, "StepRunStatus")
    for read in (p, p + "/runstatus", p + "/steps", p + "/events", f"/flowrun/{flowrun['id']}"):
        for name, value in (("wait", "maybe"), ("after", "x"), ("limit", "0"), ("as_of", "noon")):
            if not any(q["name"] == name for q in _operation(document, read)["parameters"]):
                continue
            r = client.get(read, params={name: value})
            assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_query"), read
            assert TABLE["invalid_query"] == 400
    events = _ok(client.get(p + "/events"))
    assert set(events) == page and set(events["results"][0]) == _schema(document, "Event")
    runstatus = _ok(client.get(f"/flowrun/{flowrun['id']}/runstatus"))
    assert set(runstatus) == _schema(document, "FlowRunStatus")
    node_schema = document["components"]["schemas"]["FlowRunStatus"]["properties"]["nodes"]
    assert set(runstatus["nodes"][0]) == set(node_schema["items"]["properties"])

    r = client.post(p + "/cancel", json={}, headers={"Prefer": "respond-async"})
    accepted = _ok(r, 202)
    assert set(accepted) == _schema(document, "Accepted")
    status = _ok(client.get(accepted["status_url"]))
    assert set(status) == _schema(document, "CommandStatus")
