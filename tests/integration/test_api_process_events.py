"""``GET /process/{id}/events``: the append-only history of a Process as docs/api.md
describes it — a page of ``{id, seq, type, status, message, created_at, actor,
command_id, data, position}`` in ``seq`` order, where ``status`` is the Process's
status after the event and ``message`` the event's message, exception or reason.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration


EVENT_FIELDS = {
    "id",
    "seq",
    "type",
    "status",
    "message",
    "created_at",
    "actor",
    "command_id",
    "correlation_id",
    "data",
    "position",
}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@pytest.fixture(scope="module")
def client(stack: Any) -> httpx.Client:
    return stack.authenticated("acme")


def send(client: httpx.Client, path: str, body: Any = None) -> httpx.Response:
    r = client.post(path, json=body, params={"wait": "true"})
    assert r.status_code in (200, 201), r.text
    return r


def all_events(client: httpx.Client, pid: str, limit: int) -> list[dict[str, Any]]:
    """Every event of ``pid``, page by page through the ``next`` links."""
    r = client.get(f"/process/{pid}/events", params={"limit": limit})
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["previous"] is None
    events = list(page["results"])
    while page["next"] is not None:
        assert len(page["results"]) == limit
        r = client.get(page["next"])
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["previous"] is not None
        events += page["results"]
    assert len(events) == page["count"]
    return events


def test_events_are_the_history_in_seq_order(client: httpx.Client) -> None:
    steps = [{"id": "fetch", "order": 1}, {"id": "parse", "order": 2}]
    sent: list[tuple[httpx.Response, list[tuple[str, str, str | None]]]] = []

    created = send(client, "/process", {"type": "case.generate", "steps": steps})
    pid = created.json()["id"]
    sent.append((created, [("process.created", "pending", None)]))
    # a progress report on a pending Process records `started` first, in the same command
    r = send(client, f"/process/{pid}/progress", {"progress": 40, "message": "page 4 of 10"})
    sent.append(
        (
            r,
            [("process.started", "running", None), ("process.progress", "running", "page 4 of 10")],
        )
    )
    r = send(client, f"/process/{pid}/log", {"message": "found 12 links"})
    sent.append((r, [("process.log", "running", "found 12 links")]))
    r = send(client, f"/process/{pid}/steps/fetch/start")
    sent.append((r, [("process.step_started", "running", None)]))
    r = send(client, f"/process/{pid}/steps/fetch/complete", {"message": "fetched"})
    sent.append((r, [("process.step_completed", "running", "fetched")]))
    r = send(client, f"/process/{pid}/steps/parse/start")
    sent.append((r, [("process.step_started", "running", None)]))
    r = send(client, f"/process/{pid}/steps/parse/fail", {"exception": "SyntaxError"})
    sent.append((r, [("process.step_failed", "running", "SyntaxError")]))
    r = send(client, f"/process/{pid}/fail", {"exception": "parse failed"})
    sent.append((r, [("process.failed", "failed", "parse failed")]))
    r = send(client, f"/process/{pid}/retry")
    sent.append((r, [("process.retried", "pending", None)]))
    r = send(client, f"/process/{pid}/cancel", {"reason": "not needed any more"})
    sent.append((r, [("process.cancelled", "cancelled", "not needed any more")]))

    events = all_events(client, pid, limit=3)

    expected = [item for _, items in sent for item in items]
    assert [(e["type"], e["status"], e["message"]) for e in events] == expected
    assert [e["seq"] for e in events] == list(range(1, len(expected) + 1))
    assert len({e["id"] for e in events}) == len(events)
    for event in events:
        assert set(event) == EVENT_FIELDS
        assert event["actor"] == "token:acme"
        assert ISO.match(event["created_at"])
        assert isinstance(event["data"], dict)
    # every event names the command that caused it, and the last event of a command
    # sits at that command's Ledger-Position
    i = 0
    for response, items in sent:
        mine = events[i : i + len(items)]
        i += len(items)
        assert {e["command_id"] for e in mine} == {response.headers["Ledger-Command-Id"]}
        assert mine[-1]["position"] == response.headers["Ledger-Position"]
    assert events[0]["created_at"] == created.json()["time_created"]
    progress = events[2]
    assert progress["data"]["progress"] == 40.0
    assert progress["data"]["message"] == "page 4 of 10"


def test_events_pages_follow_limit_and_offset(client: httpx.Client) -> None:
    pid = send(client, "/process", {"type": "scan"}).json()["id"]
    for n in range(1, 5):
        send(client, f"/process/{pid}/progress", {"progress": n * 10})
    # created, started, 4 x progress
    everything = client.get(f"/process/{pid}/events", params={"limit": 100}).json()
    assert everything["count"] == 6 and everything["next"] is None
    assert [e["seq"] for e in everything["results"]] == [1, 2, 3, 4, 5, 6]

    middle = client.get(f"/process/{pid}/events", params={"limit": 2, "offset": 2}).json()
    assert middle["count"] == 6
    assert [e["seq"] for e in middle["results"]] == [3, 4]
    assert [e["data"]["progress"] for e in middle["results"]] == [10.0, 20.0]
    before = client.get(middle["previous"]).json()
    assert [e["seq"] for e in before["results"]] == [1, 2]
    after = client.get(middle["next"]).json()
    assert [e["seq"] for e in after["results"]] == [5, 6]
    assert after["next"] is None


def test_events_of_a_waiting_review_and_approved_process(client: httpx.Client) -> None:
    pid = send(client, "/process", {"type": "scan"}).json()["id"]
    send(client, f"/process/{pid}/start")
    send(client, f"/process/{pid}/review", {"result_summary": {"ok": True}})
    send(client, f"/process/{pid}/approve")
    events = all_events(client, pid, limit=10)
    assert [(e["type"], e["status"]) for e in events] == [
        ("process.created", "pending"),
        ("process.started", "running"),
        ("process.waiting_review", "waiting_review"),
        ("process.completed", "completed"),
    ]
