"""The key names a Case may press (``streams.domain.key_names``) against the Playwright
and Chromium the runners use: every accepted name presses, every refused one is an
``Unknown key`` there too. A Playwright upgrade that renames a key fails here."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from runners.browser import CHROMIUM, Browser
from runners.errors import PageFailed
from streams.domain.key_names import KEY_NAMES, unknown_key_part

pytestmark = pytest.mark.integration

COMBINATIONS = ("Control+A", "Shift+ArrowLeft", "ControlOrMeta+C", "Control++", "Alt+Shift+KeyZ")
REFUSED = ("Entr", "enter", "F13", "Ctrl+A", "Control+", "+Control", "Clear", "é", "ab")


async def _press_all(keys: tuple[str, ...]) -> dict[str, str]:
    """Each key pressed on a blank page (nothing there navigates): key → error text."""
    failures: dict[str, str] = {}
    async with Browser() as browser, browser.open_page() as tab:
        for key in keys:
            try:
                await tab.press(None, key, 5)
            except PageFailed as exc:
                failures[key] = str(exc)
    return failures


def test_the_key_names_are_the_ones_playwright_presses() -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup.sh (installs Debian's chromium)")
    accepted = (*sorted(KEY_NAMES), *COMBINATIONS)
    assert all(unknown_key_part(key) is None for key in accepted)
    assert all(unknown_key_part(key) is not None for key in REFUSED)

    failures = asyncio.run(_press_all((*accepted, *REFUSED)))

    assert set(failures) == set(REFUSED), failures
    assert all("Unknown key" in text for text in failures.values()), failures
