"""Review of the runners: the case runner's edges with a fake page (no Chromium)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from runners.artifacts import ArtifactStore
from runners.browser import ConsoleEntry
from runners.case import (
    Action,
    ActionType,
    Assertion,
    AssertionType,
    CaseLimits,
    CaseResult,
    Element,
    MatchMode,
    Status,
    Step,
    run_case,
)
from runners.errors import PageFailed
from runners.guard import TargetGuard
from runners.jobs_context import JobContext
from runners.jobs_executor import perform
from runners.scan import ScanResult, Timings
from streams.domain.command_fields import MAX_JSON
from streams.domain.commands import Command
from streams.domain.flowrun_messages import NodePass
from streams.jobs import Dispatch
from streams.orchestration import Job

ALLOW = TargetGuard(allow_private=True)
PNG_BYTES = b"\x89PNG\r\n\x1a\nfake"


class FakeTab:
    """The page operations ``run_case`` uses; each element's text comes from ``texts``."""

    def __init__(self, texts: dict[str, str]) -> None:
        self.texts = texts
        self.visited: list[str] = []
        self.screenshot_timeouts: list[float] = []

    async def goto(self, url: str, timeout: float) -> int:
        self.visited.append(url)
        return 200

    async def text(self, selector: str, timeout: float) -> str:
        if selector not in self.texts:
            raise PageFailed(f"reading the text of {selector}: no such element")
        return self.texts[selector]

    async def wait_for(self, selector: str, state: str, timeout: float) -> None:
        if selector not in self.texts:
            raise PageFailed(f"waiting for {selector} to be {state}: timeout")

    async def click(self, selector: str, timeout: float) -> None:
        await self.wait_for(selector, "visible", timeout)

    async def fill(self, selector: str, value: str, timeout: float) -> None:
        await self.wait_for(selector, "visible", timeout)

    async def press(self, selector: str | None, key: str, timeout: float) -> None:
        return None

    async def pause(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def screenshot(self, full_page: bool = True, timeout: float = 30.0) -> bytes:
        self.screenshot_timeouts.append(timeout)
        return PNG_BYTES


class FakeBrowser:
    def __init__(self, tab: FakeTab) -> None:
        self.tab = tab

    @asynccontextmanager
    async def open_page(
        self, request_filter: Any = None, init_script: str | None = None, *, egress: Any = None
    ) -> AsyncIterator[FakeTab]:
        yield self.tab


def run(
    tab: FakeTab, steps: tuple[Step, ...], tmp_path: Path, limits: CaseLimits | None = None
) -> CaseResult:
    async def go() -> CaseResult:
        return await run_case(
            FakeBrowser(tab),  # type: ignore[arg-type]
            ALLOW,
            ArtifactStore(tmp_path),
            "http://site.test/",
            steps,
            limits=limits or CaseLimits(step_timeout=1, max_wait=1),
        )

    return asyncio.run(go())


def match(value: str, mode: MatchMode, selector: str = "#t") -> Step:
    return Step(assertion=Assertion(AssertionType.MATCH, Element(selector), value, mode))


# -- match: a regular expression that backtracks for minutes ------------------------------


def test_a_catastrophic_regex_times_out_without_freezing_the_event_loop(tmp_path: Path) -> None:
    # (a+)+$ on 28 a's and a '!' backtracks for ~10 s of CPU in Python's re. Searched
    # on the event loop it froze the runner (poll loop, heartbeats, cancels) that long;
    # it must fail the part at the step timeout and leave the loop running meanwhile.
    tab = FakeTab({"#t": "a" * 28 + "!"})
    gaps: list[float] = []

    async def go() -> tuple[CaseResult, float]:
        stop = asyncio.Event()

        async def ticker() -> None:
            last = time.monotonic()
            while not stop.is_set():
                await asyncio.sleep(0.02)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        ticking = asyncio.create_task(ticker())
        started = time.monotonic()
        result = await run_case(
            FakeBrowser(tab),  # type: ignore[arg-type]
            ALLOW,
            ArtifactStore(tmp_path),
            "http://site.test/",
            (match(r"(a+)+$", MatchMode.REGEX),),
            limits=CaseLimits(step_timeout=1, max_wait=1),
        )
        elapsed = time.monotonic() - started
        stop.set()
        await ticking
        return result, elapsed

    result, elapsed = asyncio.run(go())
    assert result.status is Status.FAILED
    part = result.steps[0].assertion
    assert part.status is Status.FAILED
    assert part.exception is not None and "did not finish within 1s" in part.exception
    assert elapsed < 5, elapsed
    assert max(gaps) < 0.5, f"the event loop stalled {max(gaps):.1f}s"


def test_regex_match_passes_fails_and_names_the_pattern(tmp_path: Path) -> None:
    tab = FakeTab({"#t": "  Order #1234 confirmed  "})
    passed = run(tab, (match(r"#\d{4} conf", MatchMode.REGEX),), tmp_path)
    assert passed.status is Status.PASSED
    failed = run(tab, (match(r"^#\d+$", MatchMode.REGEX),), tmp_path)
    part = failed.steps[0].assertion
    assert part.status is Status.FAILED
    assert part.exception == "text 'Order #1234 confirmed' does not match /^#\\d+$/"


def test_an_invalid_regex_fails_the_part_with_a_sentence(tmp_path: Path) -> None:
    # The API rejects it on create; a job still carrying one must fail, not crash.
    result = run(FakeTab({"#t": "x"}), (match("(unclosed", MatchMode.REGEX),), tmp_path)
    part = result.steps[0].assertion
    assert part.status is Status.FAILED
    assert part.exception is not None
    assert part.exception.startswith("bad regular expression '(unclosed'")


# -- navigate: a path urllib cannot join ----------------------------------------------------


def test_a_navigate_path_that_is_no_url_fails_its_part(tmp_path: Path) -> None:
    # "//[bad" passes the Case checks (no "://" in it) but urljoin raises ValueError:
    # the step must fail with a sentence and a screenshot, not crash the job.
    tab = FakeTab({"#t": "x"})
    steps = (
        Step(Action(ActionType.NAVIGATE, path="//[bad")),
        Step(assertion=Assertion(AssertionType.EXISTS, Element("#t"))),
    )
    result = run(tab, steps, tmp_path)
    assert result.status is Status.FAILED
    first = result.steps[0]
    assert first.action.status is Status.FAILED
    assert first.action.exception is not None and "//[bad" in first.action.exception
    assert first.screenshot_hash is not None
    assert result.steps[1].status is Status.SKIPPED


# -- scan: a node uri urllib cannot join ----------------------------------------------------


def scan_dispatch(uri: str) -> Dispatch:
    job = Job(
        job_id="job-1",
        kind="scan",
        run_id="run-1",
        account="acct",
        site_id="site-1",
        node_id="n1",
        attempt=1,
        configs_json="{}",
        data_json=json.dumps({"task_type": "scan", "uri": uri}),
    )
    return Dispatch(job, site_url="http://site.test/")


@pytest.mark.parametrize("uri", ["//[bad", "http://[::1"])
def test_a_scan_uri_that_is_no_url_fails_the_node_with_a_sentence(uri: str, tmp_path: Path) -> None:
    # A scan node's uri is not checked by the Flow; "//[bad" made urljoin raise
    # ValueError and the node failed as a runner crash ("runner error: ValueError").
    sent: list[Command] = []

    async def publish(command: Command) -> None:
        sent.append(command)

    ctx = JobContext(
        browser=None,  # type: ignore[arg-type]  # never reached
        guard=ALLOW,
        store=ArtifactStore(tmp_path / "artifacts"),
        baselines=tmp_path / "baselines",
    )
    outcome = asyncio.run(perform(ctx, scan_dispatch(uri), publish))
    assert not outcome.passed
    assert outcome.exception is not None
    assert "runner error" not in outcome.exception
    assert uri in outcome.exception
    assert [type(c.body).__name__ for c in sent] == ["NodeFail"]


# -- the failure screenshot is a page operation: bounded by max_wait_time ------------------


def test_the_failure_screenshot_is_bounded_by_the_step_timeout(tmp_path: Path) -> None:
    tab = FakeTab({})
    steps = (Step(assertion=Assertion(AssertionType.EXISTS, Element("#gone"))),)
    result = run(tab, steps, tmp_path, CaseLimits(step_timeout=4, max_wait=1))
    assert result.status is Status.FAILED
    assert result.steps[0].screenshot_hash is not None
    assert tab.screenshot_timeouts == [4]


# -- scan: what a page logs must not make the node's result unpublishable ------------------


def test_a_huge_console_message_keeps_the_scan_result_within_the_json_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A page that logs 2 MB (or makes thousands of blocked requests) gave a NodePass
    # larger than Kafka takes: the publish failed, and the worker ran the job again and
    # again (every 2 s, forever) with the node stuck in ``working``.
    huge = ScanResult(
        requested_url="http://site.test/",
        final_url="http://site.test/",
        status=200,
        html_hash="a" * 64,
        screenshot_hash="b" * 64,
        console=tuple(ConsoleEntry("log", f"{i}:" + "x" * 2_000_000) for i in range(3)),
        timings=Timings(1.0, 2.0, 3.0, None),
        requests=5000,
        bytes=10,
        blocked_requests=tuple(f"http://10.0.0.1/{i}?" + "q" * 3000 for i in range(5000)),
    )

    async def fake_scan(*args: Any, **kwargs: Any) -> ScanResult:
        return huge

    monkeypatch.setattr("runners.jobs_scan.scan", fake_scan)
    sent: list[Command] = []

    async def publish(command: Command) -> None:
        sent.append(command)

    ctx = JobContext(
        browser=None,  # type: ignore[arg-type]  # the fake scan needs none
        guard=ALLOW,
        store=ArtifactStore(tmp_path / "artifacts"),
        baselines=tmp_path / "baselines",
    )
    outcome = asyncio.run(perform(ctx, scan_dispatch(""), publish))
    assert outcome.passed
    node_pass = sent[-1].body
    assert isinstance(node_pass, NodePass)
    assert node_pass.result_json is not None
    assert len(node_pass.result_json.encode()) <= MAX_JSON
    result = json.loads(node_pass.result_json)
    # Still says what happened: every message's level and start, how many were blocked.
    assert [entry["text"][:2] for entry in result["console"]] == ["0:", "1:", "2:"]
    assert result["blocked_count"] == 5000
    assert result["blocked_requests"][0].startswith("http://10.0.0.1/0?")


def _children() -> set[int]:
    found: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        text = (task / "children").read_text().split()
        found.update(int(pid) for pid in text)
    return found


def test_a_cancel_during_a_regex_search_ends_within_2s_and_kills_the_search(
    tmp_path: Path,
) -> None:
    tab = FakeTab({"#t": "a" * 40 + "!"})  # would backtrack for days
    before = _children()

    async def go() -> float:
        job = asyncio.create_task(
            run_case(
                FakeBrowser(tab),  # type: ignore[arg-type]
                ALLOW,
                ArtifactStore(tmp_path),
                "http://site.test/",
                (match(r"(a+)+$", MatchMode.REGEX),),
                limits=CaseLimits(step_timeout=60, max_wait=1),
            )
        )
        await asyncio.sleep(0.5)
        cancelled_at = time.monotonic()
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
        return time.monotonic() - cancelled_at

    assert asyncio.run(go()) < 2
    assert _children() - before == set()
