"""The case runner against the local test site in a real Chromium."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from runners.artifacts import PNG, ArtifactStore
from runners.browser import CHROMIUM, Browser
from runners.case import (
    Action,
    ActionType,
    Assertion,
    AssertionType,
    CaseLimits,
    CaseResult,
    Element,
    MatchMode,
    PartResult,
    Status,
    Step,
    StepResult,
    run_case,
)
from runners.errors import TargetRefused
from runners.guard import TargetGuard
from tests.site.server import TestSite, serve_site

pytestmark = pytest.mark.integration

ALLOW = TargetGuard(allow_private=True)
LIMITS = CaseLimits(step_timeout=3, max_wait=1)


@pytest.fixture
def site() -> Iterator[TestSite]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup.sh (installs Debian's chromium)")
    with serve_site() as served:
        yield served


class TickingClock:
    """A clock that advances one second per reading: deterministic step times."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def el(selector: str) -> Element:
    return Element(selector=selector)


CONTACT = (
    Step(
        Action(ActionType.CLICK, el("#link-form")), Assertion(AssertionType.VISIBLE, el("#contact"))
    ),
    Step(Action(ActionType.CHANGE, el("#name"), value="Ada")),
    Step(
        Action(ActionType.CLICK, el("#send")),
        Assertion(AssertionType.MATCH, el("#result"), value="Thanks, Ada!"),
    ),
    Step(
        Action(ActionType.NAVIGATE, path="/about.html"),
        Assertion(
            AssertionType.MATCH, el("#about-text"), value="pages for", match=MatchMode.CONTAINS
        ),
    ),
    Step(
        Action(ActionType.WAIT, value="50"),
        Assertion(
            AssertionType.MATCH, Element(xpath="//h1"), value=r"^About\s+us$", match=MatchMode.REGEX
        ),
    ),
    Step(
        Action(ActionType.NAVIGATE, path="/form.html"),
        Assertion(AssertionType.EXISTS, el("#message")),
    ),
    Step(Action(ActionType.CHANGE, el("#name"), value="Bob")),
    Step(
        Action(ActionType.KEY_DOWN, el("#name"), key="Enter"),
        Assertion(AssertionType.MATCH, el("#result"), value="Thanks, Bob!"),
    ),
)


def run(
    site: TestSite, store: ArtifactStore, steps: tuple[Step, ...], guard: TargetGuard = ALLOW
) -> tuple[CaseResult, list[StepResult]]:
    reported: list[StepResult] = []

    async def report(step: StepResult) -> None:
        reported.append(step)

    async def go() -> CaseResult:
        async with Browser() as browser:
            return await run_case(
                browser,
                guard,
                store,
                site.url("/"),
                steps,
                limits=LIMITS,
                clock=TickingClock(),
                on_step=report,
            )

    return asyncio.run(go()), reported


def test_a_good_case_passes_every_step(site: TestSite, tmp_path: Path) -> None:
    result, reported = run(site, ArtifactStore(tmp_path), CONTACT)
    assert [step.status for step in result.steps] == [Status.PASSED] * len(CONTACT), result
    assert result.status is Status.PASSED
    assert reported == list(result.steps)
    first = result.steps[0]
    assert first.action.started_at is not None and first.action.completed_at is not None
    assert first.action.completed_at > first.action.started_at
    assert first.assertion.started_at is not None
    assert first.assertion.started_at >= first.action.completed_at
    assert result.steps[1].assertion == PartResult(Status.SKIPPED)  # no assertion given
    assert all(step.screenshot_hash is None for step in result.steps)


def test_a_case_stops_at_the_first_failing_step_with_a_screenshot(
    site: TestSite, tmp_path: Path
) -> None:
    store = ArtifactStore(tmp_path)
    steps = (
        CONTACT[0],
        Step(Action(ActionType.CHANGE, el("#name"), value="Eve")),
        Step(
            Action(ActionType.CLICK, el("#send")),
            Assertion(AssertionType.MATCH, el("#result"), value="Thanks, Mallory!"),
        ),
        Step(Action(ActionType.CLICK, el("#link-home"))),
    )
    result, reported = run(site, store, steps)
    assert result.status is Status.FAILED
    assert [step.status for step in result.steps] == [
        Status.PASSED,
        Status.PASSED,
        Status.FAILED,
        Status.SKIPPED,
    ]
    failed = result.failed_step
    assert failed is not None and failed.index == 2
    assert failed.action.status is Status.PASSED
    assert failed.assertion.status is Status.FAILED
    assert failed.assertion.exception is not None
    assert failed.assertion.exception == "text 'Thanks, Eve!' does not equal 'Thanks, Mallory!'"
    assert failed.screenshot_hash is not None
    png, media_type = store.get(failed.screenshot_hash)
    assert media_type == PNG and png.startswith(b"\x89PNG")
    assert len(reported) == 3  # the skipped step was never run


def test_a_missing_element_fails_the_action_and_skips_its_assertion(
    site: TestSite, tmp_path: Path
) -> None:
    steps = (
        Step(
            Action(ActionType.CLICK, el("#no-such-link")), Assertion(AssertionType.EXISTS, el("h1"))
        ),
    )
    result, _ = run(site, ArtifactStore(tmp_path), steps)
    (step,) = result.steps
    assert step.action.status is Status.FAILED
    assert step.action.exception is not None and "#no-such-link" in step.action.exception
    assert step.assertion.status is Status.SKIPPED
    assert step.screenshot_hash is not None


def test_a_case_on_a_private_site_is_refused_without_the_setting(
    site: TestSite, tmp_path: Path
) -> None:
    with pytest.raises(TargetRefused):
        run(site, ArtifactStore(tmp_path), CONTACT, TargetGuard(allow_private=False))
    assert site.hits == []
