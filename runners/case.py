"""Run a Case's steps in a page and record each step's outcome.

The input is a tuple of plain ``Step`` values shaped like the Case API's steps (an
``action`` and an ``assertion``, each with a ``type``, ``value`` and an ``element``
selector); the Case aggregate maps onto it. The run stops at the first failed step; the
steps after it are reported as skipped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import partial
from urllib.parse import urljoin

from runners.artifacts import PNG, ArtifactStore
from runners.browser import Browser, Tab
from runners.errors import PageFailed, RunnerError, TargetInvalid
from runners.guard import TargetGuard
from runners.regex_search import regex_search

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class ActionType(StrEnum):
    NONE = ""
    NAVIGATE = "navigate"
    CLICK = "click"
    CHANGE = "change"
    KEY_DOWN = "keyDown"
    WAIT = "wait"


class AssertionType(StrEnum):
    NONE = ""
    EXISTS = "exists"
    MATCH = "match"
    VISIBLE = "visible"


class MatchMode(StrEnum):
    EQUALS = "equals"
    CONTAINS = "contains"
    REGEX = "regex"


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Element:
    """Where: a CSS ``selector``, else an ``xpath``; both empty means no element."""

    selector: str = ""
    xpath: str = ""

    @property
    def locator(self) -> str | None:
        if self.selector:
            return self.selector
        if self.xpath:
            return f"xpath={self.xpath}"
        return None


@dataclass(frozen=True)
class Action:
    """``navigate`` goes to ``path`` (relative to the site URL); ``click`` clicks the
    element; ``change`` fills it with ``value``; ``keyDown`` presses ``key`` (on the
    element if any); ``wait`` waits for the element to appear, or ``value`` ms."""

    type: ActionType = ActionType.NONE
    element: Element = Element()
    path: str = ""
    value: str = ""
    key: str = ""


@dataclass(frozen=True)
class Assertion:
    """``exists``/``visible`` check the element; ``match`` compares its text with
    ``value`` by ``match`` mode (equals, contains or a regular expression)."""

    type: AssertionType = AssertionType.NONE
    element: Element = Element()
    value: str = ""
    match: MatchMode = MatchMode.EQUALS


@dataclass(frozen=True)
class Step:
    action: Action = Action()
    assertion: Assertion = Assertion()


@dataclass(frozen=True)
class PartResult:
    """The outcome of a step's action or assertion; ``exception`` is set on failure."""

    status: Status
    started_at: datetime | None = None
    completed_at: datetime | None = None
    exception: str | None = None


SKIPPED = PartResult(Status.SKIPPED)


@dataclass(frozen=True)
class StepResult:
    index: int
    status: Status
    action: PartResult
    assertion: PartResult
    screenshot_hash: str | None = None


@dataclass(frozen=True)
class CaseResult:
    status: Status
    steps: tuple[StepResult, ...]

    @property
    def failed_step(self) -> StepResult | None:
        return next((step for step in self.steps if step.status is Status.FAILED), None)


@dataclass(frozen=True)
class CaseLimits:
    """Seconds: ``step_timeout`` per action or assertion (a node's ``max_wait_time``),
    ``max_wait`` caps a ``wait`` action's own delay."""

    step_timeout: float = 30.0
    max_wait: float = 30.0


StepReporter = Callable[[StepResult], Awaitable[None]]


def _need(element: Element, what: str) -> str:
    locator = element.locator
    if locator is None:
        raise PageFailed(f"{what} needs an element selector or xpath")
    return locator


async def _act(
    tab: Tab, guard: TargetGuard, site_url: str, action: Action, limits: CaseLimits
) -> None:
    timeout = limits.step_timeout
    match action.type:
        case ActionType.NONE:
            return
        case ActionType.NAVIGATE:
            target = action.path or action.value or "/"
            try:  # urllib raises ValueError on a malformed address ("//[bad")
                url = urljoin(site_url, target)
                await guard.check_url(url)
            except ValueError as exc:
                raise TargetInvalid(f"cannot navigate to {target!r}: {exc}") from exc
            await tab.goto(url, timeout=timeout)
        case ActionType.CLICK:
            await tab.click(_need(action.element, "click"), timeout)
        case ActionType.CHANGE:
            await tab.fill(_need(action.element, "change"), action.value, timeout)
        case ActionType.KEY_DOWN:
            key = action.key or action.value
            if not key:
                raise PageFailed("keyDown needs a key")
            await tab.press(action.element.locator, key, timeout)
        case ActionType.WAIT:
            locator = action.element.locator
            if locator is not None:
                await tab.wait_for(locator, "attached", timeout)
            else:
                try:
                    delay = float(action.value or 0) / 1000
                except ValueError as exc:
                    raise PageFailed(f"wait needs milliseconds, got {action.value!r}") from exc
                await tab.pause(max(0.0, min(delay, limits.max_wait)))


async def _check(tab: Tab, assertion: Assertion, limits: CaseLimits) -> None:
    timeout = limits.step_timeout
    match assertion.type:
        case AssertionType.NONE:
            return
        case AssertionType.EXISTS:
            await tab.wait_for(_need(assertion.element, "exists"), "attached", timeout)
        case AssertionType.VISIBLE:
            await tab.wait_for(_need(assertion.element, "visible"), "visible", timeout)
        case AssertionType.MATCH:
            text = (await tab.text(_need(assertion.element, "match"), timeout)).strip()
            expected = assertion.value
            if assertion.match is MatchMode.EQUALS:
                ok = text == expected.strip()
            elif assertion.match is MatchMode.CONTAINS:
                ok = expected in text
            else:  # in a child process: a backtracking pattern must not freeze the loop
                ok = await regex_search(expected, text, timeout)
            if not ok:
                raise PageFailed(_mismatch(text, expected, assertion.match))


def _mismatch(text: str, expected: str, mode: MatchMode) -> str:
    """The sentence of a failed ``match``: "text 'X' does not equal 'Y'"."""
    if mode is MatchMode.REGEX:
        return f"text {text!r} does not match /{expected}/"
    verb = "equal" if mode is MatchMode.EQUALS else "contain"
    return f"text {text!r} does not {verb} {expected!r}"


async def _timed(clock: Clock, work: Callable[[], Awaitable[None]]) -> PartResult:
    # Every runner error (a refused navigate included) is a failed part with its sentence.
    started = clock()
    try:
        await work()
    except (RunnerError, TimeoutError) as exc:
        return PartResult(Status.FAILED, started, clock(), str(exc) or type(exc).__name__)
    return PartResult(Status.PASSED, started, clock())


async def run_case(
    browser: Browser,
    guard: TargetGuard,
    store: ArtifactStore,
    site_url: str,
    steps: tuple[Step, ...],
    *,
    limits: CaseLimits | None = None,
    clock: Clock = utc_now,
    on_step: StepReporter | None = None,
) -> CaseResult:
    """Run ``steps`` in a fresh page starting at ``site_url``. Each step's action then
    assertion is timed; the first failure stops the run, with a full-page screenshot of
    that moment stored. ``on_step`` is awaited after each executed step. Raises
    ``TargetRefused``/``TargetInvalid`` when the site URL is refused; step failures
    (including a refused ``navigate``) are recorded, not raised."""
    limits = limits or CaseLimits()
    await guard.check_url(site_url)
    request_filter, egress = guard.page_checks()
    results: list[StepResult] = []
    failed = False
    async with browser.open_page(request_filter, egress=egress) as tab:
        await tab.goto(site_url, timeout=limits.step_timeout)
        for index, step in enumerate(steps):
            if failed:
                results.append(StepResult(index, Status.SKIPPED, SKIPPED, SKIPPED))
                continue
            # An empty action or assertion (type "") is recorded as skipped, not passed.
            action = (
                SKIPPED
                if step.action.type is ActionType.NONE
                else await _timed(clock, partial(_act, tab, guard, site_url, step.action, limits))
            )
            assertion = (
                SKIPPED
                if action.status is Status.FAILED or step.assertion.type is AssertionType.NONE
                else await _timed(clock, partial(_check, tab, step.assertion, limits))
            )
            failed = Status.FAILED in (action.status, assertion.status)
            screenshot = None
            if failed:
                screenshot = await _failure_screenshot(tab, store, limits.step_timeout)
            result = StepResult(
                index, Status.FAILED if failed else Status.PASSED, action, assertion, screenshot
            )
            results.append(result)
            if on_step is not None:
                await on_step(result)
    return CaseResult(Status.FAILED if failed else Status.PASSED, tuple(results))


async def _failure_screenshot(tab: Tab, store: ArtifactStore, timeout: float) -> str | None:
    try:  # a page operation like the others: bounded by the node's max_wait_time
        png = await tab.screenshot(full_page=True, timeout=timeout)
    except PageFailed:
        return None
    return await asyncio.to_thread(store.put, png, PNG)
