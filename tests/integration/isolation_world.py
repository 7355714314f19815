"""Two accounts with objects of each kind, and how the isolation matrix
(tests/integration/test_isolation_matrix.py) sends a route's request and reads its
answer: errors, stream messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from runners.artifacts import PNG, ArtifactStore
from tests.integration.conftest import Stack
from tests.integration.isolation_routes import spec_of
from tests.integration.test_api_definitions import EDGES, NODES, STEPS
from tests.integration.test_security_review import status_once_known

WINDOW_S = 4.0  # the node's SSE window: every stream here ends within it


@dataclass
class Account:
    name: str
    client: httpx.Client
    token: str
    ids: dict[str, list[str]] = field(default_factory=dict)  # path param -> ids

    def one(self, param: str) -> str:
        return self.ids[param][0]

    def all_ids(self) -> set[str]:
        return {i for ids in self.ids.values() for i in ids}


@dataclass
class World:
    stack: Stack
    a: Account
    b: Account
    revoked: str  # a token of A's account, revoked
    a_type: str  # the Process type only A uses
    a_object_id: str  # the object_id of A's completed Process

    def params(self, who: Account) -> dict[str, str]:
        """Path params naming ``who``'s objects."""
        found = {param: ids[0] for param, ids in who.ids.items()}
        return {**found, "step_id": "s1", "asset": "app.js"}


def ok(r: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.text}"
    body: dict[str, Any] = r.json()
    return body


def created(client: httpx.Client, path: str, body: Any, **headers: str) -> str:
    """The id of what ``POST path`` created (answered 201, once the node shows it)."""
    r = client.post(path, json=body, params={"wait": "true"}, headers=headers)
    return str(ok(r, 201)["id"])


def command(client: httpx.Client, path: str, body: Any = None) -> dict[str, Any]:
    return ok(client.post(path, json=body, params={"wait": "true"}))


ASYNC = {"Prefer": "respond-async"}
# Every query parameter some route reads, each malformed.
JUNK_QUERY = {
    "limit": "x",
    "offset": "-1",
    "wait": "maybe",
    "after": "x",
    "as_of": "yesterday",
    "status": "nope",
    "type": "nope",
    "site": "a",
    "site_id": "b",
    "last_event_id": "junk",
}
SHARED_KEY = {"Idempotency-Key": "iso-shared-key"}  # both accounts use it


def populate(acc: Account, tag: str, stack: Stack) -> None:
    """Two of each object for ``acc`` (so each list has a second page), a Process with
    steps driven part way, a ``case.generate`` Process, a command answered 202 and an
    artifact."""
    c = acc.client
    ids = acc.ids
    site = created(c, "/site", {"site_url": f"https://{tag}0.example.com"}, **SHARED_KEY)
    ids["site_id"] = [site, created(c, "/site", {"site_url": f"https://{tag}1.example.com"})]
    case = {"site_id": site, "steps": STEPS}
    ids["case_id"] = [created(c, "/case", {**case, "name": f"{tag}{i}"}) for i in range(2)]
    flow = {"nodes": NODES, "edges": EDGES}
    ids["flow_id"] = [created(c, "/flow", {**flow, "name": f"{tag}{i}"}) for i in range(2)]
    run = {"site_id": site, "flow_id": ids["flow_id"][0]}
    ids["flowrun_id"] = [created(c, "/flowrun", run) for _ in range(2)]
    run = {"site_id": site, "case_id": ids["case_id"][0]}
    ids["caserun_id"] = [created(c, "/caserun", run) for _ in range(2)]
    steps = [{"id": "s1", "name": "One", "order": 1}, {"id": "s2", "name": "Two", "order": 2}]
    body = {"type": f"iso.{tag}", "site": site, "steps": steps}
    pid = created(c, "/process", body, **SHARED_KEY)
    command(c, f"/process/{pid}/start")
    command(c, f"/process/{pid}/progress", {"progress": 10, "message": tag})
    command(c, f"/process/{pid}/steps/s1/start")
    command(c, f"/process/{pid}/steps/s1/complete")
    done = created(c, "/process", {"type": f"iso.{tag}", "site": site})
    command(c, f"/process/{done}/complete", {"object_id": f"obj-{tag}"})
    generated = created(c, "/case/generate", {"site_id": site})
    ids["process_id"] = [pid, done, generated]
    pending = c.post(f"/process/{done}/log", json={"message": "x"}, headers=ASYNC)
    ids["command_id"] = [ok(pending, 202)["command_id"]]
    store = ArtifactStore(stack.data_dir / "artifacts")
    ids["hash"] = [store.put(f"{tag}'s screenshot".encode(), PNG)]


# A node learns of an issued or revoked token a moment later: wait for the status.
status_once = status_once_known


def fill(template: Any, params: dict[str, str]) -> Any:
    """``template`` (a path or a body) with its ``{param}`` placeholders filled."""
    if isinstance(template, str):
        return template.format(**params)
    if isinstance(template, list):
        return [fill(v, params) for v in template]
    if isinstance(template, dict):
        return {k: fill(v, params) for k, v in template.items()}
    return template


def send(
    world: World,
    method: str,
    path: str,
    params: dict[str, str],
    *,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    body: Any = None,
    content: bytes | None = None,
) -> httpx.Response:
    """One request of route (``method``, ``path``) with ``params`` in its path, and the
    route's valid body unless ``body`` is given; a stream is read for at most its window."""
    spec = spec_of(method, path)
    payload = fill(spec.body, params) if body is None else body
    request = httpx.Request(
        method,
        world.stack.url + fill(path, params),
        params=query,
        headers=headers or {},
        json=payload if method in ("POST", "DELETE") and payload is not None else None,
        content=content,
    )
    with httpx.Client(timeout=WINDOW_S + 15) as client:
        return client.send(request)


def error_of(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The error body of ``r``, after checking it has ``status`` and ``code`` and that its
    message is a sentence (docs/api.md, "Errors")."""
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.text}"
    error: dict[str, Any] = r.json()["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and " " in error["message"].strip(), error
    return error


def refused_401(r: httpx.Response, code: str) -> None:
    error = error_of(r, 401, code)
    assert error["field"] is None
    assert r.headers["www-authenticate"] == 'Bearer realm="runledger"'


def public_ok(r: httpx.Response, path: str) -> None:
    want = 307 if path == "/ui/" else 200
    assert r.status_code == want, f"{r.request.url}: {r.status_code} {r.text[:200]}"


def messages(
    client: httpx.Client, url: str, headers: dict[str, str], *, backlog_only: bool = False
) -> list[dict[str, str]]:
    """The messages (``id``, ``event``, ``data``) of one stream, read to its end (``done``
    or the window), or with ``backlog_only`` to its first heartbeat: the node sends one
    once the backlog is through and nothing live comes."""
    found: list[dict[str, str]] = []
    with client.stream("GET", url, headers=headers) as r:
        assert r.status_code == 200, r.read()
        current: dict[str, str] = {}
        for line in r.iter_lines():
            if line.startswith(":"):
                if backlog_only and line.startswith(": heartbeat"):
                    break
            elif line == "":
                if current:
                    found.append(current)
                current = {}
            else:
                name, _, value = line.partition(":")
                current[name] = current.get(name, "") + value.removeprefix(" ")
    return found
