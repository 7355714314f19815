"""Fuzzing the HTTP API of a running node, driven by its own ``/openapi.json``.

The requirement: every bad input gets a clear error (HTTP 4xx with a code and a
sentence), and nothing already recorded is lost or corrupted. For every operation the
document lists, each of four tests sends the fixed catalog of bad inputs of
tests/integration/api_fuzz_inputs.py and then random ones from hypothesis: bodies,
query strings, path ids, headers. Every answer must be below 500, and every 4xx must
be ``{"error": {code, message, field}}`` with a sentence and a code that docs/api.md's
error table lists under that status. Objects of every kind are recorded before the
fuzzing (in the fuzzed account and in another one, whose ids the fuzzer aims commands
at); the last test reads them back and wants them unchanged, and a new command must
still be decided and applied (no input stopped the decider or the projector).
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api import ApiDeps, create_app
from api.openapi import openapi_document
from tests.integration import api_fuzz_inputs as inputs
from tests.integration.api_fuzz_inputs import Body
from tests.integration.conftest import Stack, start_stack
from tests.integration.test_api_docs_match import TABLE
from tests.integration.test_api_review import Reads, assert_error, in_process

pytestmark = pytest.mark.integration

# The document the node serves (the first test checks that it is this one).
DOCUMENT = openapi_document(
    create_app(ApiDeps(reads=None, commands=None, positions=None)).routes  # type: ignore[arg-type]
)
# A deeper run: RUNLEDGER_FUZZ_SCALE=10 sends ten times as many random inputs.
SCALE = float(os.environ.get("RUNLEDGER_FUZZ_SCALE", "1"))
FUZZ = settings(
    max_examples=round(12 * SCALE),  # random examples per operation and test, beside the catalog
    deadline=None,
    derandomize=True,  # the same inputs on every run; the catalogs carry the named cases
    database=None,
    suppress_health_check=list(HealthCheck),
)
ACCOUNT = "fuzz"
OTHER = "fuzz-other"


@dataclass(frozen=True)
class Operation:
    """One method on one path of ``/openapi.json``."""

    method: str
    path: str
    spec: Mapping[str, Any]

    def params(self, where: str) -> list[str]:
        return [p["name"] for p in self.spec.get("parameters", []) if p["in"] == where]

    @property
    def body_schema(self) -> Mapping[str, Any] | None:
        content = self.spec.get("requestBody", {}).get("content", {})
        schema = content.get(inputs.JSON, {}).get("schema")
        return dict(schema) if schema is not None else None

    @property
    def is_command(self) -> bool:
        return self.method in ("POST", "DELETE")

    @property
    def is_stream(self) -> bool:
        ok = self.spec["responses"].get("200", {}).get("content", {})
        return "text/event-stream" in ok

    @property
    def pattern(self) -> re.Pattern[str]:
        """What the path template matches (a parameter is one segment, as Starlette's)."""
        return re.compile(re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(self.path)))

    def url(self, ids: Mapping[str, str]) -> str:
        path = self.path
        for name, value in ids.items():
            path = path.replace("{" + name + "}", value)
        return path

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


OPERATIONS = [
    Operation(method.upper(), path, spec)
    for path, methods in DOCUMENT["paths"].items()
    for method, spec in methods.items()
]
COMMANDS = [op for op in OPERATIONS if op.is_command]
WITH_PATH_IDS = [op for op in OPERATIONS if op.params("path")]


# -- the recorded world ----------------------------------------------------------------


@dataclass
class World:
    """Objects recorded before the fuzzing (ids by path parameter): ``targets`` the
    fuzzer may change, ``victims`` the ``DELETE`` operations aim at (so the targets live
    on), ``others`` of another account (commands on them must be 404), ``sentinels``
    nothing aims at; ``snapshots`` what reads of the sentinels and the others answered
    (URL -> account, JSON) for the final comparison."""

    targets: dict[str, str]
    victims: dict[str, str]
    others: dict[str, str]
    sentinels: dict[str, str]
    positions: list[str]
    snapshots: dict[str, tuple[str, Any]] = field(default_factory=dict)

    def pool(self, name: str, method: str = "GET") -> list[str]:
        """Ids worth putting in path parameter ``name`` of a ``method``: a target (a
        victim for DELETE), another account's, and one nobody has."""
        if name == "step_id":
            return ["a", "b", "nope"]
        if name == "hash":
            return ["0" * 64]
        first = self.victims if method == "DELETE" else self.targets
        found = [ids[name] for ids in (first, self.others) if name in ids]
        return [*found, "00000000-0000-0000-0000-000000000000"]

    def body_ids(self) -> list[str]:
        """Ids a body may name (``site_id``, ``case_id``...): every recorded one."""
        return [*self.targets.values(), *self.sentinels.values(), *self.others.values()]


SNAPSHOTS = [
    "/site/{site_id}",
    "/flow/{flow_id}",
    "/case/{case_id}",
    "/process/{process_id}",
    "/process/{process_id}/steps",
    "/process/{process_id}/events?limit=1000",
    "/flowrun/{flowrun_id}",
    "/flowrun/{flowrun_id}/runstatus",
    "/caserun/{caserun_id}",
]


ASYNC = {"Prefer": "respond-async"}


def decided(client: httpx.Client, status_url: str) -> None:
    """Wait until the command answered 202 at ``status_url`` is decided (accepted), so
    that nothing recorded before the fuzzing changes during it."""
    deadline = time.monotonic() + 15
    while (status := client.get(status_url).json()["status"]) == "pending":
        assert time.monotonic() < deadline, f"{status_url} was not decided"
        time.sleep(0.05)
    assert status == "accepted", status


def record_objects(client: httpx.Client, positions: list[str]) -> dict[str, str]:
    """A Site, Flow, Case, running Process (two steps, one done), FlowRun and CaseRun;
    their ids by path parameter. Each write's position goes into ``positions``."""
    wait = {"wait": "true"}

    def post(path: str, body: Any, status: int) -> dict[str, Any]:
        r = client.post(path, json=body, params=wait)
        assert r.status_code == status, r.text
        positions.append(r.headers["Ledger-Position"])
        return dict(r.json())

    site = post("/site", {"site_url": "https://example.com"}, 201)["id"]
    flow = post("/flow", {"name": "f", "nodes": [{"id": "1", "data": {"task_type": "wait"}}]}, 201)
    step = {"action": {"type": "navigate", "path": "/"}}
    case = post("/case", {"site_id": site, "name": "c", "steps": [step]}, 201)["id"]
    steps = [{"id": "a", "order": 1}, {"id": "b", "order": 2}]
    process = post("/process", {"type": "scan", "info": {"k": "é"}, "steps": steps}, 201)["id"]
    post(f"/process/{process}/progress", {"progress": 40, "message": "half"}, 200)
    post(f"/process/{process}/steps/a/start", None, 200)
    post(f"/process/{process}/steps/a/complete", {"message": "done"}, 200)
    flowrun = post("/flowrun", {"site_id": site, "flow_id": flow["id"]}, 201)["id"]
    caserun = post("/caserun", {"site_id": site, "case_id": case}, 201)["id"]
    r = client.post(f"/process/{process}/log", json={"message": "m"}, headers=ASYNC)
    assert r.status_code == 202, r.text
    decided(client, r.json()["status_url"])
    return {
        "site_id": site,
        "flow_id": flow["id"],
        "case_id": case,
        "process_id": process,
        "flowrun_id": flowrun,
        "caserun_id": caserun,
        "command_id": r.json()["command_id"],
    }


def snapshot(client: httpx.Client, ids: Mapping[str, str]) -> dict[str, Any]:
    """What each read of :data:`SNAPSHOTS` answers now for ``ids``."""
    found = {}
    for template in SNAPSHOTS:
        url = Operation("GET", template, {}).url(ids)
        r = client.get(url, params={"wait": "true"} if "?" not in url else None)
        assert r.status_code == 200, (url, r.text)
        found[url] = r.json()
    return found


@pytest.fixture(scope="module")
def fuzz_stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack whose SSE streams heartbeat every 0.2 s and close after 1 s, so reading
    one a little never blocks the fuzzer for long."""
    env = {"RUNLEDGER_SSE_WINDOW_S": "1", "RUNLEDGER_SSE_HEARTBEAT_S": "0.2"}
    running = start_stack(kafka_bootstrap, tmp_path_factory.mktemp("fuzz"), env)
    try:
        yield running
    finally:
        running.stop()


@dataclass
class Fuzzer:
    """Sends probes to one node as account :data:`ACCOUNT` and checks each answer."""

    stack: Stack
    client: httpx.Client
    world: World
    statuses: Counter[int] = field(default_factory=Counter)

    def send(
        self,
        op: Operation,
        *,
        ids: Mapping[str, str] | None = None,
        query: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, bytes] | None = None,
        body: Body | None = None,
    ) -> httpx.Response:
        """``op`` with these parts (``ids`` percent-encoded already); anything left out
        is a usable value, so that the fuzzed part is what the node judges."""
        chosen = {n: self.world.pool(n, op.method)[0] for n in op.params("path")}
        chosen.update(ids or {})
        url = op.url(chosen)
        if query:
            url += "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query)
        if body is None and op.is_command:
            body = Body(inputs.encode(usable_body(op, self.world)))
        sent: dict[str, bytes] = {**(body.headers() if body else {}), **(headers or {})}
        timeout = httpx.Timeout(30, read=5) if op.is_stream else httpx.Timeout(30)
        request = self.client.build_request(
            op.method,
            url,
            headers=[(name.encode(), value) for name, value in sent.items()],
            content=body.content if body else None,
            timeout=timeout,
        )
        r = self.client.send(request, stream=True)
        try:
            if op.is_stream and r.status_code == 200:
                first_message(r)
            else:
                r.read()
        finally:
            r.close()
        self.statuses[r.status_code] += 1
        check_answer(op, r, sent)
        return r


def first_message(r: httpx.Response) -> None:
    """Read a stream up to its first message or heartbeat (at most 0.2 s on this
    stack), check it is Server-Sent Events, and stop."""
    for line in r.iter_lines():
        if line == "":
            return
        name = line.partition(":")[0]
        assert name in ("", "id", "event", "data"), f"not an SSE line: {line!r}"


def usable_body(op: Operation, world: World) -> dict[str, Any]:
    """A body ``op`` accepts, naming the fuzz account's targets and using most of the
    fields the operation takes (the body fuzzer changes one value of it at a time)."""
    t = world.targets
    flow = {
        "name": "f",
        "nodes": [
            {
                "id": "1",
                "data": {
                    "task_type": "scan",
                    "uri": "/",
                    "threshold": 95,
                    "type": ["html", "vrt"],
                    "configs": {"timeout": 30},
                },
            },
            {"id": "2", "data": {"task_type": "case", "case_id": t["case_id"]}},
            {
                "id": "3",
                "data": {
                    "task_type": "webhook",
                    "uri": "https://hooks.example.com/x",
                    "request_type": "POST",
                    "headers": {"a": "b"},
                    "payload": {},
                },
            },
            {
                "id": "4",
                "data": {"task_type": "email", "email": "a@example.com", "start_if": "failed"},
            },
            {
                "id": "5",
                "data": {
                    "task_type": "wait",
                    "configs": {"min_wait_time": 1},
                    "conditions": [{"parent": "1", "status": "passed"}],
                },
            },
        ],
        "edges": [
            {"id": "e1", "source": "1", "target": "2"},
            {"id": "e2", "source": "2", "target": "4"},
            {"id": "e3", "source": "1", "target": "5"},
        ],
        "configs": {"end_on_fail": False},
    }
    element = {"selector": "#q", "xpath": "//input"}
    case_steps = [
        {"action": {"type": "navigate", "path": "/"}},
        {"action": {"type": "click", "element": element}},
        {
            "action": {"type": "change", "element": element, "value": "x"},
            "assertion": {"type": "match", "element": element, "value": "a+", "operator": "regex"},
        },
        {"action": {"type": "keyDown", "key": "Control+A"}},
        {
            "action": {"type": "wait", "value": "10"},
            "assertion": {"type": "visible", "element": element},
        },
    ]
    process: dict[str, Any] = {
        "type": "scan",
        "site": t["site_id"],
        "info": {"a": [1, {"b": "c"}]},
        "steps": [{"id": "s1", "name": "S", "order": 1, "enabled": True}, {"id": "s2"}],
    }
    usable: dict[str, dict[str, Any]] = {
        "/process": process,
        "/site": {"site_url": "https://example.com/path?q=1"},
        "/flow": flow,
        "/case": {"site_id": t["site_id"], "name": "c", "steps": case_steps},
        "/case/generate": {"site_id": t["site_id"], "max_layers": 3, "prompt": "p"},
        "/flowrun": {
            "site_id": t["site_id"],
            "flow_id": t["flow_id"],
            "configs": {"end_on_fail": True},
        },
        "/caserun": {"site_id": t["site_id"], "case_id": t["case_id"]},
        "/process/{process_id}/progress": {"progress": 5, "message": "m"},
        "/process/{process_id}/log": {"message": "m", "level": "info"},
        "/process/{process_id}/review": {"result_summary": {"a": 1}},
        "/process/{process_id}/complete": {"object_id": "o", "result_summary": {"a": 1}},
        "/process/{process_id}/fail": {"exception": "x"},
        "/process/{process_id}/cancel": {"reason": "r"},
        "/process/{process_id}/steps/{step_id}/complete": {"message": "m"},
        "/process/{process_id}/steps/{step_id}/fail": {"exception": "x"},
        "/flowrun/{flowrun_id}/cancel": {"reason": "r"},
        "/caserun/{caserun_id}/cancel": {"reason": "r"},
    }
    return usable.get(op.path, {})


def documented_statuses(method: str, path: str) -> set[str]:
    """The statuses ``/openapi.json`` lists for ``method`` on ``path`` as the node sees
    it (percent-decoded; the client also folds ``.`` and ``..`` segments, so a fuzzed
    id may land on another operation): 405 when only other methods have the path, 404
    when nothing does."""
    matching = [op for op in OPERATIONS if op.pattern.fullmatch(path)]
    same = [op for op in matching if op.method == method]
    if same:
        return {status for op in same for status in op.spec["responses"]}
    return {"405"} if matching else {"404"}


def check_answer(op: Operation, r: httpx.Response, sent: Mapping[str, bytes]) -> None:
    """The requirement, for one answer: below 500; a 4xx is the error shape with a code
    docs/api.md lists under its status and a sentence; a status /openapi.json lists."""
    where = f"{r.request.method} {r.request.url} {dict(sent)!r}"
    assert r.status_code < 500, f"{where} answered {r.status_code}: {r.text[:500]}"
    documented = documented_statuses(r.request.method, r.request.url.path)
    assert str(r.status_code) in documented, (
        f"{where} answered {r.status_code}, /openapi.json lists {sorted(documented)} for "
        f"it: {r.text[:300]}"
    )
    if r.status_code == 202:
        assert "Prefer" in sent, f"{where}: 202 without Prefer: the decider did not answer"
    if r.status_code < 400:
        return
    assert r.headers.get("content-type", "").startswith(inputs.JSON), (where, r.text[:300])
    body = r.json()
    assert set(body) == {"error"}, (where, body)
    error = body["error"]
    assert set(error) == {"code", "message", "field"}, (where, body)
    assert TABLE.get(error["code"]) == r.status_code, (
        f"{where}: {r.status_code} {error['code']!r}, docs/api.md lists it under "
        f"{TABLE.get(error['code'])}"
    )
    message = error["message"]
    assert isinstance(message, str) and message.strip(), (where, body)
    assert not any(leak in message for leak in LEAKS), f"{where}: not a sentence: {body}"
    if error["code"] in NAMES_ITS_FIELD:  # docs/api.md: "`field` names it"
        assert isinstance(error["field"], str) and error["field"], (where, body)
    else:
        assert error["field"] is None or isinstance(error["field"], str), (where, body)


# What a Python exception's text looks like, not a sentence written for the client.
LEAKS = ("Traceback", "NoneType", "object has no attribute", "KeyError", "TypeError")
NAMES_ITS_FIELD = {"invalid_field", "invalid_query"}


@pytest.fixture(scope="module")
def fuzzer(fuzz_stack: Stack) -> Iterator[Fuzzer]:
    client = fuzz_stack.authenticated(ACCOUNT)
    other = fuzz_stack.authenticated(OTHER)
    positions: list[str] = []
    world = World(
        targets=record_objects(client, positions),
        victims=record_objects(client, positions),
        others=record_objects(other, positions),
        sentinels=record_objects(client, positions),
        positions=positions,
    )
    for account, who, ids in ((ACCOUNT, client, world.sentinels), (OTHER, other, world.others)):
        world.snapshots.update({url: (account, v) for url, v in snapshot(who, ids).items()})
    started = time.monotonic()
    fuzz = Fuzzer(fuzz_stack, client, world)
    yield fuzz
    print(
        f"\nfuzzed {sum(fuzz.statuses.values())} requests in "
        f"{time.monotonic() - started:.1f} s: {dict(sorted(fuzz.statuses.items()))}"
    )


def run(test: Any, examples: int | None = None) -> None:
    """Run a hypothesis test now, with the fuzz settings (and ``examples`` if given)."""
    chosen = FUZZ if examples is None else settings(FUZZ, max_examples=round(examples * SCALE))
    chosen(test)()


# -- the tests -------------------------------------------------------------------------


def test_the_served_document_is_the_one_fuzzed(fuzzer: Fuzzer) -> None:
    r = httpx.get(fuzzer.stack.url + "/openapi.json")
    assert r.status_code == 200
    assert r.json() == DOCUMENT


@pytest.mark.parametrize("op", COMMANDS, ids=str)
def test_bodies(fuzzer: Fuzzer, op: Operation) -> None:
    for body in inputs.BODY_CATALOG:
        fuzzer.send(op, body=body)
    shaped = inputs.SchemaFuzz(
        DOCUMENT["components"]["schemas"], fuzzer.world.body_ids(), FIELD_VALUES
    )

    @given(body=shaped.bodies(op.body_schema, usable_body(op, fuzzer.world)))
    def one(body: Body) -> None:
        fuzzer.send(op, body=body)

    run(one, examples=25)


FIELD_VALUES: dict[str, list[Any]] = {
    "site_url": [
        "https://example.com",
        "javascript:alert(1)",
        "https://user:pass@example.com",
        "http://[::1",
        "http://" + "a" * 300 + ".com",
        "http:// example.com",
    ],
    "uri": ["https://hooks.example.com/x", "ftp://x", "/relative", "http://[::1"],
    "task_type": ["scan", "case", "webhook", "slack", "email", "wait", "Scan"],
    "type": ["scan", "case.generate", "navigate", "keyDown", "match", ""],
    "key": ["Enter", "Control+A", "Control++", "+", "NoSuchKey", "é"],
    "value": ["300001", "-1", "(unclosed", "[", "5"],
    "operator": ["regex", "equals", "glob"],
    "email": ["a@example.com", "a@b, c@d", "<a@b>", "a\n@b"],
    "progress": [-1, 0, 100, 100.0001, 1e308, float("nan")],
    "max_layers": [0, 1, 20, 21, 10.5, True],
    "threshold": [-1, 100, 101, float("nan")],
    "request_type": ["GET", "TRACE", ""],
    "start_if": ["passed", "failed", "maybe"],
}


@pytest.mark.parametrize("op", OPERATIONS, ids=str)
def test_queries(fuzzer: Fuzzer, op: Operation) -> None:
    names = op.params("query")
    positions = fuzzer.world.positions
    for query in inputs.query_catalog(names, positions):
        fuzzer.send(op, query=query)

    @given(query=inputs.queries(names, positions))
    def one(query: list[tuple[str, str]]) -> None:
        fuzzer.send(op, query=query)

    run(one)


@pytest.mark.parametrize("op", WITH_PATH_IDS, ids=str)
def test_path_ids(fuzzer: Fuzzer, op: Operation) -> None:
    names = op.params("path")
    for odd in inputs.PATH_ID_CATALOG:
        fuzzer.send(op, ids=dict.fromkeys(names, odd))

    @given(
        ids=st.fixed_dictionaries(
            {n: inputs.path_ids(fuzzer.world.pool(n, op.method)) for n in names}
        )
    )
    def one(ids: dict[str, str]) -> None:
        fuzzer.send(op, ids=ids)

    # A stream's miss asks Kafka for its end offsets (a third of a second) before
    # its 404: fewer random ids there, the catalog covers the named cases.
    run(one, examples=3 if op.is_stream else None)


@pytest.mark.parametrize("op", OPERATIONS, ids=str)
def test_headers(fuzzer: Fuzzer, op: Operation) -> None:
    names = [*op.params("header")]
    if op.is_command:
        names.append("X-Correlation-Id")
    catalog = inputs.headers_catalog(names)
    catalog += inputs.authorization_catalog(fuzzer.stack.token(ACCOUNT))
    for headers in catalog:
        fuzzer.send(op, headers=headers)
    if "token" in op.params("query"):  # a stream: the token may come as ?token=
        token = fuzzer.stack.token(ACCOUNT)
        for value in ("", token, token + "x", "Bearer " + token, fuzzer.stack.token(OTHER)):
            fuzzer.send(op, query=[("token", value)], headers={"Authorization": b""})

    @given(
        headers=st.dictionaries(st.sampled_from([*names, "Authorization"]), inputs.header_values())
    )
    def one(headers: dict[str, bytes]) -> None:
        fuzzer.send(op, headers=headers)

    run(one)


def test_nothing_recorded_was_lost_or_changed(fuzzer: Fuzzer) -> None:
    """Run last: the objects recorded before the fuzzing read back as they were, and the
    node still decides and applies a new command."""
    clients = {ACCOUNT: fuzzer.client, OTHER: fuzzer.stack.authenticated(OTHER)}
    for url, (who, before) in fuzzer.world.snapshots.items():
        r = clients[who].get(url)
        assert r.status_code == 200, (url, r.text)
        assert r.json() == before, url
    r = fuzzer.client.post("/process", json={"type": "scan"}, params={"wait": "true"})
    assert r.status_code == 201, r.text
    assert r.headers["Ledger-Applied"] == "true"
    assert fuzzer.client.get(f"/process/{r.json()['id']}").status_code == 200
    # and the projector set no event aside as unreadable
    metrics = httpx.get(fuzzer.stack.url + "/metrics").text
    dead_letters = "runledger_projector_dead_letters_total"
    dead = [m for m in metrics.splitlines() if m.startswith(dead_letters)]
    assert dead and all(m.endswith("} 0") for m in dead), metrics


# -- what the fuzzer found, pinned (in-process, over test_api_review's fake reads) ----------


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/process/%2F"), ("DELETE", "/process/%2F"), ("GET", "/site/"), ("GET", "/process/")],
)
def test_a_path_that_misses_by_a_slash_is_404_not_a_redirect(method: str, path: str) -> None:
    """Starlette's trailing-slash redirect sent ``GET /process/%2F`` (the id "/") to
    the list of Processes with a bare 307, and ``DELETE`` on it to a 405 on /process."""
    r = in_process(Reads()).request(method, path, follow_redirects=False)
    assert_error(r, 404, "not_found")
    assert path.replace("%2F", "/") in r.json()["error"]["message"]


def test_the_dashboard_page_with_a_slash_still_redirects_to_it() -> None:
    r = in_process(Reads()).get("/ui/", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (307, "/ui")


LONE = inputs.LONE_SURROGATE
CASE_NODE = {"id": "1", "data": {"task_type": "case", "case_id": LONE}}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/case/generate", {"site_id": LONE}, "site_id"),
        (
            "/case",
            {"site_id": LONE, "name": "c", "steps": [{"action": {"type": "wait"}}]},
            "site_id",
        ),
        ("/flowrun", {"site_id": "\udfff", "flow_id": "f"}, "site_id"),
        ("/caserun", {"site_id": "SITE", "case_id": f"a{LONE}b"}, "case_id"),
        ("/flowrun", {"site_id": "SITE", "flow_id": LONE}, "flow_id"),
        ("/flow", {"name": "f", "nodes": [CASE_NODE]}, "nodes[0].data.case_id"),
    ],
    ids=lambda v: v if isinstance(v, str) and v.startswith("/") else "",
)
def test_an_id_with_a_lone_surrogate_is_a_422_not_a_500(
    fuzzer: Fuzzer, path: str, body: dict[str, Any], field: str
) -> None:
    """A lone surrogate is valid JSON text (``"\\ud800"``) but not UTF-8: the read model
    refused it as a query parameter and the node answered 500."""
    if body.get("site_id") == "SITE":
        body = {**body, "site_id": fuzzer.world.sentinels["site_id"]}
    raw = inputs.encode(body)  # the surrogate as its JSON escape
    r = fuzzer.client.post(path, content=raw, headers={"Content-Type": inputs.JSON})
    check_answer(Operation("POST", path, DOCUMENT["paths"][path]["post"]), r, {})
    assert_error(r, 422, "invalid_field", field)


@pytest.mark.parametrize(
    ("noun", "last"),
    [
        ("", "0:1,99999999999999999999999:1"),
        ("", "7:0"),
        ("process", "7:0"),
        ("process", "99999999999999999999999:99999999999999999999999"),
        ("flowrun", "2:0"),
    ],
)
def test_a_last_event_id_of_a_partition_the_ledger_lacks_is_400(
    fuzzer: Fuzzer, noun: str, last: str
) -> None:
    """A Last-Event-ID naming a partition the ledger does not have was taken: the
    account stream echoed it in every id for good, an object stream resumed after
    everything, silently. The node never issues one (its ledger has 2 partitions)."""
    path = f"/{noun}/{fuzzer.world.sentinels[noun + '_id']}/stream" if noun else "/stream"
    r = fuzzer.client.get(path, headers={"Last-Event-ID": last})
    assert_error(r, 400, "invalid_last_event_id")
    assert "partition" in r.json()["error"]["message"]
    ok = "0:-1,1:-1"
    if noun:  # a position of the object itself (one on another partition is a 400 too)
        with fuzzer.client.stream("GET", path) as r:
            ok = next(line[4:] for line in r.iter_lines() if line.startswith("id: "))
    with fuzzer.client.stream("GET", path, headers={"Last-Event-ID": ok}) as r:
        assert r.status_code == 200
