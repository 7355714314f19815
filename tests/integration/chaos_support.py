"""Helpers of the orchestrator chaos test (test_chaos_orchestrator.py): a local webhook
receiver that counts deliveries with their idempotency keys, the Flows it runs with the
per-node outcome their graph implies, and readers of the ledger's topics."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from schemas import default_codec
from streams import serde
from streams.domain import aggregates
from streams.domain.events import Event
from streams.jobs import decode_dispatch
from streams.orchestration import Job
from streams.topics import partitions_of
from tests.integration.flow_helpers import edge, node
from tests.integration.kafka_read import read_topic

# -- the webhook receiver -------------------------------------------------------------


@dataclass
class HookServer:
    """Webhook deliveries by path (``/ok/<tag>/<node>`` answers 200, ``/fail/...`` 500),
    each with its ``Idempotency-Key`` header (None when missing)."""

    base_url: str = ""
    deliveries: dict[str, list[str | None]] = field(default_factory=lambda: defaultdict(list))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, ok: bool, tag: str, node_id: str) -> str:
        return f"{self.base_url}/{'ok' if ok else 'fail'}/{tag}/{node_id}"

    def received(self, tag: str, node_id: str) -> list[str | None]:
        """The idempotency keys of every delivery to a node of run ``tag``."""
        with self.lock:
            return [
                key
                for path, keys in self.deliveries.items()
                if path.split("/")[2:4] == [tag, node_id]
                for key in keys
            ]


@contextmanager
def serve_hooks() -> Iterator[HookServer]:
    """A :class:`HookServer` on a free loopback port, stopped on exit."""
    hooks = HookServer()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            with hooks.lock:
                hooks.deliveries[self.path].append(self.headers.get("Idempotency-Key"))
            status = 500 if self.path.startswith("/fail/") else 200
            body = b'{"ok": false}' if status == 500 else b'{"ok": true}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    hooks.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hooks
    finally:
        server.shutdown()
        server.server_close()


# -- the Flows ------------------------------------------------------------------------


@dataclass(frozen=True)
class Flow:
    """One run's graph: ``failing`` are the webhook nodes whose receiver answers 500."""

    template: str
    tag: str
    nodes: list[dict[str, Any]]
    edges: list[dict[str, str]]
    end_on_fail: bool
    failing: frozenset[str]

    @property
    def webhooks(self) -> list[str]:
        return [n["id"] for n in self.nodes if n["data"]["task_type"] == "webhook"]


def _wait(node_id: str, seconds: float, **data: Any) -> dict[str, Any]:
    waiting = node(node_id, "wait", **data)
    waiting["data"]["configs"] = {"timeout": 30, "max_wait_time": 5, "min_wait_time": seconds}
    return waiting


def _hook(hooks: HookServer, tag: str, node_id: str, ok: bool, **data: Any) -> dict[str, Any]:
    return node(
        node_id,
        "webhook",
        uri=hooks.url(ok, tag, node_id),
        request_type="POST",
        payload='{"chaos": true}',
        **data,
    )


TEMPLATES = ("chain", "diamond", "branch", "stop", "loose")
WIDE = 12  # parallel nodes of the "wide" Flow, which keeps the orchestrator busy


def make_flow(template: str, tag: str, hooks: HookServer, waits: list[float]) -> Flow:
    """The Flow ``template`` for run ``tag``, with wait nodes of ``waits`` seconds.

    Where ``end_on_fail`` holds and a failure is not handled (``stop``), the graph is a
    chain, so the outcome does not depend on timing (see :func:`expected_outcomes`)."""
    w = iter(waits)
    failed_parent = [{"parent": "hf", "status": "failed"}]
    if template == "chain":  # all pass
        nodes = [_wait("w1", next(w)), _hook(hooks, tag, "h1", True), _wait("w2", next(w))]
        nodes.append(_hook(hooks, tag, "h2", True))
        edges = [edge("w1", "h1"), edge("h1", "w2"), edge("w2", "h2")]
        return Flow(template, tag, nodes, edges, True, frozenset())
    if template == "diamond":  # all pass; h3 waits for both branches
        nodes = [_wait("w1", next(w)), _hook(hooks, tag, "h1", True), _wait("w2", next(w))]
        nodes.append(_hook(hooks, tag, "h3", True))
        edges = [edge("w1", "h1"), edge("w1", "w2"), edge("h1", "h3"), edge("w2", "h3")]
        return Flow(template, tag, nodes, edges, True, frozenset())
    if template == "branch":  # a handled failure: the failure branch runs, then the merge
        nodes = [
            _hook(hooks, tag, "hf", False),
            _wait("onfail", next(w), start_if="failed", conditions=failed_parent),
            _hook(hooks, tag, "onpass", True),
            _hook(hooks, tag, "merge", True, start_if="always"),
        ]
        edges = [
            edge("hf", "onfail"),
            edge("hf", "onpass"),
            edge("onfail", "merge"),
            edge("onpass", "merge"),
        ]
        return Flow(template, tag, nodes, edges, True, frozenset({"hf"}))
    if template == "stop":  # end_on_fail: the rest of the chain is skipped
        nodes = [_wait("w1", next(w)), _hook(hooks, tag, "hf", False)]
        nodes += [_hook(hooks, tag, "h2", True), _wait("w3", next(w))]
        edges = [edge("w1", "hf"), edge("hf", "h2"), edge("h2", "w3")]
        return Flow(template, tag, nodes, edges, True, frozenset({"hf"}))
    if template == "loose":  # no end_on_fail: the other root's path runs on
        nodes = [
            _hook(hooks, tag, "hf", False),
            _hook(hooks, tag, "h2", True),
            _wait("w4", next(w), start_if="failed"),
            _wait("w1", next(w)),
            _hook(hooks, tag, "h3", True),
        ]
        edges = [edge("hf", "h2"), edge("hf", "w4"), edge("w1", "h3")]
        return Flow(template, tag, nodes, edges, False, frozenset({"hf"}))
    if template == "wide":  # all pass: a fan-out of short waits, a webhook joins them
        fan = [_wait(f"p{i}", round(0.05 * (i % 3), 2)) for i in range(WIDE)]
        nodes = [_wait("w0", 0.0), *fan, _hook(hooks, tag, "join", True)]
        edges = [edge("w0", n["id"]) for n in fan] + [edge(n["id"], "join") for n in fan]
        return Flow(template, tag, nodes, edges, True, frozenset())
    raise ValueError(f"unknown template {template!r}")


def _topological(flow: Flow) -> tuple[list[str], dict[str, list[str]], dict[str, list[str]]]:
    ids = [n["id"] for n in flow.nodes]
    parents: dict[str, list[str]] = {i: [] for i in ids}
    children: dict[str, list[str]] = {i: [] for i in ids}
    for e in flow.edges:
        parents[e["target"]].append(e["source"])
        children[e["source"]].append(e["target"])
    order: list[str] = []
    while len(order) < len(ids):
        order.append(next(i for i in ids if i not in order and set(parents[i]) <= set(order)))
    return order, parents, children


def expected_outcomes(flow: Flow) -> tuple[dict[str, str], str]:
    """(status per node, run status) the rules of docs/flowrun.md give ``flow``, worked
    out independently of ``streams.orchestration``: nodes in topological order, each
    judged on its parents; a failing webhook fails; with ``end_on_fail`` an unhandled
    failure skips every node after it (exact for the chains :func:`make_flow` uses)."""
    order, parents, children = _topological(flow)
    data = {n["id"]: n["data"] for n in flow.nodes}

    def handled(failed: str) -> bool:
        return any(
            (data[kid].get("start_if") or "passed") in ("failed", "always")
            and {"parent": failed, "status": "passed"} not in (data[kid].get("conditions") or [])
            for kid in children[failed]
        )

    status: dict[str, str] = {}
    stopped = False
    for nid in order:
        ran = [status[p] for p in parents[nid] if status[p] != "skipped"]
        start_if = data[nid].get("start_if") or "passed"
        conditions = data[nid].get("conditions") or []
        if stopped or (parents[nid] and not ran):
            starts = False
        elif not parents[nid]:
            starts = True
        elif any(status[c["parent"]] != c["status"] for c in conditions):
            starts = False
        elif start_if == "passed":
            starts = all(s == "passed" for s in ran)
        elif start_if == "failed":
            starts = "failed" in ran
        else:
            starts = True
        if not starts:
            status[nid] = "skipped"
            continue
        status[nid] = "failed" if nid in flow.failing else "passed"
        if status[nid] == "failed" and flow.end_on_fail and not handled(nid):
            stopped = True
    return status, "failed" if "failed" in status.values() else "passed"


# -- reading the ledger ---------------------------------------------------------------


def read_events_checked(bootstrap: str, topic: str) -> tuple[dict[str, list[Event]], list[str]]:
    """Every committed event by stream key, and what is wrong with the log: an event
    that does not decode, a repeated ``event_id``, a per-aggregate ``seq`` not 1..n."""
    codec = default_codec()
    records = asyncio.run(read_topic(bootstrap, topic, "read_committed"))
    out: dict[str, list[Event]] = defaultdict(list)
    problems: list[str] = []
    seen: dict[str, tuple[int, int]] = {}
    for r in records:
        if r.value is None:
            continue
        try:
            ev = serde.decode_event(codec, r.value)
        except Exception as exc:  # noqa: BLE001 - any undecodable event is a finding
            problems.append(f"event at {r.partition}:{r.offset} does not decode: {exc}")
            continue
        if ev.event_id in seen:
            problems.append(f"event_id {ev.event_id} at {r.partition}:{r.offset} repeats")
        seen[ev.event_id] = (r.partition, r.offset)
        out[aggregates.stream_key(ev.aggregate_type, ev.aggregate_id)].append(ev)
    for key, events in out.items():
        seqs = [ev.seq for ev in events]
        if seqs != list(range(1, len(seqs) + 1)):
            problems.append(f"{key}: seq in log order is {seqs}, not 1..{len(seqs)}")
    return out, problems


def read_jobs(bootstrap: str, topic: str) -> list[Job]:
    """Every committed job on ``ledger.jobs``."""
    records = asyncio.run(read_topic(bootstrap, topic, "read_committed"))
    return [decode_dispatch(r.value).job for r in records if r.value is not None]


def read_outcomes(bootstrap: str, topic: str) -> list[serde.Outcome]:
    codec = default_codec()
    records = asyncio.run(read_topic(bootstrap, topic, "read_committed"))
    return [serde.decode_outcome(codec, r.value) for r in records if r.value is not None]


def committed_records(bootstrap: str, topic: str) -> int:
    return len(asyncio.run(read_topic(bootstrap, topic, "read_committed")))


def aborted_records(bootstrap: str, topic: str) -> int:
    """Records of ``topic`` written in transactions that never committed (a kill landed
    inside one of the writer's transactions): those a read_uncommitted read returns and
    a later read_committed read skips, below the latter's last offset per partition."""
    everything = asyncio.run(read_topic(bootstrap, topic, "read_uncommitted"))
    committed = asyncio.run(read_topic(bootstrap, topic, "read_committed"))
    kept = {(r.partition, r.offset) for r in committed}
    last: dict[int, int] = {}
    for r in committed:
        last[r.partition] = max(last.get(r.partition, -1), r.offset)
    return sum(
        1
        for r in everything
        if (r.partition, r.offset) not in kept and r.offset < last.get(r.partition, -1)
    )


def in_flight(spans: dict[str, tuple[float, float | None]], at: float) -> int:
    """How many runs had been created and not completed at wall-clock time ``at``."""
    return sum(1 for begin, end in spans.values() if begin <= at and (end is None or end > at))


async def watch_then(
    bootstrap: str,
    topic: str,
    act: Callable[[], None],
    start: Callable[[], Awaitable[None]],
    *,
    skip: int,
    delay: float,
    timeout: float,
) -> bool:
    """Call ``start``, then ``act`` ``delay`` seconds after the ``skip + 1``-th new
    committed record of ``topic`` (or after ``timeout`` seconds anyway). True when the
    record was seen: on ``ledger.events`` a consumer of the log (the orchestrator) has
    just been handed the same record and is working on it."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
        fetch_max_wait_ms=5,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in await partitions_of(consumer, topic)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)  # resolve the end now, before ``start`` writes
        await start()
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=5)
            seen += sum(len(records) for records in batch.values())
            if seen > skip:
                await asyncio.sleep(delay)
                act()
                return True
        act()
        return False
    finally:
        await consumer.stop()


def run_verify(stack: Any) -> subprocess.CompletedProcess[str]:
    """``runledger verify`` on ``stack``'s data dir (a ``conftest.Stack``): the read
    model rebuilt from the ledger must equal the live one."""
    argv = [sys.executable, "-m", "runledger", "verify", "--data-dir", str(stack.data_dir)]
    return subprocess.run(argv, env=stack.env(), capture_output=True, text=True, timeout=120)
