"""Two nodes behind a (round-robin) load balancer, as a demanding API client meets them.

One decider and two node processes share one ledger (same broker, same topic prefix),
each node with its own DuckDB file and port; the test plays the balancer by sending
consecutive requests to alternating nodes. What must hold (docs/operations.md,
"Several nodes"):

- a command's ``Ledger-Position`` from one node is waited for on the other
  (``?after=``, ``?wait=true``, ``Prefer: wait=N``), and a lifecycle driven across both
  answers 200 or 409 exactly where the state says so;
- an ``Idempotency-Key`` retried on the other node is the same command: applied once,
  answered ``Idempotent-Replayed: true`` with the same ids and position;
- a ``202`` (``Prefer: respond-async``) from one node is followed at
  ``GET /command/{id}`` on the other (which learns the decision from
  ``ledger.outcomes``);
- an SSE stream dropped on one node resumes on the other with ``Last-Event-ID``, with
  no gap and no duplicate (single object and account-wide ``/stream``);
- a token from ``runledger token create`` works on both nodes and, once revoked, is
  refused by both within a bounded time (measured, printed);
- ``next``/``previous`` links of one node give the same pages on the other, and
  ``?as_of=`` answers the same;
- at the end ``runledger verify`` passes on each node's file and both files hold equal
  tables.

Bounded: SSE windows of 3 s, every request has a timeout, every poll a deadline; the
processes are stopped in ``finally`` whatever fails.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from runners.artifacts import ArtifactStore
from tests.integration.conftest import Stack, free_port, start_stack
from tests.integration.test_api_process_events import all_events, send
from tests.integration.test_api_streams import Message, read_stream

pytestmark = pytest.mark.integration

WINDOW_S = 3
# What a balancer that ends TLS passes on to every node; uvicorn trusts
# X-Forwarded-Proto from 127.0.0.1 (FORWARDED_ALLOW_IPS), where this test sends from.
LB_HOST = "lb.example.test"
LB_HEADERS = {"Host": LB_HOST, "X-Forwarded-Proto": "https"}
# A revoked token: one node caches an answer for 2 s (api/auth.py), and learns the
# revocation from its projection; both nodes must refuse it within this much.
REVOCATION_BOUND_S = 7.0


@dataclass
class Nodes:
    a: Stack  # the decider and node A
    b: Stack  # node B, on A's prefix
    account: str
    ca: httpx.Client
    cb: httpx.Client
    artifacts: Path  # RUNLEDGER_ARTIFACTS_DIR of both nodes, in neither data dir

    def clients(self) -> tuple[httpx.Client, httpx.Client]:
        return self.ca, self.cb


@pytest.fixture(scope="module")
def nodes(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nodes]:
    root = tmp_path_factory.mktemp("multi")
    # docs/operations.md: every node and runner names the same artifacts folder.
    artifacts = root / "artifacts"
    env = {
        "RUNLEDGER_SSE_WINDOW_S": str(WINDOW_S),
        "RUNLEDGER_SSE_HEARTBEAT_S": "0.5",
        "RUNLEDGER_ARTIFACTS_DIR": str(artifacts),
    }
    a = start_stack(kafka_bootstrap, root / "a", env)
    b = Stack(kafka_bootstrap, a.prefix, root / "b", free_port(), extra_env=env, tokens=a.tokens)
    try:
        b.data_dir.mkdir(parents=True)
        b.start("node")
        account = f"lb-{uuid.uuid4().hex[:8]}"
        clients = a.authenticated(account), b.authenticated(account)
        yield Nodes(a, b, account, *clients, artifacts)
    finally:
        b.stop()
        a.stop()


def created(client: httpx.Client, kind: str, **headers: str) -> httpx.Response:
    r = client.post("/process", json={"type": kind}, headers=headers)
    assert r.status_code == 201, r.text
    return r


# -- 1. read your writes across nodes ----------------------------------------------------


def test_a_position_from_one_node_is_waited_for_on_the_other(nodes: Nodes) -> None:
    ca, cb = nodes.clients()
    r = created(ca, "lb.ryw")
    pid, position = r.json()["id"], r.headers["ledger-position"]
    # ?after= names the event: B waits for it, whatever its lag.
    read = cb.get(f"/process/{pid}", params={"after": position})
    assert read.status_code == 200, read.text
    assert read.json()["status"] == "pending"
    p = ca.post(f"/process/{pid}/progress", json={"progress": 42})
    assert p.status_code == 200, p.text
    # Prefer: wait=N without a position waits for everything the ledger had.
    read = cb.get(f"/process/{pid}", headers={"Prefer": "wait=10"})
    assert (read.status_code, read.json()["progress"]) == (200, 42)
    p = cb.post(f"/process/{pid}/progress", json={"progress": 43})
    read = ca.get(f"/process/{pid}", params={"wait": "true"})
    assert (read.status_code, read.json()["progress"]) == (200, 43)
    assert read.json()["time_updated"] == p.json()["time_updated"]


def test_a_lifecycle_alternating_nodes_answers_as_the_state_says(nodes: Nodes) -> None:
    """create on A, start on B, progress on A then B, complete on A: each answers 200
    with the state after it; then complete on B and start on A are 409, as on one node."""
    ca, cb = nodes.clients()
    pid = created(ca, "lb.cycle").json()["id"]
    steps: list[tuple[httpx.Client, str, dict[str, Any], str, float]] = [
        (cb, "start", {}, "running", 0),
        (ca, "progress", {"progress": 30}, "running", 30),
        (cb, "progress", {"progress": 60}, "running", 60),
        (ca, "complete", {"object_id": "obj"}, "completed", 100),
    ]
    for client, name, body, status, progress in steps:
        r = client.post(f"/process/{pid}/{name}", json=body, params={"wait": "true"})
        assert r.status_code == 200, (name, r.text)
        assert (r.json()["status"], r.json()["progress"]) == (status, progress), name
        assert r.headers["ledger-applied"] == "true"  # this node shows it now
        other = cb if client is ca else ca
        seen = other.get(f"/process/{pid}", params={"after": r.headers["ledger-position"]})
        assert seen.json() == r.json(), name  # and the other node too, once it has it
    for client, name in ((cb, "complete"), (ca, "start")):
        r = client.post(f"/process/{pid}/{name}", json={})
        assert r.status_code == 409, (name, r.text)
        assert r.json()["error"]["code"] == "invalid_state"
    types = [e["type"] for e in all_events(cb, pid, 100)]
    assert types == [
        "process.created",
        "process.started",
        "process.progress",
        "process.progress",
        "process.completed",
    ]


# -- 2. Idempotency-Key retried on the other node ----------------------------------------


def test_an_idempotent_retry_on_the_other_node_is_replayed_not_reapplied(nodes: Nodes) -> None:
    ca, cb = nodes.clients()
    key = {"Idempotency-Key": f"create-{uuid.uuid4()}"}
    first = created(ca, "lb.idem", **key)
    retry = created(cb, "lb.idem", **key)
    assert retry.json()["id"] == first.json()["id"]
    for header in ("ledger-command-id", "ledger-position", "location"):
        assert retry.headers[header] == first.headers[header], header
    assert "idempotent-replayed" not in first.headers
    assert retry.headers["idempotent-replayed"] == "true"
    pid = first.json()["id"]
    # A command: sent 202-style to B, retried waiting on A (a client that gave up).
    key = {"Idempotency-Key": f"progress-{uuid.uuid4()}"}
    body = {"progress": 10}
    r = cb.post(f"/process/{pid}/progress", json=body, headers={**key, "Prefer": "respond-async"})
    assert r.status_code == 202, r.text
    again = ca.post(f"/process/{pid}/progress", json=body, headers=key)
    assert again.status_code == 200, again.text
    assert again.headers["ledger-command-id"] == r.json()["command_id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert cb.get("/process", params={"wait": "true", "limit": 1}).status_code == 200
    assert [e["type"] for e in all_events(cb, pid, 100)] == [
        "process.created",
        "process.started",
        "process.progress",
    ]


def test_the_same_key_sent_to_both_nodes_at_once_creates_one_process(nodes: Nodes) -> None:
    """A client whose first attempt is still in flight on A when it retries on B."""
    key = {"Idempotency-Key": f"race-{uuid.uuid4()}"}
    answers: list[httpx.Response] = []
    threads = [
        threading.Thread(target=lambda c=c: answers.append(created(c, "lb.race", **key)))
        for c in nodes.clients()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(answers) == 2
    assert answers[0].json()["id"] == answers[1].json()["id"]
    assert answers[0].headers["ledger-position"] == answers[1].headers["ledger-position"]
    replayed = sorted(r.headers.get("idempotent-replayed", "") for r in answers)
    assert replayed == ["", "true"]  # one applied it, the other replayed it
    pid = answers[0].json()["id"]
    events = nodes.ca.get(f"/process/{pid}/events", params={"wait": "true"}).json()
    assert [e["type"] for e in events["results"]] == ["process.created"]


# -- 3. a 202 followed on the other node -------------------------------------------------


def test_a_202_from_one_node_is_followed_on_the_other(nodes: Nodes) -> None:
    ca, cb = nodes.clients()
    async_ = {"Prefer": "respond-async"}
    r = ca.post("/process", json={"type": "lb.async"}, headers=async_)
    assert r.status_code == 202, r.text
    url, pid = r.json()["status_url"], r.json()["aggregate_id"]
    on_b = cb.get(url, headers={"Prefer": "wait=15"})  # waits for the decision
    assert on_b.status_code == 200, on_b.text
    # Each node reads the decision on its own: A may be a moment behind B (CI saw
    # `pending` on A here once), so A is asked to wait for it too.
    on_a = ca.get(url, headers={"Prefer": "wait=15"})
    assert on_b.json() == on_a.json()
    assert on_b.json()["status"] == "accepted"
    assert on_b.headers["ledger-position"] == on_a.headers["ledger-position"]
    assert cb.get(f"/process/{pid}", params={"after": on_b.json()["position"]}).status_code == 200
    # A rejection (a retry of a process that did not fail), sent to B, read on A.
    r = cb.post(f"/process/{pid}/retry", json={}, headers=async_)
    assert r.status_code == 202, r.text
    on_a = ca.get(r.json()["status_url"], params={"wait": "true"})
    assert on_a.status_code == 200, on_a.text
    on_b = cb.get(r.json()["status_url"], params={"wait": "true"})
    assert on_a.json() == on_b.json()
    assert (on_a.json()["status"], on_a.json()["http_status"]) == ("rejected", 409)
    assert on_a.json()["error"]["code"] == "invalid_state"
    # Another account never sees it, on either node: the 404 of an unknown id.
    other = nodes.a.authenticated(f"{nodes.account}-other")
    unknown = other.get(f"/command/{uuid.uuid4()}")
    foreign = other.get(r.json()["status_url"])
    assert unknown.status_code == foreign.status_code == 404
    assert unknown.json()["error"]["code"] == foreign.json()["error"]["code"] == "not_found"
    # An id no node took: 404 after the wait, which is bounded.
    started = time.monotonic()
    missing = cb.get(f"/command/{uuid.uuid4()}", headers={"Prefer": "wait=1"})
    assert missing.status_code == 404
    assert 0.9 <= time.monotonic() - started < 5


# -- 4. SSE resumed on the other node ----------------------------------------------------


def _drive(client: httpx.Client, pid: str, progresses: range) -> None:
    for i in progresses:
        send(client, f"/process/{pid}/progress", {"progress": i})


def _key(messages: list[Message]) -> list[tuple[str | None, str, str]]:
    return [(m.id, m.event, m.data) for m in messages]


def test_a_process_stream_dropped_on_a_resumes_on_b_without_gap_or_duplicate(
    nodes: Nodes,
) -> None:
    ca, cb = nodes.clients()
    pid = send(ca, "/process", {"type": "lb.sse"}).json()["id"]
    send(cb, f"/process/{pid}/start")
    _drive(ca, pid, range(1, 4))
    path = f"/process/{pid}/stream"
    first = read_stream(ca, path, stop_after=3)  # then the client drops
    assert len(first.messages) == 3 and not first.ended
    _drive(cb, pid, range(4, 6))
    completed = send(ca, f"/process/{pid}/complete", {"object_id": "done"})
    # B must show `done` within one 3 s window: it waits for the completion first.
    after = {"after": completed.headers["ledger-position"]}
    assert cb.get(f"/process/{pid}", params=after).status_code == 200
    resumed = read_stream(cb, path, last_id=first.messages[-1].id)
    assert resumed.ended and resumed.messages[-1].event == "done"
    whole_a, whole_b = read_stream(ca, path), read_stream(cb, path)
    assert _key(whole_a.messages) == _key(whole_b.messages)  # positions mean the same
    assert _key(first.messages + resumed.messages) == _key(whole_b.messages)
    positions = [m.id for m in whole_b.messages if m.id]
    assert positions == [e["position"] for e in all_events(cb, pid, 100)]


def test_the_account_stream_dropped_on_a_resumes_on_b_from_its_cursor(nodes: Nodes) -> None:
    account = f"{nodes.account}-feed"
    ca, cb = nodes.a.authenticated(account), nodes.b.authenticated(account)
    start = read_stream(ca, "/stream", stop_after=1).messages[0]  # the starting cursor
    assert start.id and not start.data
    pids = []
    for i, client in enumerate((ca, cb, ca)):
        pids.append(send(client, "/process", {"type": f"lb.feed{i}"}).json()["id"])
        send(cb if client is ca else ca, f"/process/{pids[-1]}/start")
    assert ca.get("/process", params={"wait": "true"}).status_code == 200
    part = read_stream(ca, "/stream", last_id=start.id, stop_after=2).messages
    assert len(part) == 2
    for pid in pids:
        send(cb, f"/process/{pid}/complete", {})
    # A backlog is in (partition, offset) order, live events in the order applied: both
    # nodes must hold every event before their whole feeds are compared.
    for client in (ca, cb):
        assert client.get("/process", params={"wait": "true"}).status_code == 200
    rest = read_stream(cb, "/stream", last_id=part[-1].id).messages  # to the window's end
    whole_a = read_stream(ca, "/stream", last_id=start.id).messages
    whole_b = read_stream(cb, "/stream", last_id=start.id).messages
    assert len(whole_a) == 3 * 3  # created, started, completed of each
    assert _key(whole_a) == _key(whole_b)
    assert _key(part + rest) == _key(whole_b)
    states = [json.loads(m.data)["state"]["id"] for m in whole_b]
    assert sorted(set(states)) == sorted(pids)


# -- 5. tokens: issued and revoked once, seen by both nodes ------------------------------


def _cli(stack: Stack, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "runledger", *args],
        env=stack.env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


class Poller(threading.Thread):
    """Sends ``GET /process`` with one token to each node every 20 ms and records
    (time, node, status), so the moment each node stops accepting it is known."""

    def __init__(self, urls: dict[str, str], token: str) -> None:
        super().__init__(daemon=True)
        self.urls, self.token = urls, token
        self.seen: list[tuple[float, str, int]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + 120
        with httpx.Client(headers={"Authorization": self.token}, timeout=10) as client:
            while not self.halt.is_set() and time.monotonic() < deadline:
                for name, url in self.urls.items():
                    status = client.get(url + "/process", params={"limit": 1}).status_code
                    self.seen.append((time.monotonic(), name, status))
                time.sleep(0.02)

    def last(self, name: str, status: int) -> float | None:
        times = [t for t, n, s in self.seen if n == name and s == status]
        return times[-1] if times else None

    def first(self, name: str, status: int, after: float = float("-inf")) -> float | None:
        times = [t for t, n, s in self.seen if n == name and s == status and t > after]
        return times[0] if times else None


def test_a_token_works_on_both_nodes_and_its_revocation_reaches_both(nodes: Nodes) -> None:
    account = f"{nodes.account}-tok"
    token = _cli(nodes.a, "token", "create", "--account", account).strip()
    issued = time.monotonic()
    poller = Poller({"a": nodes.a.url, "b": nodes.b.url}, token)
    poller.start()
    try:
        deadline = issued + 15
        while not all(poller.first(n, 200) for n in "ab"):
            assert time.monotonic() < deadline, "a node did not learn the new token"
            time.sleep(0.05)
        # A node answers 401 until its projection has the new token (Stack.authenticated):
        # the revocation reaches a node with its first 401 after its first 200.
        accepted = {n: poller.first(n, 200) or 0.0 for n in "ab"}
        learnt = max(accepted.values()) - issued
        _cli(nodes.b, "token", "revoke", "--account", account, stdin=token + "\n")
        revoked = time.monotonic()
        deadline = revoked + 20
        while True:
            on_a, on_b = (poller.first(n, 401, after=accepted[n]) for n in "ab")
            # Both refuse it, and go on refusing it past one cache period (2 s).
            if on_a is not None and on_b is not None and time.monotonic() - max(on_a, on_b) > 2.5:
                break
            assert time.monotonic() < deadline, f"still accepted: {on_a}, {on_b}"
            time.sleep(0.1)
    finally:
        poller.halt.set()
        poller.join(15)
    for name in "ab":
        accepted_last = poller.last(name, 200)
        refused_first = poller.first(name, 401, after=accepted[name])
        assert accepted_last is not None and refused_first is not None
        assert accepted_last < refused_first, f"node {name} accepted it again after a 401"
        delay = refused_first - revoked
        print(f"node {name}: new token accepted {learnt:.2f} s after create; revoked token "
              f"refused {delay:.2f} s after revoke returned")  # fmt: skip
        assert delay < REVOCATION_BOUND_S, f"node {name} accepted a revoked token {delay:.1f} s"


# -- 6. pages and past states are the same on every node ---------------------------------


def test_page_links_from_one_node_are_followed_on_the_other(nodes: Nodes) -> None:
    ca, cb = nodes.clients()
    kind = f"lb.page.{uuid.uuid4().hex[:6]}"
    ids = [created(c, kind).json()["id"] for c in (ca, cb, ca, cb, ca)]
    host = LB_HEADERS
    for c in (ca, cb):
        assert c.get("/process", params={"wait": "true", "limit": 1}).status_code == 200
    whole = ca.get("/process", params={"type": kind, "limit": 10}).json()
    assert [p["id"] for p in whole["results"]] == ids
    page = ca.get("/process", params={"type": kind, "limit": 2}, headers=host).json()
    pages, clients = [page], [cb, ca]
    while page["next"] is not None:
        url = httpx.URL(page["next"])
        assert (url.scheme, url.host) == ("https", LB_HOST)  # the balancer, not the node
        client = clients[len(pages) % 2]
        page = client.get(url.raw_path.decode(), headers=host).json()
        pages.append(page)
    assert [p["id"] for pg in pages for p in pg["results"]] == ids
    # previous of each page, followed on the other node, is the page before it.
    for i in range(1, len(pages)):
        url = httpx.URL(pages[i]["previous"])
        back = clients[i % 2].get(url.raw_path.decode(), headers=host).json()
        assert back == pages[i - 1]


def test_as_of_answers_the_same_on_both_nodes(nodes: Nodes) -> None:
    ca, cb = nodes.clients()
    pid = send(ca, "/process", {"type": "lb.asof"}).json()["id"]
    send(cb, f"/process/{pid}/start")
    send(ca, f"/process/{pid}/progress", {"progress": 25})
    send(cb, f"/process/{pid}/progress", {"progress": 75})
    events = all_events(ca, pid, 100)
    at = events[2]["created_at"]  # right after the first progress report
    answers = [c.get(f"/process/{pid}", params={"as_of": at, "wait": "true"}) for c in (ca, cb)]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json() == answers[1].json()
    assert answers[0].json()["progress"] == 25
    before = [c.get(f"/process/{pid}", params={"as_of": "2000-01-01T00:00:00Z"}) for c in (ca, cb)]
    assert [b.status_code for b in before] == [404, 404]


def test_an_artifact_a_runner_stored_is_served_by_every_node(nodes: Nodes) -> None:
    # What a runner started with the same RUNLEDGER_ARTIFACTS_DIR writes.
    digest = ArtifactStore(nodes.artifacts).put(b"a screenshot", "image/png")
    for client in nodes.clients():
        r = client.get(f"/artifact/{digest}")
        assert (r.status_code, r.content) == (200, b"a screenshot")


# -- 7. after the drill: each file verifies, and both files are equal ---------------------


def _tables(path: Path) -> dict[str, tuple[int, int]]:
    """Row count and row-order-free checksum of every table of a DuckDB file."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        names = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        sums = {}
        for name in names:
            row = con.execute(
                f'SELECT count(*), coalesce(sum(hash(t)::HUGEINT), 0) FROM "{name}" t'
            ).fetchone()
            assert row is not None
            sums[name] = (int(row[0]), int(row[1]))
        return sums
    finally:
        con.close()


def test_z_after_the_drill_each_node_verifies_and_both_hold_the_same_tables(
    nodes: Nodes,
) -> None:
    """Last in this module: it stops both nodes."""
    for client in nodes.clients():  # both have applied everything the ledger holds
        assert client.get("/process", params={"wait": "true", "limit": 1}).status_code == 200
    nodes.b.stop()
    nodes.a.kill("node", signal.SIGTERM)  # the decider keeps running
    for stack in (nodes.a, nodes.b):
        out = _cli(stack, "verify", "--data-dir", str(stack.data_dir))
        assert out, f"verify printed nothing for {stack.data_dir}"
    a, b = (_tables(s.data_dir / "node.duckdb") for s in (nodes.a, nodes.b))
    assert set(a) == set(b) and "events" in a and "processes" in a
    differing = {name: (a[name], b[name]) for name in a if a[name] != b[name]}
    assert not differing, differing
