"""Debian's Chromium for the browser tests, launched the one way the tests use it
(the flags the runners use too: no sandbox in a container, no background traffic)."""

from __future__ import annotations

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
