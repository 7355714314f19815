"""Playwright's errors, said as ``runners.errors``: what a tab operation that failed means.

Playwright reports everything as one ``Error`` (or its ``TimeoutError``) whose text is
all there is to go on; the runners need to know whether a step timed out, whether the
page left for another document meanwhile, or whether it just failed. The patterns of
that text live here, apart from the tab that uses them (``runners.browser_tab``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from runners.errors import PageFailed, PageNavigated, PageTimeout

# How Chromium reports a navigation the request filter or the egress proxy refused.
REFUSED_ERRORS = ("ERR_BLOCKED_BY_CLIENT", "ERR_TUNNEL_CONNECTION_FAILED", "ERR_EMPTY_RESPONSE")
# How Playwright reports a script or screenshot cut short by the page's own navigation.
_NAVIGATED_ERRORS = ("Execution context was destroyed",)
# What Playwright's call log (the lines after a timeout's first) says when an element
# kept it waiting; the last such line is why the action never happened.
_WAIT_REASONS = (
    "intercepts pointer events",
    "detached from the DOM",
    "is not visible",
    "is not enabled",
    "is not stable",
    "outside of the viewport",
)


def why_waited(text: str) -> str | None:
    """Why an element action timed out, from Playwright's call log; None if unknown."""
    lines = [line.strip().lstrip("-").strip() for line in text.splitlines()[1:]]
    reasons = [line for line in lines if any(reason in line for reason in _WAIT_REASONS)]
    # No reason given (nothing matched, or a page too busy to be queried): none invented.
    return reasons[-1][:300] if reasons else None


def wrap_error(exc: Exception, what: str) -> PageFailed:
    """``exc`` (from Playwright or an asyncio timeout) as the ``PageTimeout``,
    ``PageNavigated`` or ``PageFailed`` on ``what`` (``"clicking #go"``) it means."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, PlaywrightTimeoutError | asyncio.TimeoutError):
        why = why_waited(str(exc))
        if why is not None:
            message = f"{message.rstrip('.')}: {why}"
        return PageTimeout(f"{what}: {message}")
    if any(text in message for text in _NAVIGATED_ERRORS):
        return PageNavigated(f"{what}: the page went to another document meanwhile")
    return PageFailed(f"{what}: {message}")


@contextmanager
def failing(what: str) -> Iterator[None]:
    """Playwright's errors inside raised as ``PageTimeout`` or ``PageFailed`` on ``what``."""
    try:
        yield
    except PlaywrightError as exc:
        raise wrap_error(exc, what) from exc
