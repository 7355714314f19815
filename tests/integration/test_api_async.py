"""``Prefer: respond-async`` on a command, as docs/api.md promises it.

- The command answers ``202`` once it is durable in Kafka, with ``Location`` (its
  status at ``GET /command/{id}``), ``Ledger-Command-Id`` and
  ``Preference-Applied: respond-async``, without waiting for the decider: with the
  decider stopped it still answers at once, and the command is decided when the
  decider is back.
- ``GET /command/{id}`` reports it ``pending``, then ``accepted`` with the position of
  its last event, or ``rejected`` with the reason; ``runledger audit`` finds the
  rejection in the ledger too.
- Without the preference a command still waits for the decision (200 or 409).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from runledger.audit import load as audit_load
from schemas import default_codec
from streams import serde
from streams.topics import Topics
from tests.integration.conftest import start_stack
from tests.integration.kafka_read import read_topic

pytestmark = pytest.mark.integration

ASYNC = {"Prefer": "respond-async"}
POSITION = re.compile(r"^(\d+):(\d+)$")


@pytest.fixture
def client(stack: Any) -> httpx.Client:
    return stack.authenticated(f"a-{uuid.uuid4().hex[:8]}")


def create(client: httpx.Client) -> str:
    r = client.post("/process", json={"type": "scan"}, params={"wait": "true"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def decided(client: httpx.Client, command_id: str, timeout: float = 30) -> dict[str, Any]:
    """``GET /command/{id}`` once it is no longer pending."""
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(f"/command/{command_id}")
        assert r.status_code == 200, r.text
        if r.json()["status"] != "pending":
            return dict(r.json())
        assert time.monotonic() < deadline, f"command {command_id} was never decided"
        time.sleep(0.05)


def assert_accepted_async(r: httpx.Response, aggregate_id: str | None = None) -> str:
    assert r.status_code == 202, r.text
    body = r.json()
    command_id = str(body["command_id"])
    assert r.headers["ledger-command-id"] == command_id
    assert r.headers["location"] == f"/command/{command_id}" == body["status_url"]
    assert r.headers["preference-applied"] == "respond-async"
    assert body["status"] == "pending"  # durable, not decided yet
    assert body["aggregate_type"] == "process"
    if aggregate_id is not None:
        assert body["aggregate_id"] == aggregate_id
    return command_id


async def _commands_in_kafka(stack: Any) -> set[str]:
    """The ids of every committed command in ledger.commands, read from Kafka."""
    codec = default_codec()
    records = await read_topic(stack.bootstrap, Topics(stack.prefix).commands)
    return {serde.decode_command(codec, r.value).command_id for r in records if r.value}


def test_an_async_command_is_durable_when_answered_then_decided(
    stack: Any, client: httpx.Client
) -> None:
    pid = create(client)
    r = client.post(f"/process/{pid}/progress", json={"progress": 40}, headers=ASYNC)
    command_id = assert_accepted_async(r, pid)
    assert command_id in asyncio.run(_commands_in_kafka(stack))

    status = decided(client, command_id)
    assert status["status"] == "accepted"
    assert status["command"] == "process.progress"
    assert status["aggregate_id"] == pid
    assert status["error"] is None and status["http_status"] is None
    assert POSITION.match(status["position"])
    assert client.get(f"/command/{command_id}").headers["ledger-position"] == status["position"]

    read = client.get(f"/process/{pid}", params={"after": status["position"]})
    assert read.status_code == 200
    assert read.json()["progress"] == 40
    events = client.get(f"/process/{pid}/events", params={"wait": "true", "limit": 100}).json()
    assert command_id in {e["command_id"] for e in events["results"]}


def test_an_async_create_names_the_new_process(client: httpx.Client) -> None:
    r = client.post("/process", json={"type": "scan"}, headers=ASYNC)
    assert r.status_code == 202, r.text
    pid = r.json()["aggregate_id"]
    command_id = assert_accepted_async(r, pid)
    status = decided(client, command_id)
    assert status["status"] == "accepted"
    read = client.get(f"/process/{pid}", params={"after": status["position"]})
    assert read.status_code == 200 and read.json()["status"] == "pending"


def test_a_rejected_async_command_is_reported_as_rejected(stack: Any, client: httpx.Client) -> None:
    pid = create(client)
    assert client.post(f"/process/{pid}/cancel", json={}).status_code == 200
    # Waiting for the decision: 409 at once (unchanged behaviour).
    waited = client.post(f"/process/{pid}/progress", json={"progress": 10})
    assert waited.status_code == 409
    # Not waiting: accepted as durable, and reported rejected once decided.
    r = client.post(f"/process/{pid}/progress", json={"progress": 10}, headers=ASYNC)
    command_id = assert_accepted_async(r, pid)
    status = decided(client, command_id)
    assert status["status"] == "rejected"
    assert status["position"] is None
    assert status["http_status"] == 409
    assert status["error"]["code"] == waited.json()["error"]["code"] == "invalid_state"
    assert status["error"]["message"]

    history = asyncio.run(
        audit_load(stack.bootstrap, Topics(stack.prefix), default_codec(), pid, ["process"])
    )
    entry = next(e for e in history.entries if e.command_id == command_id)
    assert entry.result == "rejected"
    assert entry.reason is not None and entry.reason.startswith("invalid_state")


def test_a_command_status_is_private_to_its_account(stack: Any, client: httpx.Client) -> None:
    pid = create(client)
    r = client.post(f"/process/{pid}/log", json={"message": "hi"}, headers=ASYNC)
    command_id = assert_accepted_async(r, pid)
    other = stack.authenticated(f"o-{uuid.uuid4().hex[:8]}")
    assert other.get(f"/command/{command_id}").status_code == 404
    assert client.get(f"/command/{uuid.uuid4()}").json()["error"]["code"] == "not_found"
    assert decided(client, command_id)["status"] == "accepted"


def test_without_the_preference_a_command_waits_for_the_decision(client: httpx.Client) -> None:
    pid = create(client)
    r = client.post(f"/process/{pid}/progress", json={"progress": 5}, headers={"Prefer": "wait=5"})
    assert r.status_code == 200, r.text
    assert r.json()["progress"] == 5
    assert "preference-applied" not in r.headers


def test_respond_async_does_not_wait_for_the_decider(kafka_bootstrap: str, tmp_path: Path) -> None:
    # A long command timeout: a command that waited for the decider would hang 60 s.
    own = start_stack(kafka_bootstrap, tmp_path / "s", {"RUNLEDGER_COMMAND_TIMEOUT_S": "60"})
    try:
        client = own.authenticated("solo")
        pid = create(client)
        own.kill("decider")
        started = time.monotonic()
        r = client.post(f"/process/{pid}/progress", json={"progress": 70}, headers=ASYNC)
        assert time.monotonic() - started < 10
        command_id = assert_accepted_async(r, pid)
        assert command_id in asyncio.run(_commands_in_kafka(own))
        assert client.get(f"/command/{command_id}").json()["status"] == "pending"

        own.start("decider")
        status = decided(client, command_id, timeout=60)
        assert status["status"] == "accepted"
        read = client.get(f"/process/{pid}", params={"after": status["position"]})
        assert read.json()["progress"] == 70
    finally:
        own.stop()
