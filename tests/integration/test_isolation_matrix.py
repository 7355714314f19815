"""Account isolation and authentication across every route of the API, on the real
broker, decider and node.

The routes are taken from the application itself (``api.app.create_app``), so a route
added later is covered at once: :data:`ROUTES` classifies each one, and a route it does
not classify fails :func:`test_every_route_of_the_app_is_classified`. For every route:

- no token, an unknown token, an empty ``Bearer`` and a revoked token answer ``401``
  with the error body (``code`` and a sentence) and ``WWW-Authenticate``, except the
  routes docs/api.md names public (``/health``, ``/metrics``, ``/openapi.json`` and the
  dashboard's ``/ui`` files), which answer whatever the header says;
- account B's token on account A's object answers what B gets for an object that does
  not exist (``404 not_found``, the same message with the id swapped; ``422`` naming
  the field when the id is in a create's body), waiting or with
  ``Prefer: respond-async``; lists, their filters naming A's ids and the ``next``
  links of A's pages give B only B's objects; streams never deliver A's events to B;
- and B's attempts leave A's events in the ledger as they were (read from Kafka).

Streams are bounded: the node closes each after a 4 s window
(``RUNLEDGER_SSE_WINDOW_S``), every read here has a timeout, and a stream read for
its backlog only is closed at its first heartbeat (every 0.5 s when nothing comes).

The routes and their kinds are in tests/integration/isolation_routes.py, the two
accounts' objects and the request helpers in tests/integration/isolation_world.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from runledger.tokens import issue_token, revoke_token
from schemas import default_codec
from streams import serde
from streams.domain.events import Event
from streams.topics import Topics
from tests.integration.conftest import Stack, start_stack
from tests.integration.isolation_routes import (
    ACCOUNT_STREAM,
    APP_ROUTES,
    COMMAND_STATUS,
    CONTENT,
    CREATE,
    CREATE_REF,
    IDS,
    LIST,
    OBJECT,
    PUBLIC,
    ROUTES,
    STREAM,
    spec_of,
)
from tests.integration.isolation_world import (
    ASYNC,
    JUNK_QUERY,
    WINDOW_S,
    Account,
    World,
    command,
    error_of,
    fill,
    messages,
    ok,
    populate,
    public_ok,
    refused_401,
    send,
    status_once,
)
from tests.integration.kafka_read import read_topic

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def iso_stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {"RUNLEDGER_SSE_WINDOW_S": str(WINDOW_S), "RUNLEDGER_SSE_HEARTBEAT_S": "0.5"}
    running = start_stack(kafka_bootstrap, tmp_path_factory.mktemp("iso"), env)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def world(iso_stack: Stack) -> World:
    run = uuid.uuid4().hex[:6]
    accounts = []
    for tag in ("a", "b"):
        name = f"iso-{tag}-{run}"
        client = iso_stack.authenticated(name)
        accounts.append(Account(name, client, iso_stack.token(name)))
    a, b = accounts
    populate(a, "a", iso_stack)
    populate(b, "b", iso_stack)
    revoked = asyncio.run(issue_token(iso_stack.settings, a.name, "revoked"))
    assert status_once(iso_stack, revoked, 200) == 200
    asyncio.run(revoke_token(iso_stack.settings, a.name, revoked))
    assert status_once(iso_stack, revoked, 401) == 401
    return World(iso_stack, a, b, revoked, "iso.a", "obj-a")


# -- the matrix ------------------------------------------------------------------------


def test_every_route_of_the_app_is_classified() -> None:
    unclassified = [f"{m} {p}" for m, p in APP_ROUTES if (m, p) not in ROUTES]
    stale = [f"{m} {p}" for m, p in ROUTES if (m, p) not in APP_ROUTES]
    assert not unclassified, f"classify these routes in ROUTES: {unclassified}"
    assert not stale, f"ROUTES names routes the app no longer has: {stale}"


def test_the_node_serves_the_routes_enumerated_here(world: World) -> None:
    """The node's OpenAPI document lists only routes of the enumerated app (the node
    runs ``create_app``), and the public list is exactly what docs/api.md names."""
    doc = ok(httpx.get(world.stack.url + "/openapi.json", timeout=10))
    served = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert served and served <= set(APP_ROUTES), served - set(APP_ROUTES)
    public = {p for (_, p), s in ROUTES.items() if s.kind == PUBLIC}
    assert public == {"/health", "/metrics", "/openapi.json", "/ui", "/ui/", "/ui/{asset}"}


@pytest.mark.parametrize(("method", "path"), APP_ROUTES, ids=IDS)
def test_a_request_without_a_valid_token_is_refused(world: World, method: str, path: str) -> None:
    """No token, an empty ``Bearer``, an unknown and a revoked token: 401 on every route
    but the public ones (which answer the same whatever the header); HEAD too. Only the
    streams take ``?token=``, and refuse a bad one the same way."""
    spec = spec_of(method, path)
    params = world.params(world.a)
    attempts = [
        ({}, "unauthenticated"),
        ({"Authorization": "Bearer"}, "unauthenticated"),  # a scheme, no token
        ({"Authorization": "rl_not_a_token_of_anyone"}, "invalid_token"),
        ({"Authorization": f"Bearer {world.revoked}"}, "invalid_token"),
    ]
    for headers, code in attempts:
        r = send(world, method, path, params, headers=headers)
        if spec.kind == PUBLIC:
            public_ok(r, path)
        else:
            refused_401(r, code)
        if method == "GET":
            head = httpx.request("HEAD", r.request.url, headers=headers, timeout=10)
            want = r.status_code
            assert head.status_code == want, f"HEAD {path}: {head.status_code}"
    streams = spec.kind in (STREAM, ACCOUNT_STREAM)
    for token in ("rl_not_a_token_of_anyone", world.revoked):
        r = send(world, method, path, params, query={"token": token})
        if spec.kind == PUBLIC:
            public_ok(r, path)
        elif streams:
            refused_401(r, "invalid_token")
        else:  # the query is not read at all: no token was sent
            refused_401(r, "unauthenticated")
    if spec.kind != PUBLIC:
        # Nothing of a request is read before its token: a malformed query, body or
        # Last-Event-ID without a token is a 401, not a 400 about the input.
        junk = {"Content-Type": "application/json", "Last-Event-ID": "junk"}
        r = send(world, method, path, params, headers=junk, query=JUNK_QUERY, content=b"{no")
        refused_401(r, "unauthenticated")
    if not streams and spec.kind != PUBLIC:
        # A valid token in the query opens nothing but a stream (docs/api.md).
        r = send(world, method, path, params, query={"token": world.a.token})
        refused_401(r, "unauthenticated")


def _normal(error: dict[str, Any], *ids: str) -> dict[str, Any]:
    """``error`` with the given ids replaced by ``<id>``, to compare two refusals."""
    text = json.dumps(error)
    for i in ids:
        text = text.replace(i, "<id>")
    found: dict[str, Any] = json.loads(text)
    return found


def _first_param(path: str) -> str:
    found = re.search(r"\{(\w+)\}", path)
    assert found is not None
    return found.group(1)


def _object_probe(world: World, method: str, path: str) -> None:
    """B on A's object answers what B gets for an id nobody has: 404 ``not_found``,
    the same error but for the id; also on ``?as_of=``, ``?wait=``, and with
    ``Prefer: respond-async``, whose command is then rejected as ``not_found``.

    A reads the object first (and, for a read, the route itself: 200), so whatever the
    node keeps of it in memory (its cache of committed states) is warm when B asks."""
    spec = spec_of(method, path)
    b = {"Authorization": world.b.token}
    param = _first_param(path)
    theirs = world.params(world.a)
    nobody = {**theirs, param: str(uuid.uuid4())}
    a = {"Authorization": world.a.token}
    one = path[: path.index("}") + 1]  # the object itself: /process/{process_id}
    ok(send(world, "GET", one, theirs, headers=a))
    queries: list[dict[str, str] | None] = [None]
    if method == "GET":
        queries.append({"wait": "true"})
        if spec.as_of:
            queries.append({"as_of": "2100-01-01T00:00:00Z"})
    for query in queries:
        if method == "GET":
            ok(send(world, method, path, theirs, headers=a, query=query))
        mine = error_of(send(world, method, path, theirs, headers=b, query=query), 404, "not_found")
        none = error_of(send(world, method, path, nobody, headers=b, query=query), 404, "not_found")
        assert _normal(mine, theirs[param]) == _normal(none, nobody[param]), (query, mine, none)
    if method == "GET":
        return
    r = send(world, method, path, theirs, headers={**b, **ASYNC})
    pending = ok(r, 202)
    assert pending["aggregate_id"] == theirs[param] and pending["status"] == "pending"
    status = _decided(world.b.client, pending["command_id"])
    assert status["status"] == "rejected" and status["http_status"] == 404, status
    assert status["error"]["code"] == "not_found", status
    # A never sees B's command.
    seen = world.a.client.get(f"/command/{pending['command_id']}")
    error_of(seen, 404, "not_found")


def _decided(client: httpx.Client, command_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while True:
        status = ok(client.get(f"/command/{command_id}"))
        if status["status"] != "pending" or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def _ids_of(page: dict[str, Any]) -> set[str]:
    return {item["id"] for item in page["results"]}


def _list_probe(world: World, path: str) -> None:
    """B's list holds only B's objects: plainly, filtered by A's ids, and through the
    ``next`` and ``previous`` links of A's pages (offsets: B gets its own page)."""
    a, b = world.a, world.b
    mine = _ids_of(ok(b.client.get(path, params={"limit": 1000, "wait": "true"})))
    assert mine and not mine & a.all_ids(), path
    site = a.one("site_id")
    filters: list[dict[str, str]] = []
    if path in ("/case", "/flowrun", "/caserun", "/process"):
        filters.append({"site_id": site})
    if path == "/process":
        filters += [
            {"site": site},
            {"type": world.a_type},
            {"object_id": world.a_object_id},
            {"type": world.a_type, "status": "completed"},
        ]
    for query in filters:
        page = ok(b.client.get(path, params=query))
        assert page["count"] == 0 and page["results"] == [], (path, query, page)
    first = ok(a.client.get(path, params={"limit": 1}))
    assert first["next"] is not None, f"A needs a second page of {path}"
    second = ok(a.client.get(first["next"]))
    for link in (first["next"], second["previous"]):
        page = ok(b.client.get(link))
        assert page["results"] and _ids_of(page) <= mine, (link, page)
        assert page["count"] == len(mine)


def _create_ref_probe(world: World, method: str, path: str) -> None:
    """A create naming A's object (each reference in turn, the others B's own) is the
    422 B gets for an id nobody has, on the same field."""
    spec = spec_of(method, path)
    b = {"Authorization": world.b.token}
    own = world.params(world.b)
    for param, field_name in spec.refs.items():
        theirs = {**own, param: world.a.one(param)}
        nobody = {**own, param: str(uuid.uuid4())}
        mine = error_of(send(world, method, path, theirs, headers=b), 422, "invalid_field")
        none = error_of(send(world, method, path, nobody, headers=b), 422, "invalid_field")
        assert mine["field"] == field_name, mine
        assert _normal(mine, theirs[param]) == _normal(none, nobody[param])
        # A retry (same Idempotency-Key) of B's own create, now naming A's object, is
        # answered as the first was: it never makes an object that names A's.
        key = {**b, "Idempotency-Key": f"iso-retry-{uuid.uuid4()}"}
        first = send(world, method, path, own, headers=key)
        again = send(world, method, path, theirs, headers=key)
        assert first.status_code == 201, first.text
        if again.status_code == 201:
            assert again.json()["id"] == first.json()["id"], again.text
            assert world.a.one(param) not in again.text, again.text
        else:
            error_of(again, 422, "invalid_field")


def _create_probe(world: World, method: str, path: str) -> None:
    """A create with the Idempotency-Key A used makes B's own object (not A's, not a
    replay of A's), which A cannot read."""
    b = {"Authorization": world.b.token, "Idempotency-Key": "iso-probe-key"}
    a = {"Authorization": world.a.token, "Idempotency-Key": "iso-probe-key"}
    body = spec_of(method, path).body
    theirs = send(world, method, path, {}, headers=a, body=body)
    mine = send(world, method, path, {}, headers=b, body=body)
    made_a, made_b = ok(theirs, 201), ok(mine, 201)
    assert made_a["id"] != made_b["id"]
    assert "idempotent-replayed" not in mine.headers
    got = world.a.client.get(f"{path}/{made_b['id']}", params={"wait": "true"})
    error_of(got, 404, "not_found")


def _stream_probe(world: World, path: str) -> None:
    """B's stream of A's object is 404 as for an id nobody has, also when A's own
    stream of it ran first (the node then keeps its states, by account) and B resumes
    from A's last event id, header or ``?last_event_id=``, and with ``?token=``."""
    param = _first_param(path)
    theirs = world.params(world.a)
    url = world.stack.url + fill(path, theirs)
    with httpx.Client(timeout=WINDOW_S + 15) as c:
        sent = messages(c, url, {"Authorization": world.a.token}, backlog_only=True)
    assert sent and "id" in sent[-1], f"A's own stream of {path} sent {sent}"
    last = sent[-1]["id"]
    nobody_id = str(uuid.uuid4())
    nobody = world.stack.url + fill(path, {**theirs, param: nobody_id})
    b = {"Authorization": world.b.token}
    none = error_of(httpx.get(nobody, headers=b, timeout=15), 404, "not_found")
    for headers, query in (
        (b, {}),
        ({**b, "Last-Event-ID": last}, {}),
        (b, {"last_event_id": last}),
        ({}, {"token": world.b.token, "last_event_id": last}),
    ):
        mine = error_of(httpx.get(url, headers=headers, params=query, timeout=15), 404, "not_found")
        assert _normal(mine, theirs[param]) == _normal(none, nobody_id), (headers, mine)


@pytest.mark.parametrize(("method", "path"), APP_ROUTES, ids=IDS)
def test_account_b_never_reaches_account_a(world: World, method: str, path: str) -> None:
    spec = spec_of(method, path)
    b = {"Authorization": world.b.token}
    if spec.kind == PUBLIC:
        r = send(world, method, path, world.params(world.a), headers=b)
        public_ok(r, path)
        text = r.text
        for secret in (world.a.name, *world.a.all_ids()):
            assert secret not in text, f"{path} shows {secret}"
    elif spec.kind == OBJECT:
        _object_probe(world, method, path)
    elif spec.kind == LIST:
        _list_probe(world, path)
    elif spec.kind == CREATE_REF:
        _create_ref_probe(world, method, path)
    elif spec.kind == CREATE:
        _create_probe(world, method, path)
    elif spec.kind == STREAM:
        _stream_probe(world, path)
    elif spec.kind == COMMAND_STATUS:
        theirs = world.a.one("command_id")
        assert ok(world.a.client.get(f"/command/{theirs}"))["command_id"] == theirs
        mine = error_of(world.b.client.get(f"/command/{theirs}"), 404, "not_found")
        nobody = str(uuid.uuid4())
        none = error_of(world.b.client.get(f"/command/{nobody}"), 404, "not_found")
        assert _normal(mine, theirs) == _normal(none, nobody)
    elif spec.kind == CONTENT:
        # docs/api.md: "any valid token may read a hash it knows" (a hash names content,
        # not an owner); a hash nobody stored is 404 for everyone.
        digest = world.a.one("hash")
        assert world.b.client.get(f"/artifact/{digest}").content == b"a's screenshot"
        error_of(world.b.client.get(f"/artifact/{'0' * 64}"), 404, "not_found")
    elif spec.kind == ACCOUNT_STREAM:
        _account_stream_probe(world)
    else:
        pytest.fail(f"no check for kind {spec.kind!r}")


def _aggregates(sent: list[dict[str, str]]) -> set[str]:
    """The ids of the objects whose events ``sent`` carries."""
    return {json.loads(m["data"])["state"]["id"] for m in sent if "data" in m}


def _account_stream_probe(world: World) -> None:
    """B's ``/stream`` live, and resumed from its own first cursor or from A's (header,
    or ``?last_event_id=`` with ``?token=``), carries B's events and none of A's."""
    a, b = world.a, world.b
    url = world.stack.url + "/stream"
    a_pid, b_pid = a.one("process_id"), b.one("process_id")
    with httpx.Client(timeout=WINDOW_S + 15) as c:
        a_cursor = messages(c, url, {"Authorization": a.token}, backlog_only=True)[0]["id"]
        with c.stream("GET", url, headers={"Authorization": b.token}) as live:
            assert live.status_code == 200
            lines = live.iter_lines()
            b_cursor = next(lines).removeprefix("id:").strip()  # subscribed: the rest is live
            for client, pid in ((a.client, a_pid), (b.client, b_pid), (a.client, a_pid)):
                command(client, f"/process/{pid}/progress", {"progress": 20, "message": "live"})
            text = "\n".join(lines)
        assert b_pid in text and a_pid not in text, text
        for cursor in (b_cursor, a_cursor):
            headers = {"Authorization": b.token, "Last-Event-ID": cursor}
            resumed = messages(c, url, headers, backlog_only=True)
            assert _aggregates(resumed) == {b_pid}, (cursor, resumed)
        query = url + f"?token={b.token}&last_event_id={a_cursor}"
        assert _aggregates(messages(c, query, {}, backlog_only=True)) == {b_pid}


def test_a_case_generate_process_is_only_its_accounts(world: World) -> None:
    """``POST /case/generate`` answers a Process (its async operation): A's is A's alone,
    to read, list, stream and command."""
    generated = world.a.ids["process_id"][2]
    assert ok(world.a.client.get(f"/process/{generated}"))["type"] == "case.generate"
    nobody = str(uuid.uuid4())
    for path in ("/process/{}", "/process/{}/runstatus", "/process/{}/events"):
        mine = error_of(world.b.client.get(path.format(generated)), 404, "not_found")
        none = error_of(world.b.client.get(path.format(nobody)), 404, "not_found")
        assert _normal(mine, generated) == _normal(none, nobody)
    error_of(world.b.client.post(f"/process/{generated}/cancel"), 404, "not_found")
    error_of(world.b.client.get(f"/process/{generated}/stream"), 404, "not_found")
    listed = ok(world.b.client.get("/process", params={"type": "case.generate", "limit": 1000}))
    assert listed["results"] and generated not in _ids_of(listed)
    assert {p["created_by"] for p in listed["results"]} == {f"token:{world.b.name}"}


# -- the ledger --------------------------------------------------------------------------


def _ledger(stack: Stack) -> list[Event]:
    """Every event of the stack's ledger, read from Kafka."""
    records = asyncio.run(read_topic(stack.bootstrap, Topics(stack.prefix).events))
    codec = default_codec()
    return [serde.decode_event(codec, r.value) for r in records if r.value is not None]


def _history(events: list[Event], ids: set[str]) -> list[tuple[str, str, int, str, str]]:
    return [
        (e.aggregate_id, e.aggregate_type, e.seq, e.type, e.account)
        for e in events
        if e.aggregate_id in ids
    ]


def test_b_s_commands_on_a_s_objects_leave_a_s_ledger_as_it_was(world: World) -> None:
    """Every command route, sent by B on A's objects (waiting, then answered 202), is
    refused and records nothing: A's objects have the same events in Kafka after; and
    no event of B's, of all this module made B do, names any of A's ids."""
    ids = world.a.all_ids()
    before = _history(_ledger(world.stack), ids)
    assert before and {e[4] for e in before} == {world.a.name}
    b = {"Authorization": world.b.token}
    theirs = world.params(world.a)
    pending = []
    for method, path in APP_ROUTES:
        if spec_of(method, path).kind != OBJECT or method == "GET":
            continue
        error_of(send(world, method, path, theirs, headers=b), 404, "not_found")
        r = send(world, method, path, theirs, headers={**b, **ASYNC})
        pending.append(ok(r, 202)["command_id"])
    for command_id in pending:
        assert _decided(world.b.client, command_id)["status"] == "rejected"
    events = _ledger(world.stack)
    assert _history(events, ids) == before
    of_b = [repr(e) for e in events if e.account == world.b.name]
    assert of_b and not [(i, e) for e in of_b for i in ids if i in e]
