"""A scan node's ``data.type`` (the reference's list of checks: ``html``, ``logs``,
``vrt``, ...) decides whether the screenshot is compared with the previous scan's: a
list without ``vrt`` records the scan and moves the baseline on, but never fails on
similarity. No Chromium: the scan is a fake that stores a real PNG."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from runners.artifacts import PNG, ArtifactStore
from runners.guard import TargetGuard
from runners.jobs_context import JobContext
from runners.jobs_executor import perform
from runners.scan import ScanResult, Timings
from streams.domain.commands import Command
from streams.jobs import Dispatch
from streams.orchestration import Job


def _png(color: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), color).save(out, format="PNG")
    return out.getvalue()


class _Site:
    """Scans that see a page whose colour the test sets: a different colour is a
    different screenshot (similarity 0 %)."""

    def __init__(self, store: ArtifactStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.color = (255, 255, 255)
        self.store = store
        monkeypatch.setattr("runners.jobs_scan.scan", self.scan)

    async def scan(self, browser: Any, guard: Any, store: Any, url: str, **kw: Any) -> ScanResult:
        shot = self.store.put(_png(self.color), PNG)
        return ScanResult(
            url, url, 200, "a" * 64, shot, (), Timings(1.0, 2.0, 3.0, None), 1, 10, ()
        )


def _run(ctx: JobContext, n: int, data: dict[str, Any]) -> Any:
    job = Job(
        job_id=f"job-{n}",
        kind="scan",
        run_id=f"run-{n}",
        account="acct",
        site_id="site-1",
        node_id="n1",
        attempt=1,
        configs_json="{}",
        data_json=json.dumps({"task_type": "scan", **data}),
        threshold=data.get("threshold"),
    )

    async def publish(command: Command) -> None:
        pass

    return asyncio.run(perform(ctx, Dispatch(job, site_url="http://site.test/"), publish))


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[JobContext, _Site]:
    store = ArtifactStore(tmp_path / "artifacts")
    ctx = JobContext(
        browser=None,  # type: ignore[arg-type]  # the fake scan needs none
        guard=TargetGuard(allow_private=True),
        store=store,
        baselines=tmp_path / "baselines",
    )
    return ctx, _Site(store, monkeypatch)


def test_a_scan_without_vrt_in_its_checks_never_fails_on_similarity(
    setup: tuple[JobContext, _Site],
) -> None:
    ctx, site = setup
    assert _run(ctx, 1, {"threshold": 99}).passed  # the first scan is the baseline
    site.color = (0, 0, 0)
    unchecked = _run(ctx, 2, {"threshold": 99, "type": ["html", "logs"]})
    assert unchecked.passed, unchecked
    assert "vrt" not in unchecked.result
    # The baseline moved on all the same: the next checked scan compares with it.
    site.color = (255, 255, 255)
    checked = _run(ctx, 3, {"threshold": 99, "type": ["html", "vrt"]})
    assert not checked.passed and checked.result["vrt"]["similarity"] == 0.0


def test_without_a_type_list_every_check_runs(setup: tuple[JobContext, _Site]) -> None:
    ctx, site = setup
    _run(ctx, 1, {"threshold": 99})
    site.color = (0, 0, 0)
    outcome = _run(ctx, 2, {"threshold": 99})
    assert not outcome.passed and "below the threshold" in str(outcome.exception)
