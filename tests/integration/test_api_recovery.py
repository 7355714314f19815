"""Stopping parts of a stack: the node keeps its read model across a restart and
resumes from its stored positions; with the decider down a command is durable,
answers 202 after ``RUNLEDGER_COMMAND_TIMEOUT_S`` and is decided once the decider is
back. A stack of its own, since these tests stop its processes.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Stack, start_stack

pytestmark = pytest.mark.integration

COMMAND_TIMEOUT_S = 4


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = start_stack(
        kafka_bootstrap,
        tmp_path_factory.mktemp("recovery"),
        {"RUNLEDGER_COMMAND_TIMEOUT_S": str(COMMAND_TIMEOUT_S)},
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def client(stack: Stack) -> httpx.Client:
    return stack.authenticated(f"r-{uuid.uuid4().hex[:8]}")


def send(client: httpx.Client, path: str, body: Any = None, expect: int = 200) -> httpx.Response:
    r = client.post(path, json=body, params={"wait": "true"})
    assert r.status_code == expect, r.text
    return r


def get(client: httpx.Client, path: str, **params: Any) -> Any:
    r = client.get(path, params=params or None)
    assert r.status_code == 200, r.text
    return r.json()


def metrics(stack: Stack) -> dict[str, float]:
    r = httpx.get(stack.url + "/metrics")
    assert r.status_code == 200, r.text
    values = {}
    for line in r.text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.split()
            values[name] = float(value)
    return values


def test_a_restarted_node_keeps_its_data_and_resumes_where_it_stopped(
    stack: Stack, client: httpx.Client
) -> None:
    steps = [{"id": "fetch", "order": 1}, {"id": "parse", "order": 2}]
    pid = send(client, "/process", {"type": "scan", "steps": steps}, expect=201).json()["id"]
    send(client, f"/process/{pid}/progress", {"progress": 40, "message": "half way"})
    send(client, f"/process/{pid}/steps/fetch/start")
    send(client, f"/process/{pid}/steps/fetch/complete", {"message": "done"})
    ended = send(client, "/process", {"type": "scan"}, expect=201).json()["id"]
    send(client, f"/process/{ended}/fail", {"exception": "boom"})

    before = get(client, f"/process/{pid}")
    steps_before = get(client, f"/process/{pid}/steps")
    events_before = get(client, f"/process/{pid}/events", limit=1000)
    listed_before = get(client, "/process")
    # created, started, progress, step_started, step_completed
    assert events_before["count"] == 5

    node = stack.procs["node"]
    stack.kill("node", signal.SIGTERM)
    assert node.returncode == 0, stack.log_tail("node")
    stack.start("node")

    # catch up with the ledger first, so a projector that re-read it would show now
    assert get(client, f"/process/{pid}", wait="true") == before
    assert get(client, f"/process/{pid}/steps") == steps_before
    assert get(client, f"/process/{pid}/events", limit=1000) == events_before
    assert get(client, "/process") == listed_before
    counters = metrics(stack)
    assert counters["runledger_projector_events_applied_total"] == 0
    assert counters["runledger_projector_duplicates_dropped_total"] == 0

    r = send(client, f"/process/{pid}/progress", {"progress": 90})
    assert r.headers["Ledger-Applied"] == "true"
    assert get(client, f"/process/{pid}")["progress"] == 90
    events_after = get(client, f"/process/{pid}/events", limit=1000)
    assert events_after["count"] == events_before["count"] + 1
    assert events_after["results"][:-1] == events_before["results"]
    assert metrics(stack)["runledger_projector_events_applied_total"] == 1


def test_with_the_decider_down_a_command_is_accepted_and_decided_later(
    stack: Stack, client: httpx.Client
) -> None:
    pid = send(client, "/process", {"type": "scan"}, expect=201).json()["id"]
    key = f"created-while-down-{uuid.uuid4()}"

    stack.kill("decider", signal.SIGTERM)
    try:
        started = time.monotonic()
        r = client.post(f"/process/{pid}/progress", json={"progress": 70})
        elapsed = time.monotonic() - started
        assert r.status_code == 202, r.text
        body = r.json()
        assert set(body) == {
            "command_id",
            "status",
            "message",
            "aggregate_type",
            "aggregate_id",
            "status_url",
        }
        assert body["aggregate_id"] == pid
        assert r.headers["Location"] == body["status_url"] == f"/command/{body['command_id']}"
        assert "Preference-Applied" not in r.headers  # the client did not ask for 202
        assert body["status"] == "pending" and body["message"]
        assert r.headers["Ledger-Command-Id"] == body["command_id"]
        assert COMMAND_TIMEOUT_S - 0.5 <= elapsed < COMMAND_TIMEOUT_S + 5

        created = client.post("/process", json={"type": "scan"}, headers={"Idempotency-Key": key})
        assert created.status_code == 202, created.text
        assert get(client, f"/process/{pid}", wait="true")["progress"] == 0
        assert get(client, "/process", wait="true")["count"] == 1
    finally:
        stack.start("decider")

    deadline = time.monotonic() + 60
    while get(client, f"/process/{pid}")["progress"] != 70:
        assert time.monotonic() < deadline, "the accepted command was never decided"
        time.sleep(0.1)
    p = get(client, f"/process/{pid}")
    assert p["status"] == "running"

    # the create was decided too: its retry is a replay of it, not a second Process
    again = client.post(
        "/process", json={"type": "scan"}, headers={"Idempotency-Key": key}, params={"wait": "true"}
    )
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Ledger-Command-Id"] == created.json()["command_id"]
    assert get(client, "/process", wait="true")["count"] == 2

    # and the decider answers again in time
    assert send(client, f"/process/{pid}/progress", {"progress": 80}).json()["progress"] == 80
