"""The Process endpoints of docs/api.md against a real decider and node: create, read,
the worker reports, control commands (cancel, retry, review/approve, restart, delete)
and the state rules that answer 409.

Every command is sent with ``?wait=true`` so the read that follows sees it.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest

from schemas import default_codec
from streams import serde
from streams.domain.events import Event
from streams.topics import Topics
from tests.integration.kafka_read import read_topic

pytestmark = pytest.mark.integration


PROCESS_FIELDS = {
    "id",
    "site",
    "type",
    "status",
    "progress",
    "success",
    "exception",
    "object_id",
    "info",
    "info_url",
    "result_summary",
    "message",
    "attempt",
    "created_by",
    "time_created",
    "time_started",
    "time_completed",
    "time_updated",
}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
POSITION = re.compile(r"^\d+:\d+$")
THREE_STEPS = [
    {"id": "fetch", "name": "Fetch", "order": 1},
    {"id": "parse", "name": "Parse", "order": 2},
    {"id": "store", "name": "Store", "order": 3},
]


@pytest.fixture(scope="module")
def client(stack: Any) -> httpx.Client:
    return stack.authenticated("acme")


def create(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    r = client.post("/process", json={"type": "case.generate", **fields}, params={"wait": "true"})
    assert r.status_code == 201, r.text
    return r.json()


def send(
    client: httpx.Client, pid: str, path: str, body: Any = None, expect: int = 200
) -> httpx.Response:
    """POST ``/process/{pid}/{path}`` and wait for the node to apply it."""
    r = client.post(f"/process/{pid}/{path}", json=body, params={"wait": "true"})
    assert r.status_code == expect, r.text
    return r


def get(client: httpx.Client, path: str) -> dict[str, Any]:
    r = client.get(path)
    assert r.status_code == 200, r.text
    return r.json()


def assert_error(r: httpx.Response, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"code", "message", "field"}
    assert error["code"] == code
    assert error["message"]
    return str(error["message"])


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def seconds_between(start: str, end: str) -> float:
    return (when(end) - when(start)).total_seconds()


async def _ledger(stack: Any, aggregate_id: str) -> list[Event]:
    """Every event of ``aggregate_id`` in ledger.events, read straight from Kafka."""
    codec = default_codec()
    records = await read_topic(stack.bootstrap, Topics(stack.prefix).events)
    found = [serde.decode_event(codec, r.value) for r in records if r.value is not None]
    return sorted((e for e in found if e.aggregate_id == aggregate_id), key=lambda e: e.seq)


def ledger_types(stack: Any, aggregate_id: str) -> list[str]:
    return [e.type for e in asyncio.run(_ledger(stack, aggregate_id))]


# -- create and read -----------------------------------------------------------------


def test_create_answers_201_with_location_and_the_process(client: httpx.Client) -> None:
    body = {
        "type": "case.generate",
        "site": "72eba795-becb-41b0-8afd-af8481e9570c",
        "info": {"task_id": "5de0", "depth": 2},
        "steps": THREE_STEPS,
    }
    r = client.post("/process", json=body, params={"wait": "true"})

    assert r.status_code == 201, r.text
    p = r.json()
    assert set(p) == PROCESS_FIELDS
    assert str(uuid.UUID(p["id"])) == p["id"]
    assert r.headers["Location"] == f"/process/{p['id']}"
    assert POSITION.match(r.headers["Ledger-Position"])
    assert r.headers["Ledger-Command-Id"]
    assert r.headers["Ledger-Applied"] == "true"
    assert "Idempotent-Replayed" not in r.headers
    assert p["type"] == "case.generate"
    assert p["site"] == body["site"]
    assert p["info"] == body["info"]
    assert p["status"] == "pending"
    assert p["progress"] == 0
    assert p["success"] is False
    assert p["attempt"] == 1
    assert p["created_by"] == "token:acme"
    for empty in ("exception", "object_id", "info_url", "result_summary", "message"):
        assert p[empty] is None, empty
    assert p["time_started"] is None and p["time_completed"] is None
    assert ISO.match(p["time_created"]) and p["time_updated"] == p["time_created"]

    assert get(client, r.headers["Location"]) == p


def test_create_without_optional_fields_has_empty_info_and_no_steps(
    client: httpx.Client,
) -> None:
    p = create(client, type="scan")
    assert p["info"] == {} and p["site"] is None
    steps = get(client, f"/process/{p['id']}/steps")
    assert steps == {"count": 0, "next": None, "previous": None, "results": []}


def test_steps_are_a_page_in_order(client: httpx.Client) -> None:
    p = create(
        client,
        steps=[
            {"id": "b", "order": 2},
            {"id": "a", "name": "First", "order": 1},
            {"id": "c", "order": 3, "enabled": False},
        ],
    )

    page = get(client, f"/process/{p['id']}/steps")
    assert page["count"] == 3 and page["next"] is None and page["previous"] is None
    assert page["results"] == [
        {"id": "a", "name": "First", "order": 1, "enabled": True, "status": "pending"},
        {"id": "b", "name": "b", "order": 2, "enabled": True, "status": "pending"},
        {"id": "c", "name": "c", "order": 3, "enabled": False, "status": "pending"},
    ]

    first = get(client, f"/process/{p['id']}/steps?limit=2")
    assert [s["id"] for s in first["results"]] == ["a", "b"]
    assert first["previous"] is None
    second = client.get(first["next"]).json()
    assert [s["id"] for s in second["results"]] == ["c"]
    assert second["next"] is None
    back = client.get(second["previous"]).json()
    assert [s["id"] for s in back["results"]] == ["a", "b"]


# -- worker reports ------------------------------------------------------------------


def test_worker_reports_drive_a_process_to_completed(client: httpx.Client) -> None:
    pid = create(client, steps=THREE_STEPS[:1])["id"]

    started = send(client, pid, "start").json()
    assert started["status"] == "running"
    assert ISO.match(started["time_started"])
    run = get(client, f"/process/{pid}/runstatus")
    assert run == {
        "id": pid,
        "status": "running",
        "attempt": 1,
        "time_started": started["time_started"],
        "time_completed": None,
        "duration_seconds": None,
    }

    p = send(client, pid, "progress", {"progress": 40, "message": "crawling page 4"}).json()
    assert p["progress"] == 40.0 and p["message"] == "crawling page 4"
    assert get(client, f"/process/{pid}") == p

    p = send(client, pid, "log", {"message": "found 12 links", "level": "warning"}).json()
    assert p["message"] == "found 12 links"
    assert p["progress"] == 40.0

    step = get(client, f"/process/{pid}/steps/fetch/runstatus")
    assert step["status"] == "pending" and step["time_started"] is None
    send(client, pid, "steps/fetch/start")
    step = get(client, f"/process/{pid}/steps/fetch/runstatus")
    assert step["status"] == "running"
    assert ISO.match(step["time_started"]) and step["time_completed"] is None
    assert step["duration_seconds"] is None

    send(client, pid, "steps/fetch/complete", {"message": "fetched 10 pages"})
    step = get(client, f"/process/{pid}/steps/fetch/runstatus")
    assert set(step) == {
        "id",
        "status",
        "time_started",
        "time_completed",
        "duration_seconds",
        "message",
        "exception",
    }
    assert step["id"] == "fetch" and step["status"] == "completed"
    assert step["message"] == "fetched 10 pages" and step["exception"] is None
    assert step["duration_seconds"] == pytest.approx(
        seconds_between(step["time_started"], step["time_completed"]), abs=1e-6
    )
    assert step["duration_seconds"] >= 0
    assert get(client, f"/process/{pid}/steps")["results"][0]["status"] == "completed"

    summary = {"cases": 3, "pages": ["/a", "/b"]}
    done = send(client, pid, "complete", {"object_id": "case-42", "result_summary": summary})
    p = done.json()
    assert p["status"] == "completed" and p["success"] is True
    assert p["progress"] == 100.0
    assert p["object_id"] == "case-42" and p["result_summary"] == summary
    assert ISO.match(p["time_completed"])
    assert get(client, f"/process/{pid}") == p

    run = get(client, f"/process/{pid}/runstatus")
    assert run["status"] == "completed"
    assert run["time_started"] == started["time_started"]
    assert run["time_completed"] == p["time_completed"]
    assert run["duration_seconds"] == pytest.approx(
        seconds_between(run["time_started"], run["time_completed"]), abs=1e-6
    )
    assert run["duration_seconds"] > 0


def test_a_report_on_a_pending_process_starts_it(client: httpx.Client) -> None:
    pid = create(client)["id"]
    p = send(client, pid, "progress", {"progress": 12.5}).json()
    assert p["status"] == "running" and p["progress"] == 12.5
    assert ISO.match(p["time_started"])

    other = create(client, steps=THREE_STEPS)["id"]
    p = send(client, other, "steps/parse/start").json()
    assert p["status"] == "running"
    assert get(client, f"/process/{other}/steps/parse/runstatus")["status"] == "running"


@pytest.mark.parametrize(
    "body",
    [{"progress": 101}, {"progress": -1}, {"progress": "abc"}, {"message": "no progress"}],
    ids=["101", "-1", "abc", "missing"],
)
def test_progress_outside_0_to_100_is_422(client: httpx.Client, body: dict[str, Any]) -> None:
    pid = create(client)["id"]
    r = client.post(f"/process/{pid}/progress", json=body)
    assert_error(r, 422, "invalid_field")
    assert r.json()["error"]["field"] == "progress"
    p = get(client, f"/process/{pid}?wait=true")
    assert p["status"] == "pending" and p["progress"] == 0


def test_progress_bounds_are_accepted(client: httpx.Client) -> None:
    pid = create(client)["id"]
    assert send(client, pid, "progress", {"progress": 0}).json()["progress"] == 0
    assert send(client, pid, "progress", {"progress": 100}).json()["progress"] == 100


def test_a_failed_step_keeps_its_exception_and_the_process_running(
    client: httpx.Client,
) -> None:
    pid = create(client, steps=THREE_STEPS)["id"]
    send(client, pid, "steps/fetch/start")
    p = send(client, pid, "steps/fetch/fail", {"exception": "TimeoutError: 30 s"}).json()
    assert p["status"] == "running"
    step = get(client, f"/process/{pid}/steps/fetch/runstatus")
    assert step["status"] == "failed"
    assert step["exception"] == "TimeoutError: 30 s"
    assert ISO.match(step["time_completed"])

    r = client.post(f"/process/{pid}/steps/fetch/complete", json={})
    assert "fetch" in assert_error(r, 409, "invalid_state")


def test_fail_records_the_exception(client: httpx.Client) -> None:
    pid = create(client, steps=THREE_STEPS)["id"]
    send(client, pid, "steps/fetch/start")
    p = send(client, pid, "fail", {"exception": "ValueError: bad page"}).json()
    assert p["status"] == "failed" and p["success"] is False
    assert p["exception"] == "ValueError: bad page"
    assert ISO.match(p["time_completed"])
    assert get(client, f"/process/{pid}") == p
    # a step that was running when the Process failed is failed too
    assert get(client, f"/process/{pid}/steps/fetch/runstatus")["status"] == "failed"


# -- control: cancel, retry, review and approve ---------------------------------------


def _pending(client: httpx.Client) -> str:
    return str(create(client, steps=THREE_STEPS)["id"])


def _running(client: httpx.Client) -> str:
    pid = _pending(client)
    send(client, pid, "steps/fetch/start")
    return pid


def _waiting_review(client: httpx.Client) -> str:
    pid = _running(client)
    send(client, pid, "review", {"result_summary": {"ok": 1}})
    return pid


def _completed(client: httpx.Client) -> str:
    pid = _running(client)
    send(client, pid, "complete", {})
    return pid


def _failed(client: httpx.Client) -> str:
    pid = _running(client)
    send(client, pid, "fail", {"exception": "boom"})
    return pid


def _cancelled(client: httpx.Client) -> str:
    pid = _running(client)
    send(client, pid, "cancel", {})
    return pid


@pytest.mark.parametrize("make", [_pending, _running, _waiting_review])
def test_cancel_from_an_active_status(client: httpx.Client, make: Any) -> None:
    pid = make(client)
    p = send(client, pid, "cancel", {"reason": "user asked"}).json()
    assert p["status"] == "cancelled" and p["success"] is False
    assert ISO.match(p["time_completed"])
    assert get(client, f"/process/{pid}")["status"] == "cancelled"
    steps = {s["id"]: s["status"] for s in get(client, f"/process/{pid}/steps")["results"]}
    # a running step is cancelled with its Process; the others stay as they were
    assert steps["fetch"] == ("pending" if make is _pending else "cancelled")
    assert steps["parse"] == "pending"


def test_cancel_without_a_body(client: httpx.Client) -> None:
    pid = _pending(client)
    assert send(client, pid, "cancel").json()["status"] == "cancelled"


@pytest.mark.parametrize(
    ("make", "status"),
    [(_completed, "completed"), (_failed, "failed"), (_cancelled, "cancelled")],
)
def test_cancel_of_an_ended_process_is_409_with_the_reason(
    client: httpx.Client, make: Any, status: str
) -> None:
    pid = make(client)
    message = assert_error(client.post(f"/process/{pid}/cancel", json={}), 409, "invalid_state")
    assert pid in message and status in message
    assert get(client, f"/process/{pid}")["status"] == status


def test_a_late_progress_report_after_a_cancel_is_409(client: httpx.Client) -> None:
    pid = _running(client)
    send(client, pid, "progress", {"progress": 30})
    send(client, pid, "cancel", {"reason": "stop"})

    r = client.post(f"/process/{pid}/progress", json={"progress": 90, "message": "late"})
    assert "cancelled" in assert_error(r, 409, "invalid_state")
    p = get(client, f"/process/{pid}?wait=true")
    assert p["status"] == "cancelled" and p["progress"] == 30 and p["message"] != "late"
    for late in ("steps/parse/start", "complete", "review"):
        assert_error(client.post(f"/process/{pid}/{late}", json={}), 409, "invalid_state")


def test_retry_a_failed_process(client: httpx.Client) -> None:
    pid = _failed(client)
    p = send(client, pid, "retry").json()
    assert p["status"] == "pending"
    assert p["attempt"] == 2
    assert p["exception"] is None and p["progress"] == 0
    assert p["time_started"] is None and p["time_completed"] is None
    steps = get(client, f"/process/{pid}/steps")["results"]
    assert [s["status"] for s in steps] == ["pending"] * 3
    assert get(client, f"/process/{pid}/runstatus")["attempt"] == 2

    # the second attempt runs and fails again: a second retry makes attempt 3
    send(client, pid, "fail", {"exception": "again"})
    assert send(client, pid, "retry").json()["attempt"] == 3


@pytest.mark.parametrize(
    ("make", "status"),
    [
        (_pending, "pending"),
        (_running, "running"),
        (_waiting_review, "waiting_review"),
        (_completed, "completed"),
        (_cancelled, "cancelled"),
    ],
)
def test_retry_is_409_unless_failed(client: httpx.Client, make: Any, status: str) -> None:
    pid = make(client)
    message = assert_error(client.post(f"/process/{pid}/retry"), 409, "invalid_state")
    assert status in message
    p = get(client, f"/process/{pid}")
    assert p["status"] == status and p["attempt"] == 1


def test_review_then_approve_completes(client: httpx.Client) -> None:
    pid = _running(client)
    summary = {"cases": 4}
    p = send(client, pid, "review", {"result_summary": summary}).json()
    assert p["status"] == "waiting_review" and p["result_summary"] == summary
    assert_error(
        client.post(f"/process/{pid}/progress", json={"progress": 5}), 409, "invalid_state"
    )

    p = send(client, pid, "approve").json()
    assert p["status"] == "completed" and p["success"] is True
    assert p["result_summary"] == summary
    assert get(client, f"/process/{pid}") == p
    assert_error(client.post(f"/process/{pid}/approve"), 409, "invalid_state")


@pytest.mark.parametrize("make", [_pending, _running, _completed])
def test_approve_is_409_unless_waiting_review(client: httpx.Client, make: Any) -> None:
    pid = make(client)
    assert_error(client.post(f"/process/{pid}/approve"), 409, "invalid_state")


@pytest.mark.parametrize("make", [_pending, _completed])
def test_review_is_409_unless_running(client: httpx.Client, make: Any) -> None:
    pid = make(client)
    assert_error(client.post(f"/process/{pid}/review", json={}), 409, "invalid_state")


def test_start_is_409_unless_pending(client: httpx.Client) -> None:
    pid = _running(client)
    assert "running" in assert_error(client.post(f"/process/{pid}/start"), 409, "invalid_state")


# -- restart from a step ----------------------------------------------------------------


def test_restart_from_a_step_resets_it_and_later_steps(client: httpx.Client) -> None:
    pid = _pending(client)
    for step in ("fetch", "parse"):
        send(client, pid, f"steps/{step}/start")
        send(client, pid, f"steps/{step}/complete", {"message": f"{step} done"})
    send(client, pid, "steps/store/start")
    send(client, pid, "steps/store/fail", {"exception": "disk full"})
    send(client, pid, "fail", {"exception": "store failed"})
    fetch_before = get(client, f"/process/{pid}/steps/fetch/runstatus")

    r = send(client, pid, "steps/parse/restart")
    p = r.json()
    assert set(p) == PROCESS_FIELDS  # restart answers with the Process, like every command
    assert p["status"] == "pending" and p["attempt"] == 2
    assert p["exception"] is None and p["time_completed"] is None

    steps = {s["id"]: s["status"] for s in get(client, f"/process/{pid}/steps")["results"]}
    assert steps == {"fetch": "completed", "parse": "pending", "store": "pending"}
    assert get(client, f"/process/{pid}/steps/fetch/runstatus") == fetch_before
    for reset in ("parse", "store"):
        status = get(client, f"/process/{pid}/steps/{reset}/runstatus")
        assert status["time_started"] is None and status["time_completed"] is None
        assert status["message"] is None and status["exception"] is None
    assert get(client, f"/process/{pid}/runstatus")["attempt"] == 2

    # the run goes on from the restarted step
    send(client, pid, "steps/parse/start")
    assert get(client, f"/process/{pid}")["status"] == "running"


def test_restart_from_an_unknown_step_is_404(client: httpx.Client) -> None:
    pid = _failed(client)
    r = client.post(f"/process/{pid}/steps/nope/restart")
    assert_error(r, 404, "not_found")
    assert r.json()["error"]["field"] == "step_id"
    p = get(client, f"/process/{pid}")
    assert p["status"] == "failed" and p["attempt"] == 1


# -- delete ----------------------------------------------------------------------------


def test_delete_removes_the_process_from_every_read(stack: Any, client: httpx.Client) -> None:
    pid = _completed(client)
    kept = _completed(client)

    r = client.delete(f"/process/{pid}", params={"wait": "true"})
    assert r.status_code == 200, r.text
    assert r.json() == {"message": "process deleted successfully"}
    assert r.headers["Ledger-Applied"] == "true"
    assert POSITION.match(r.headers["Ledger-Position"])

    for path in ("", "/runstatus", "/steps", "/events", "/steps/fetch/runstatus"):
        assert_error(client.get(f"/process/{pid}{path}"), 404, "not_found")
    listed = get(client, "/process?limit=1000")
    ids = {p["id"] for p in listed["results"]}
    assert pid not in ids and kept in ids
    for command in ("cancel", "retry", "progress", "steps/fetch/restart"):
        body = {"progress": 1} if command == "progress" else None
        r = client.post(f"/process/{pid}/{command}", json=body)
        assert_error(r, 404, "not_found")
    assert_error(client.delete(f"/process/{pid}"), 404, "not_found")
    # the history stays in the ledger
    assert ledger_types(stack, pid)[-1] == "process.deleted"


def test_delete_of_a_running_process_cancels_it_first(stack: Any, client: httpx.Client) -> None:
    pid = _running(client)
    r = client.delete(f"/process/{pid}", params={"wait": "true"})
    assert r.status_code == 200, r.text
    assert_error(client.get(f"/process/{pid}"), 404, "not_found")

    events = asyncio.run(_ledger(stack, pid))
    assert [e.type for e in events][-2:] == ["process.cancelled", "process.deleted"]
    cancelled, deleted = events[-2:]
    assert cancelled.data.reason == "deleted"  # type: ignore[attr-defined]
    assert cancelled.command_id == deleted.command_id == r.headers["Ledger-Command-Id"]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


def test_delete_of_an_ended_process_does_not_cancel_it(stack: Any, client: httpx.Client) -> None:
    pid = _failed(client)
    r = client.delete(f"/process/{pid}", params={"wait": "true"})
    assert r.status_code == 200, r.text
    types = ledger_types(stack, pid)
    assert types[-2:] == ["process.failed", "process.deleted"]
