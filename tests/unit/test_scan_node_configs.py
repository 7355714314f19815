"""A scan node's ``configs`` reach the scan (issue 3: "respect ``timeout``,
``min_wait_time``, ``max_wait_time`` from the node's configs"): ``min_wait_time`` is
waited after the load, ``max_wait_time`` bounds the page (plus that wait). No Chromium:
the scan is replaced by a fake that records how it was called."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from runners.artifacts import ArtifactStore
from runners.guard import TargetGuard
from runners.jobs_context import JobContext
from runners.jobs_executor import perform
from runners.scan import ScanResult, Timings
from streams.domain.commands import Command
from streams.jobs import Dispatch
from streams.orchestration import Job


def test_a_scan_node_waits_its_min_wait_time_within_its_max_wait_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []

    async def fake_scan(browser: Any, guard: Any, store: Any, url: str, **kw: Any) -> ScanResult:
        calls.append({"url": url, **kw})
        return ScanResult(
            url, url, 200, "a" * 64, "b" * 64, (), Timings(1.0, 2.0, 3.0, None), 1, 10, ()
        )

    monkeypatch.setattr("runners.jobs_scan.scan", fake_scan)
    configs = {"timeout": 50, "min_wait_time": 3, "max_wait_time": 12}
    job = Job(
        job_id="job-1",
        kind="scan",
        run_id="run-1",
        account="acct",
        site_id="site-1",
        node_id="n1",
        attempt=1,
        configs_json=json.dumps(configs),
        data_json=json.dumps({"task_type": "scan", "uri": "/about"}),
    )
    sent: list[Command] = []

    async def publish(command: Command) -> None:
        sent.append(command)

    ctx = JobContext(
        browser=None,  # type: ignore[arg-type]  # the fake scan needs none
        guard=TargetGuard(allow_private=True),
        store=ArtifactStore(tmp_path / "artifacts"),
        baselines=tmp_path / "baselines",
    )
    outcome = asyncio.run(perform(ctx, Dispatch(job, site_url="http://site.test/"), publish))
    assert outcome.passed, outcome
    assert calls == [{"url": "http://site.test/about", "timeout": 15, "settle": 3}]
