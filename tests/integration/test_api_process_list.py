"""``GET /process``: a page of the account's Processes ordered by ``time_created``
(then ``id``), with ``limit``/``offset`` pagination whose absolute ``next``/``previous``
links work when followed, and the ``type``, ``object_id``, ``site_id`` and ``status``
filters. Each test lists the Processes of an account of its own.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration


@pytest.fixture
def client(stack: Any) -> httpx.Client:
    """A client of a fresh account: its list holds only what the test creates."""
    return stack.authenticated(f"list-{uuid.uuid4().hex[:8]}")


def create(client: httpx.Client, **fields: Any) -> str:
    body = {"type": "case.generate", **fields}
    r = client.post("/process", json=body, params={"wait": "true"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def send(client: httpx.Client, pid: str, path: str, body: Any = None) -> None:
    r = client.post(f"/process/{pid}/{path}", json=body, params={"wait": "true"})
    assert r.status_code == 200, r.text


def page(client: httpx.Client, url: str, **params: Any) -> dict[str, Any]:
    # httpx replaces a URL's query with ``params`` even when they are empty
    r = client.get(url, params=params or None)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"count", "next", "previous", "results"}
    return body


def ids(body: dict[str, Any]) -> list[str]:
    return [p["id"] for p in body["results"]]


def test_list_is_ordered_by_time_created_and_pages_with_links(
    stack: Any, client: httpx.Client
) -> None:
    created = [create(client, info={"n": n}) for n in range(5)]

    everything = page(client, "/process")
    assert everything["count"] == 5
    assert ids(everything) == created
    assert everything["next"] is None and everything["previous"] is None
    times = [p["time_created"] for p in everything["results"]]
    assert times == sorted(times)

    first = page(client, "/process", limit=2)
    assert first["count"] == 5 and ids(first) == created[:2]
    assert first["previous"] is None
    assert first["next"].startswith(stack.url + "/process?")

    second = page(client, first["next"])
    assert ids(second) == created[2:4]
    assert second["previous"] is not None and second["next"] is not None

    third = page(client, second["next"])
    assert ids(third) == created[4:]
    assert third["count"] == 5 and third["next"] is None

    back = page(client, third["previous"])
    assert ids(back) == created[2:4]
    assert ids(page(client, back["previous"])) == created[:2]

    assert ids(page(client, "/process", limit=3, offset=1)) == created[1:4]
    beyond = page(client, "/process", offset=50)
    assert beyond["count"] == 5 and beyond["results"] == [] and beyond["next"] is None


def test_the_default_page_holds_ten(client: httpx.Client) -> None:
    created = [create(client) for _ in range(11)]
    first = page(client, "/process")
    assert first["count"] == 11 and ids(first) == created[:10]
    assert ids(page(client, first["next"])) == created[10:]


def test_list_filters(client: httpx.Client) -> None:
    scan_a = create(client, type="scan", site="site-a")
    scan_b = create(client, type="scan", site="site-b")
    case_a = create(client, type="case.generate", site="site-a")
    done = create(client, type="case.generate", site="site-b")
    send(client, done, "complete", {"object_id": "case-77"})
    cancelled = create(client, type="scan", site="site-a")
    send(client, cancelled, "cancel", {})
    running = create(client, type="scan")
    send(client, running, "start")

    def listed(**params: Any) -> set[str]:
        body = page(client, "/process", **params)
        assert body["count"] == len(body["results"])
        return set(ids(body))

    assert listed(type="scan") == {scan_a, scan_b, cancelled, running}
    assert listed(type="case.generate") == {case_a, done}
    assert listed(site_id="site-a") == {scan_a, case_a, cancelled}
    assert listed(object_id="case-77") == {done}
    assert listed(status="pending") == {scan_a, scan_b, case_a}
    assert listed(status="completed") == {done}
    assert listed(status="cancelled") == {cancelled}
    assert listed(status="running") == {running}
    assert listed(type="scan", site_id="site-a", status="pending") == {scan_a}
    assert listed(type="nothing-like-this") == set()
    # an empty filter is no filter
    assert len(listed(type="")) == 6


def test_a_filtered_list_pages_within_the_filter(client: httpx.Client) -> None:
    scans = []
    for _ in range(4):
        scans.append(create(client, type="scan"))
        create(client, type="other")
    first = page(client, "/process", type="scan", limit=3)
    assert first["count"] == 4 and ids(first) == scans[:3]
    rest = page(client, first["next"])
    assert ids(rest) == scans[3:]
    assert all(p["type"] == "scan" for p in rest["results"])
