"""Found in a new user's walkthrough of the HTTP API:

- a body field the operation does not take (a typo: ``confgs``, ``step``, ``colour``)
  was dropped without a word, and the command carried out as if it were absent; it is
  now a ``422 invalid_field`` naming it, on every command, before anything is
  published; the fields taken are those /openapi.json lists (``additionalProperties:
  false``);
- ``?site=a&site_id=b`` (an alias pair) or a list filter given twice was accepted and
  one of the values silently won; now a ``400 invalid_query``;
- a ``/stream`` cursor naming only some partitions replayed the others from their
  first event; now a ``400 invalid_last_event_id`` (except while the node has applied
  nothing yet);
- the ``202`` of ``Prefer: respond-async`` said ``accepted``, which
  ``GET /command/{id}`` uses for "decided and accepted"; it now says ``pending``;
- ``POST /process/{id}/log`` also sets the Process's ``message`` (documented; pinned
  here).

The node's app over fake reads, positions and a command bus that records what it is
asked to publish; every command is sent with ``Prefer: respond-async``, so an accepted
one answers ``202`` once "published", without a decider.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from api import ApiDeps, create_app
from api.auth import token_hash
from api.openapi import openapi_document
from streams.domain import commands as c
from streams.domain.commands import Command
from streams.domain.history import states_after
from tests.unit.test_projections_fold import decide_all

TOKEN = "rl_walkthrough"
ASYNC = {"Prefer": "respond-async"}
TYPO = "zz_typo"
NODES = [{"id": "1", "data": {"task_type": "wait", "configs": {"min_wait_time": 0}}}]
STEPS = [{"action": {"type": "navigate", "path": "/"}, "assertion": {"type": ""}}]


@dataclass
class Reads:
    """The reads the commands and lists make; every definition exists."""

    listed: list[dict[str, Any]] = field(default_factory=list)

    def token_account(self, digest: str) -> tuple[str, str] | None:
        return ("acme", "walker") if digest == token_hash(TOKEN) else None

    def get_site(self, account: str, site_id: str) -> Any:
        return SimpleNamespace(id=site_id, site_url="https://example.com")

    def get_flow(self, account: str, flow_id: str) -> Any:
        return SimpleNamespace(
            name="flow", nodes_json=json.dumps(NODES), edges_json="[]", configs_json="{}"
        )

    def get_case(self, account: str, case_id: str) -> Any:
        return SimpleNamespace(name="case", steps_json=json.dumps(STEPS))

    def _listed(self, **kwargs: Any) -> tuple[int, list[Any]]:
        self.listed.append(kwargs)
        return 0, []

    def list_processes(self, account: str, **kwargs: Any) -> tuple[int, list[Any]]:
        return self._listed(**kwargs)

    def list_cases(self, account: str, **kwargs: Any) -> tuple[int, list[Any]]:
        return self._listed(**kwargs)

    def list_flowruns(self, account: str, **kwargs: Any) -> tuple[int, list[Any]]:
        return self._listed(**kwargs)

    def list_caseruns(self, account: str, **kwargs: Any) -> tuple[int, list[Any]]:
        return self._listed(**kwargs)

    def events_since(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []


@dataclass
class Bus:
    """The command bus: records what it would publish; never waits for a decision."""

    node_id: str = "node-walkthrough"
    published: list[Command] = field(default_factory=list)

    async def submit(self, cmd: Command) -> tuple[int, int]:
        self.published.append(cmd)
        return 0, len(self.published)

    async def execute(self, cmd: Command, timeout: float) -> Any:
        raise AssertionError("every command here is sent with Prefer: respond-async")


@dataclass
class Positions:
    partitions: dict[int, int] = field(default_factory=lambda: {0: 10, 1: 10, 2: 10, 3: 10})

    def applied(self) -> dict[int, int]:
        return dict(self.partitions)

    async def wait_for(self, partition: int, offset: int, timeout: float) -> bool:
        return True

    async def wait_for_end(self, timeout: float) -> bool:
        return True


@dataclass
class Node:
    reads: Reads
    bus: Bus
    app: Any

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
                return await client.request(
                    method,
                    path,
                    content=None if body is None else json.dumps(body),
                    headers={
                        "Authorization": f"Bearer {TOKEN}",
                        "Content-Type": "application/json",
                        **ASYNC,
                        **(headers or {}),
                    },
                )

        return asyncio.run(send())


@pytest.fixture
def node() -> Node:
    reads, bus = Reads(), Bus()
    deps = ApiDeps(
        reads=reads,  # type: ignore[arg-type]
        commands=bus,  # type: ignore[arg-type]
        positions=Positions(),
        sse_window_s=0.2,
        sse_heartbeat_s=0.1,
    )
    return Node(reads, bus, create_app(deps))


def assert_error(r: httpx.Response, status: int, code: str, field: str | None) -> str:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert (error["code"], error["field"]) == (code, field), error
    return str(error["message"])


# -- 1. unknown body fields ------------------------------------------------------------

# A body with every field each command takes, usable as it is.
FULL_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/process"): {
        "type": "scan",
        "site": "s1",
        "info": {"any": "thing"},
        "steps": [{"id": "fetch", "name": "Fetch", "order": 1, "enabled": True}],
    },
    ("POST", "/process/{process_id}/progress"): {"progress": 40, "message": "page 4"},
    ("POST", "/process/{process_id}/log"): {"message": "hello", "level": "warning"},
    ("POST", "/process/{process_id}/steps/{step_id}/complete"): {"message": "done"},
    ("POST", "/process/{process_id}/steps/{step_id}/fail"): {"exception": "boom"},
    ("POST", "/process/{process_id}/cancel"): {"reason": "not needed"},
    ("POST", "/process/{process_id}/review"): {"result_summary": {"pages": 3}},
    ("POST", "/process/{process_id}/complete"): {"object_id": "o1", "result_summary": {}},
    ("POST", "/process/{process_id}/fail"): {"exception": "boom"},
    ("POST", "/site"): {"site_url": "https://example.com"},
    ("POST", "/flow"): {"name": "f", "nodes": NODES, "edges": [], "configs": {"x": 1}},
    ("POST", "/case"): {"site_id": "s1", "name": "c", "steps": STEPS, "type": "recorded"},
    ("POST", "/case/generate"): {"site_id": "s1", "max_layers": 3, "prompt": "log in"},
    ("POST", "/flowrun"): {"site_id": "s1", "flow_id": "f1", "configs": {"end_on_fail": False}},
    ("POST", "/caserun"): {"site_id": "s1", "case_id": "c1"},
    ("POST", "/flowrun/{flowrun_id}/cancel"): {"reason": "not needed"},
    ("POST", "/caserun/{caserun_id}/cancel"): {"reason": "not needed"},
}


def commands(node: Node) -> Iterator[tuple[str, str]]:
    """``(method, path)`` of every command (POST or DELETE) of the app."""
    for route in node.app.routes:
        if isinstance(route, Route) and route.include_in_schema:
            for method in sorted((route.methods or set()) & {"POST", "DELETE"}):
                yield method, route.path


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: m.group(1).split("_")[0] + "-1", path)


def full_body(method: str, path: str) -> dict[str, Any]:
    return json.loads(json.dumps(FULL_BODIES.get((method, path), {})))


def documented_fields(method: str, path: str) -> tuple[list[str], Any]:
    """The properties /openapi.json gives the operation's body, and its
    ``additionalProperties``."""
    document = openapi_document(create_app(ApiDeps(None, None, None)).routes)  # type: ignore[arg-type]
    schema = document["paths"][path][method.lower()]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    if "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return list(schema["properties"]), schema.get("additionalProperties")


def test_every_command_takes_its_documented_fields_and_refuses_any_other(node: Node) -> None:
    found = list(commands(node))
    assert len(found) > 20 and set(FULL_BODIES) <= set(found)
    for method, path in found:
        documented, additional = documented_fields(method, path)
        assert additional is False, (method, path)
        body = full_body(method, path)
        assert list(body) == documented, (method, path)  # every field, in the docs' order

        r = node.request(method, concrete(path), body)
        assert r.status_code == 202, (method, path, r.text)
        assert r.json()["status"] == "pending"  # 4: durable, not decided yet
        assert len(node.bus.published) == 1
        node.bus.published.clear()

        body[TYPO] = 1
        message = assert_error(
            node.request(method, concrete(path), body), 422, "invalid_field", TYPO
        )
        listed = ", ".join(documented) if documented else None
        assert message.startswith(f"unknown field '{TYPO}'; "), message
        assert message.endswith(f"known fields: {listed}") if listed else "no fields" in message
        assert node.bus.published == [], (method, path)  # refused before publishing


def test_the_walkthroughs_typos_are_named(node: Node) -> None:
    steps = [{"id": "fetch"}]
    message = assert_error(
        node.request("POST", "/process", {"type": "x", "step": steps}), 422, "invalid_field", "step"
    )
    assert message == "unknown field 'step'; known fields: type, site, info, steps"
    body = {"site_id": "s1", "flow_id": "f1", "confgs": {"end_on_fail": False}}
    message = assert_error(node.request("POST", "/flowrun", body), 422, "invalid_field", "confgs")
    assert message == "unknown field 'confgs'; known fields: site_id, flow_id, configs"
    body = {"site_url": "https://example.com", "colour": "red"}
    assert_error(node.request("POST", "/site", body), 422, "invalid_field", "colour")
    # A body-less command: the step comes from the path, not the body.
    r = node.request("POST", "/process/p1/steps/a/start", {"step_id": "b"})
    assert_error(r, 422, "invalid_field", "step_id")
    r = node.request("POST", "/process/p1/retry", {"from_step": "b"})
    assert_error(r, 422, "invalid_field", "from_step")
    # An error's field is never empty, nor an echo of a huge name.
    assert_error(node.request("POST", "/process/p1/cancel", {"": 1}), 422, "invalid_field", '""')
    r = node.request("POST", "/process/p1/cancel", {"x" * 5000: 1})
    assert_error(r, 422, "invalid_field", "x" * 100 + "…")
    assert node.bus.published == []


def test_fixed_shape_nested_objects_are_checked_free_form_ones_are_not(node: Node) -> None:
    steps = [{"id": "a"}, {"id": "b", "enabeld": False}]
    r = node.request("POST", "/process", {"type": "x", "steps": steps})
    message = assert_error(r, 422, "invalid_field", "steps[1].enabeld")
    assert message.endswith("known fields of steps[1]: id, name, order, enabled")
    body = {"site_id": "s1", "flow_id": "f1", "configs": {"end_on_fial": False}}
    message = assert_error(
        node.request("POST", "/flowrun", body), 422, "invalid_field", "configs.end_on_fial"
    )
    assert message.endswith("known fields of configs: end_on_fail")
    assert node.bus.published == []
    # Kept as sent: a Flow's configs and node data, a Process's info, a Case's steps.
    flow = full_body("POST", "/flow")
    flow["nodes"][0]["data"]["colour"] = "red"
    flow["configs"] = {"end_on_fail": True, "colour": "red"}
    process: dict[str, Any] = {"type": "x", "info": {"colour": "red"}, "steps": [{"id": "a"}]}
    case = full_body("POST", "/case")
    case["steps"][0]["action"]["colour"] = "red"
    for path, body in (("/flow", flow), ("/process", process), ("/case", case)):
        assert node.request("POST", path, body).status_code == 202, path
    assert len(node.bus.published) == 3
    created = node.bus.published[1].body
    assert isinstance(created, c.CreateProcess)
    assert json.loads(created.info_json) == {"colour": "red"}


# -- 2. list filters given twice, or with their alias ------------------------------------


def test_site_and_site_id_together_are_refused(node: Node) -> None:
    message = assert_error(
        node.request("GET", "/process?site=a&site_id=b"), 400, "invalid_query", "site"
    )
    assert "site" in message and "site_id" in message
    assert node.reads.listed == []
    for query, site in (("site=a", "a"), ("site_id=b", "b"), ("", None)):
        r = node.request("GET", f"/process?{query}")
        assert r.status_code == 200, r.text
        assert node.reads.listed.pop()["site"] == site


@pytest.mark.parametrize(
    "query",
    [
        "/process?status=running&status=failed",
        "/process?type=a&type=b",
        "/process?object_id=a&object_id=b",
        "/process?site_id=a&site_id=b",
        "/process?limit=5&limit=50",
        "/process?offset=0&offset=10",
        "/case?site_id=a&site_id=b",
        "/flowrun?site_id=a&site_id=b",
        "/caserun?site_id=a&site_id=b",
    ],
)
def test_a_list_filter_given_twice_is_refused(node: Node, query: str) -> None:
    name = query.split("?")[1].split("=")[0]
    message = assert_error(node.request("GET", query), 400, "invalid_query", name)
    assert message == f"{name} is given 2 times; give it once"
    assert node.reads.listed == []


# -- 3. a /stream cursor that lacks partitions -------------------------------------------


def test_a_cursor_naming_only_some_partitions_resumes_the_others_from_their_start(
    node: Node,
) -> None:
    """Not refused, on purpose: a stream opened while the node's projector was starting
    (it knew no partition yet) issues cursors naming only the partitions its events came
    from, and its reconnect must go on. A partition the cursor lacks is read from its
    first event (docs/api.md, the SSE section)."""
    r = node.request("GET", "/stream", headers={"Last-Event-ID": "2:5"})
    assert r.status_code == 200, r.text
    r = node.request("GET", "/stream", headers={"Last-Event-ID": "0:-1,1:3,2:5,3:9"})
    assert r.status_code == 200, r.text
    # A partition the ledger does not have is still refused.
    assert_error(
        node.request("GET", "/stream", headers={"Last-Event-ID": "0:1,7:5"}),
        400,
        "invalid_last_event_id",
        None,
    )
    # One object's stream takes one position, of its own partition.
    r = node.request("GET", "/process/p1/stream", headers={"Last-Event-ID": "2:5"})
    assert r.status_code != 400, r.text


# -- 4. the 202 of Prefer: respond-async ----------------------------------------------------


def test_a_command_answered_202_is_pending_as_get_command_says(node: Node) -> None:
    r = node.request("POST", "/process/p1/progress", {"progress": 5})
    assert r.status_code == 202 and r.headers["Preference-Applied"] == "respond-async"
    assert r.json()["status"] == "pending"
    document = openapi_document(node.app.routes)
    assert document["components"]["schemas"]["Accepted"]["properties"]["status"] == {
        "const": "pending"
    }


# -- 5. a log line is the Process's message -------------------------------------------------


def test_a_log_line_sets_the_process_message() -> None:
    bodies: list[c.Body] = [
        c.CreateProcess("scan"),
        c.ReportProgress(10.0, "crawling"),
        c.AppendLog("a debug line", "debug"),
    ]
    state = list(states_after(decide_all("p-log", bodies), None))[-1][1]
    assert state.message == "a debug line" and state.progress == 10.0
