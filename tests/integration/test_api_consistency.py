"""Idempotency-Key and read-your-writes, as docs/api.md promises them.

- A repeated POST or DELETE with the same key is the same command: the decider
  applies it once, and the answer repeats the first one (``Idempotent-Replayed``).
- A command names where its last event landed (``Ledger-Position``); ``?wait=true``
  or ``Prefer: wait=N`` on a command, ``?wait=true``/``Prefer: wait=N``/``?after=P:O``
  on a read wait for the node's projection; a read that cannot catch up answers 504
  ``wait_timeout``.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any

import httpx
import pytest

from schemas import default_codec
from streams import serde
from streams.topics import Topics
from tests.integration.kafka_read import read_topic

pytestmark = pytest.mark.integration

POSITION = re.compile(r"^(\d+):(\d+)$")


@pytest.fixture
def client(stack: Any) -> httpx.Client:
    return stack.authenticated(f"c-{uuid.uuid4().hex[:8]}")


def create(client: httpx.Client, **fields: Any) -> str:
    r = client.post("/process", json={"type": "scan", **fields}, params={"wait": "true"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def count(client: httpx.Client) -> int:
    r = client.get("/process", params={"wait": "true"})
    assert r.status_code == 200, r.text
    return int(r.json()["count"])


async def _ledger_types(stack: Any, aggregate_id: str) -> list[str]:
    """The types of every event of ``aggregate_id`` in ledger.events, read from Kafka."""
    codec = default_codec()
    records = await read_topic(stack.bootstrap, Topics(stack.prefix).events)
    found = [serde.decode_event(codec, r.value) for r in records if r.value is not None]
    mine = sorted((e for e in found if e.aggregate_id == aggregate_id), key=lambda e: e.seq)
    return [e.type for e in mine]


def ledger_types(stack: Any, aggregate_id: str) -> list[str]:
    return asyncio.run(_ledger_types(stack, aggregate_id))


# -- Idempotency-Key -------------------------------------------------------------------


def test_a_repeated_create_with_the_same_key_is_one_process(stack: Any) -> None:
    owner = stack.authenticated(f"idem-a-{uuid.uuid4().hex[:8]}")
    key = f"create-{uuid.uuid4()}"
    body = {"type": "scan", "info": {"n": 1}}

    first = owner.post(
        "/process", json=body, headers={"Idempotency-Key": key}, params={"wait": "true"}
    )
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    pid = first.json()["id"]
    # the Process moves on before the client retries
    moved = owner.post(f"/process/{pid}/progress", json={"progress": 30}, params={"wait": "true"})
    assert moved.status_code == 200, moved.text

    again = owner.post("/process", json=body, headers={"Idempotency-Key": key})
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == pid
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["Ledger-Position"] == first.headers["Ledger-Position"]
    assert again.headers["Ledger-Command-Id"] == first.headers["Ledger-Command-Id"]
    # the body shows the Process as it is now
    assert again.json()["progress"] == 30 and again.json()["status"] == "running"
    assert count(owner) == 1
    assert ledger_types(stack, pid).count("process.created") == 1

    # the same key from another account is another account's request
    other = stack.authenticated(f"idem-b-{uuid.uuid4().hex[:8]}")
    theirs = other.post(
        "/process", json=body, headers={"Idempotency-Key": key}, params={"wait": "true"}
    )
    assert theirs.status_code == 201, theirs.text
    assert "Idempotent-Replayed" not in theirs.headers
    assert theirs.json()["id"] != pid
    assert theirs.json()["progress"] == 0
    assert count(other) == 1
    assert count(owner) == 1
    assert owner.get(f"/process/{theirs.json()['id']}").status_code == 404


def test_a_create_without_a_key_is_a_new_process_each_time(client: httpx.Client) -> None:
    first = create(client)
    second = create(client)
    assert first != second
    assert count(client) == 2


def test_a_repeated_progress_report_with_the_same_key_is_applied_once(
    stack: Any, client: httpx.Client
) -> None:
    pid = create(client)
    key = f"progress-{uuid.uuid4()}"
    url = f"/process/{pid}/progress"
    body = {"progress": 25, "message": "once"}

    first = client.post(url, json=body, headers={"Idempotency-Key": key}, params={"wait": "true"})
    assert first.status_code == 200, first.text
    assert "Idempotent-Replayed" not in first.headers
    again = client.post(url, json=body, headers={"Idempotency-Key": key}, params={"wait": "true"})
    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Ledger-Position"] == first.headers["Ledger-Position"]
    assert again.headers["Ledger-Command-Id"] == first.headers["Ledger-Command-Id"]
    assert again.json()["progress"] == 25

    # the same report without a key is a new command
    third = client.post(url, json=body, params={"wait": "true"})
    assert third.status_code == 200, third.text
    assert "Idempotent-Replayed" not in third.headers
    assert third.headers["Ledger-Position"] != first.headers["Ledger-Position"]

    assert ledger_types(stack, pid) == [
        "process.created",
        "process.started",
        "process.progress",
        "process.progress",
    ]


def test_a_repeated_delete_with_the_same_key_answers_as_the_first(client: httpx.Client) -> None:
    pid = create(client)
    key = f"delete-{uuid.uuid4()}"
    first = client.delete(f"/process/{pid}", headers={"Idempotency-Key": key})
    assert first.status_code == 200, first.text
    again = client.delete(f"/process/{pid}", headers={"Idempotency-Key": key})
    assert again.status_code == 200, again.text
    assert again.json() == {"message": "process deleted successfully"}
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Ledger-Position"] == first.headers["Ledger-Position"]
    # without the key, a second delete meets a deleted Process
    assert client.delete(f"/process/{pid}").status_code == 404


# -- read your writes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "headers"),
    [({"wait": "true"}, {}), ({}, {"Prefer": "wait=5"})],
    ids=["wait-true", "prefer-wait"],
)
def test_wait_true_on_a_command_answers_once_the_node_shows_it(
    client: httpx.Client, params: dict[str, str], headers: dict[str, str]
) -> None:
    pid = create(client)
    for value in (10, 20, 30, 40, 50):
        r = client.post(
            f"/process/{pid}/progress", json={"progress": value}, params=params, headers=headers
        )
        assert r.status_code == 200, r.text
        assert r.headers["Ledger-Applied"] == "true"
        assert POSITION.match(r.headers["Ledger-Position"])
        # no waiting on the read: the node already has it
        assert client.get(f"/process/{pid}").json()["progress"] == value
        assert client.get("/process").json()["results"][0]["progress"] == value


def test_a_command_names_its_position_and_a_read_after_it_sees_it(client: httpx.Client) -> None:
    pid = create(client)
    for value in (11, 22, 33):
        r = client.post(f"/process/{pid}/progress", json={"progress": value})
        assert r.status_code == 200, r.text
        if r.headers["Ledger-Applied"] == "true":  # then a plain read shows it
            assert client.get(f"/process/{pid}").json()["progress"] == value
        position = r.headers["Ledger-Position"]
        assert POSITION.match(position)
        seen = client.get(f"/process/{pid}", params={"after": position})
        assert seen.status_code == 200, seen.text
        assert seen.json()["progress"] == value


def test_ledger_applied_is_true_without_waiting_when_the_node_has_it(
    client: httpx.Client,
) -> None:
    pid = create(client)
    key = {"Idempotency-Key": f"applied-{pid}"}
    path = f"/process/{pid}/progress"
    first = client.post(path, json={"progress": 5}, headers=key, params={"wait": "true"})
    assert first.headers["Ledger-Applied"] == "true"
    # The repeat names the first's position, which the node has applied already.
    again = client.post(path, json={"progress": 5}, headers=key)
    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Ledger-Position"] == first.headers["Ledger-Position"]
    assert again.headers["Ledger-Applied"] == "true"


def test_positions_of_one_process_grow(client: httpx.Client) -> None:
    pid = create(client)
    offsets = []
    partitions = set()
    for value in (1, 2, 3):
        r = client.post(f"/process/{pid}/progress", json={"progress": value})
        match = POSITION.match(r.headers["Ledger-Position"])
        assert match is not None
        partitions.add(match.group(1))
        offsets.append(int(match.group(2)))
    assert len(partitions) == 1  # one aggregate, one partition
    assert offsets == sorted(offsets) and len(set(offsets)) == 3


@pytest.mark.parametrize(
    ("params", "headers"),
    [({"wait": "true"}, {}), ({}, {"Prefer": "wait=5"}), ({"wait": "1"}, {})],
    ids=["wait-true", "prefer-wait", "wait-1"],
)
def test_a_waiting_read_sees_a_command_that_did_not_wait(
    client: httpx.Client, params: dict[str, str], headers: dict[str, str]
) -> None:
    pid = create(client)
    r = client.post(f"/process/{pid}/log", json={"message": "written just now"})
    assert r.status_code == 200, r.text
    seen = client.get(f"/process/{pid}", params=params, headers=headers)
    assert seen.status_code == 200, seen.text
    assert seen.json()["message"] == "written just now"
    listed = client.get("/process", params=params, headers=headers)
    assert listed.json()["results"][0]["message"] == "written just now"


@pytest.mark.parametrize(
    "path", ["/process/{pid}", "/process", "/process/{pid}/runstatus", "/process/{pid}/steps"]
)
def test_a_read_after_a_position_far_beyond_the_end_is_504(client: httpx.Client, path: str) -> None:
    pid = create(client)
    started = time.monotonic()
    r = client.get(
        path.format(pid=pid), params={"after": "0:999999999"}, headers={"Prefer": "wait=1"}
    )
    elapsed = time.monotonic() - started
    assert r.status_code == 504, r.text
    assert r.json()["error"]["code"] == "wait_timeout"
    assert r.json()["error"]["message"]
    assert 0.9 <= elapsed < 5


def test_a_read_after_a_partition_the_ledger_does_not_have_is_400(client: httpx.Client) -> None:
    pid = create(client)
    started = time.monotonic()
    r = client.get(f"/process/{pid}", params={"after": "9999:0"})
    assert r.status_code == 400, r.text
    assert (r.json()["error"]["code"], r.json()["error"]["field"]) == ("invalid_query", "after")
    assert "partition 9999" in r.json()["error"]["message"]
    assert time.monotonic() - started < 2  # answered at once, not after the wait


def test_a_read_after_an_applied_position_does_not_wait(client: httpx.Client) -> None:
    pid = create(client)
    r = client.post(f"/process/{pid}/start", params={"wait": "true"})
    position = r.headers["Ledger-Position"]
    started = time.monotonic()
    seen = client.get(f"/process/{pid}", params={"after": position}, headers={"Prefer": "wait=5"})
    assert seen.status_code == 200 and seen.json()["status"] == "running"
    assert time.monotonic() - started < 1
