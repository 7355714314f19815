"""Debian's Chromium for the browser tests, launched the one way the tests use it
(the flags the runners use too: no sandbox in a container, no background traffic)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-gpu",
)


def require_chromium() -> None:
    """Fail (never skip) when the browser is missing: the setup installs it."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup.sh (installs Debian's chromium)")


def launch(playwright: Any, *extra: str) -> Any:
    """A headless Chromium from Playwright's sync API ``playwright``."""
    require_chromium()
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[*FLAGS, *extra])


def browser_session(patient: bool = True) -> Iterator[Any]:
    """A launched Chromium for the life of a module-scoped fixture (``yield from``).
    ``patient``: every ``expect`` waits up to 15 s, not Playwright's 5 s, meanwhile: CI's
    two cores are busy with Kafka, the node and Chromium at once, and a wait is not what
    these tests check. Start it after the tests' data and tokens: Playwright's sync API
    keeps an event loop running on this thread, and ``asyncio.run`` then refuses to."""
    require_chromium()
    from playwright.sync_api import expect, sync_playwright

    if patient:
        expect.set_options(timeout=15_000)
    try:
        with sync_playwright() as p:
            launched = launch(p)
            try:
                yield launched
            finally:
                launched.close()
    finally:
        if patient:
            expect.set_options(timeout=5_000)
