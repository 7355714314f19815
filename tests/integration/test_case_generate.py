"""``POST /case/generate`` end to end on the real broker and a real Chromium: the API
answers with a ``case.generate`` Process, the orchestrator dispatches a ``generate``
job, the runner explores the local test site, records a Case and completes the Process
with ``object_id``; the Case then passes on the site when run by ``runners/case.py``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runners.artifacts import ArtifactStore
from runners.browser import CHROMIUM, Browser
from runners.case import Status, run_case
from runners.guard import TargetGuard
from runners.jobs_case import to_step
from tests.integration.conftest import Stack, start_stack
from tests.site.server import TestSite, serve_site

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def site() -> Iterator[TestSite]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup.sh (installs Debian's chromium)")
    with serve_site() as served:
        yield served


@pytest.fixture(scope="module")
def gen_stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(
        kafka_bootstrap,
        tmp_path_factory.mktemp("generate"),
        {"RUNLEDGER_ALLOW_PRIVATE_TARGETS": "1"},
    )
    try:
        stack.start("orchestrator")
        stack.start("runner")
        yield stack
    finally:
        stack.stop()


def _site_id(client: httpx.Client, url: str) -> str:
    created = client.post("/site", json={"site_url": url})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _finished(client: httpx.Client, process_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        found = client.get(f"/process/{process_id}")
        if found.status_code == 200:
            body = found.json()
            if body["status"] in ("completed", "failed", "cancelled"):
                return body
        time.sleep(0.5)
    return body


async def _run(site_url: str, steps: list[dict[str, Any]]) -> Status:
    async with Browser() as browser:
        result = await run_case(
            browser,
            TargetGuard(allow_private=True),
            ArtifactStore(Path("/tmp") / f"gen-artifacts-{uuid.uuid4().hex[:6]}"),
            site_url,
            tuple(to_step(s) for s in steps),
        )
    return result.status


def test_generate_validates_its_fields(gen_stack: Stack) -> None:
    client = gen_stack.authenticated(f"gen-{uuid.uuid4().hex[:8]}")
    site_id = _site_id(client, "http://127.0.0.1:9/")
    for body, field in (
        ({"max_layers": 3}, "site_id"),
        ({"site_id": site_id, "max_layers": 0}, "max_layers"),
        ({"site_id": site_id, "max_layers": 21}, "max_layers"),
        ({"site_id": site_id, "max_layers": "5"}, "max_layers"),
        ({"site_id": site_id, "max_layers": True}, "max_layers"),
        ({"site_id": site_id, "max_layers": 3, "prompt": 7}, "prompt"),
        ({"site_id": str(uuid.uuid4()), "max_layers": 3}, "site_id"),
        ({"id": "x", "site_id": site_id, "max_layers": 3}, "id"),
    ):
        answer = client.post("/case/generate", json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["error"]["field"] == field, answer.text


def test_generate_writes_a_case_that_passes_on_the_site(gen_stack: Stack, site: TestSite) -> None:
    client = gen_stack.authenticated(f"gen-{uuid.uuid4().hex[:8]}")
    site_url = site.base_url + "/"
    site_id = _site_id(client, site_url)
    prompt = "Create a Case that tests my site's contact form."
    answer = client.post(
        "/case/generate", json={"site_id": site_id, "max_layers": 6, "prompt": prompt}
    )
    assert answer.status_code == 201, answer.text
    process = answer.json()
    assert process["type"] == "case.generate"
    assert process["object_id"] is None
    assert process["info"]["site_id"] == site_id
    assert process["info"]["max_layers"] == 6
    assert process["info"]["prompt"] == prompt
    assert answer.headers["Location"] == f"/process/{process['id']}"

    done = _finished(client, process["id"], 120)
    assert done.get("status") == "completed", (
        done,
        gen_stack.log_tail("orchestrator"),
        gen_stack.log_tail("runner"),
    )
    assert done["success"] is True
    assert done["progress"] == 100 or done["progress"] >= 95
    case_id = done["object_id"]
    assert case_id

    found = client.get(f"/case/{case_id}")
    assert found.status_code == 200, found.text
    case = found.json()
    assert case["type"] == "generated"
    assert case["site"] == site_id
    steps = case["steps"]
    assert isinstance(steps, list), case
    assert 1 <= len(steps) <= 6
    # it went to the contact form (the prompt) and filled it in
    kinds = [s["action"]["type"] for s in steps]
    assert kinds[0] == "navigate" and "click" in kinds and "change" in kinds, steps
    assert asyncio.run(_run(site_url, steps)) is Status.PASSED


def test_cancel_stops_a_running_generate_job_within_two_seconds(
    gen_stack: Stack, site: TestSite
) -> None:
    # The Site's start page answers after 20 s: the job is busy in Chromium (exploring)
    # when the Process is cancelled, and would otherwise go on to record a Case.
    client = gen_stack.authenticated(f"gen-{uuid.uuid4().hex[:8]}")
    site_id = _site_id(client, site.url("/slow?s=20"))
    answer = client.post("/case/generate", json={"site_id": site_id, "max_layers": 3})
    assert answer.status_code == 201, answer.text
    process_id = answer.json()["id"]
    deadline = time.monotonic() + 60
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = client.get(f"/process/{process_id}").json()
        if body.get("status") == "running" and "/slow" in site.hits:
            break
        time.sleep(0.1)
    assert body.get("status") == "running", (body, gen_stack.log_tail("runner"))

    cancelled = client.post(f"/process/{process_id}/cancel")
    assert cancelled.status_code in (200, 202), cancelled.text
    deadline = time.monotonic() + 10
    line = ""
    while time.monotonic() < deadline and not line:
        log = gen_stack.log_tail("runner", 400)
        line = next((x for x in log.splitlines() if "after its run was cancelled" in x), "")
        time.sleep(0.2)
    assert line, gen_stack.log_tail("runner")
    latency = float(line.split(" stopped ")[1].split(" s ")[0])
    print(f"generate cancel latency {latency:.3f}s")
    assert latency < 2.0

    done = _finished(client, process_id, 10)
    assert done.get("status") == "cancelled", done
    assert done["object_id"] is None
    time.sleep(1.0)  # a job still running would now record its Case and report on
    cases = client.get("/case", params={"site_id": site_id})
    assert cases.status_code == 200, cases.text
    assert cases.json()["count"] == 0, cases.json()
    assert client.get(f"/process/{process_id}").json()["status"] == "cancelled"
