"""Shared helpers of the FlowRun integration tests (real broker, real Chromium): drive a
run with commands on ``ledger.commands`` and read the ledger back from ``ledger.events``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from runners.browser import CHROMIUM
from schemas import default_codec
from streams import serde
from streams.bus import CommandBus
from streams.domain import case as case_domain
from streams.domain import flowrun as f
from streams.domain import site as site_domain
from streams.domain.commands import Body, Command
from streams.domain.events import Event
from streams.domain.flowrun_messages import FlowRunLogged
from streams.topics import Topics, partitions_of
from tests.integration.conftest import Stack, start_stack
from tests.site.server import TestSite, serve_site

ACCOUNT = "acme"
CASE_STEPS: list[dict[str, Any]] = [
    {
        "action": {"type": "click", "element": {"selector": "#link-form"}},
        "assertion": {"type": "visible", "element": {"selector": "#contact"}},
    },
    {"action": {"type": "change", "element": {"selector": "#name"}, "value": "Ada"}},
    {
        "action": {"type": "click", "element": {"selector": "#send"}},
        "assertion": {"type": "match", "element": {"selector": "#result"}, "value": "Thanks, Ada!"},
    },
]
CONFIGS = {"timeout": 60, "max_wait_time": 10, "min_wait_time": 0}

Done = Callable[[list[Event]], bool]


def serve_test_site() -> Iterator[TestSite]:
    """The body of a module-scoped ``site`` fixture: fails without Chromium."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup.sh (installs Debian's chromium)")
    with serve_site() as served:
        yield served


def allowed_stack(bootstrap: str, data_dir: Path, *names: str) -> Iterator[Stack]:
    """The body of a module-scoped stack fixture: decider, node and ``names`` (e.g.
    ``orchestrator``, ``runner``), with private targets allowed for the local site."""
    stack = start_stack(bootstrap, data_dir, {"RUNLEDGER_ALLOW_PRIVATE_TARGETS": "1"})
    try:
        for name in names:
            stack.start(name)
        yield stack
    finally:
        stack.stop()


def command(bus: CommandBus, aggregate: str, aggregate_id: str, body: Body) -> Command:
    return Command(
        command_id=str(uuid.uuid4()),
        aggregate_type=aggregate,
        aggregate_id=aggregate_id,
        issued_at=time.time_ns() // 1000,
        account=ACCOUNT,
        actor="test",
        correlation_id=aggregate_id,
        causation_id="test",
        body=body,
        reply_to=bus.node_id,
    )


def node(node_id: str, task_type: str, **data: Any) -> dict[str, Any]:
    return {
        "id": node_id,
        "data": {"id": node_id, "task_type": task_type, "configs": CONFIGS, **data},
    }


def edge(source: str, target: str) -> dict[str, str]:
    return {"source": source, "target": target}


async def execute(stack: Stack, aggregate: str, aggregate_id: str, body: Body) -> None:
    """One command through the command bus; asserts it was accepted."""
    bus = CommandBus(stack.bootstrap, Topics(stack.prefix), default_codec())
    await bus.start()
    try:
        outcome = await bus.execute(command(bus, aggregate, aggregate_id, body), 30)
        assert outcome is not None and outcome.accepted, outcome
    finally:
        await bus.stop()


async def create_site(stack: Stack, site_url: str) -> str:
    site_id = str(uuid.uuid4())
    await execute(stack, "site", site_id, site_domain.CreateSite(site_url))
    return site_id


async def create_run(
    stack: Stack,
    site_url: str,
    nodes: list[Any],
    edges: list[Any],
    *,
    site_id: str | None = None,
    case_steps: list[dict[str, Any]] | None = None,
    end_on_fail: bool = True,
) -> str:
    """Site (unless ``site_id`` is given), Case and FlowRun by commands; the run's id."""
    bus = CommandBus(stack.bootstrap, Topics(stack.prefix), default_codec())
    await bus.start()
    try:
        case_id, run_id = str(uuid.uuid4()), str(uuid.uuid4())
        steps = json.dumps(
            CASE_STEPS if case_steps is None else case_steps, sort_keys=True, separators=(",", ":")
        )
        creates: list[tuple[str, str, Body]] = []
        if site_id is None:
            site_id = str(uuid.uuid4())
            creates.append(("site", site_id, site_domain.CreateSite(site_url)))
        if any(n["data"]["task_type"] == "case" for n in nodes):
            creates.append(
                ("case", case_id, case_domain.CreateCase(site_id, "contact", steps, "recorded"))
            )
        for agg, agg_id, body in creates:
            outcome = await bus.execute(command(bus, agg, agg_id, body), 30)
            assert outcome is not None and outcome.accepted, outcome
        for n in nodes:
            if n["data"]["task_type"] == "case":
                n["data"]["case_id"] = case_id
        create = f.CreateFlowRun(
            site_id=site_id,
            flow_id="flow-1",
            nodes_json=json.dumps(nodes, sort_keys=True, separators=(",", ":")),
            edges_json=json.dumps(edges, sort_keys=True, separators=(",", ":")),
            end_on_fail=end_on_fail,
            title="e2e",
        )
        outcome = await bus.execute(command(bus, f.AGGREGATE, run_id, create), 30)
        assert outcome is not None and outcome.accepted, outcome
        return run_id
    finally:
        await bus.stop()


async def read_events(stack: Stack, done: Done, timeout: float) -> list[Event]:
    """Every event of the ledger, read until ``done(events)`` or ``timeout`` seconds."""
    codec = default_codec()
    topics = Topics(stack.prefix)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack.bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    events: list[Event] = []
    try:
        parts = await partitions_of(consumer, topics.events)
        tps = [TopicPartition(topics.events, p) for p in parts]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for messages in batch.values():
                events.extend(serde.decode_event(codec, m.value) for m in messages)
            if done(events):
                break
    finally:
        await consumer.stop()
    return events


def completed(run_id: str, times: int = 1) -> Done:
    """Done once the run has ``times`` ``flowrun.completed`` events (retries add one)."""
    return lambda events: (
        sum(1 for e in events if e.aggregate_id == run_id and e.type == "flowrun.completed")
        >= times
    )


def logged(run_id: str, prefix: str) -> Done:
    """Done once the run has a log line starting with ``prefix``."""
    return lambda events: any(
        e.aggregate_id == run_id
        and isinstance(e.data, FlowRunLogged)
        and e.data.message.startswith(prefix)
        for e in events
    )


def of(events: list[Event], aggregate_id: str) -> list[Event]:
    return [e for e in events if e.aggregate_id == aggregate_id]


def transitions(run: list[Event]) -> list[tuple[str, str | None]]:
    """(type, node id) of a run's events, log lines left out."""
    return [(e.type, getattr(e.data, "node_id", None)) for e in run if e.type != "flowrun.log"]


def node_status(run: list[Event]) -> dict[str, str]:
    """Each node's last transition: passed / failed / skipped / started."""
    status: dict[str, str] = {}
    for e in run:
        nid = getattr(e.data, "node_id", None)
        if nid is not None and e.type.startswith("flowrun.node_"):
            status[nid] = e.type.removeprefix("flowrun.node_")
    return status
