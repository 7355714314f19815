"""Browser config: which Chromium the runners launch, with which flags and page size.

Plain values, built where a runner is assembled (``runledger.runner``) and handed to
:class:`runners.browser.Browser`; nothing here touches Playwright.
"""

from __future__ import annotations

from dataclasses import dataclass

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-gpu",
    "--no-first-run",
)


@dataclass(frozen=True)
class BrowserConfig:
    """How to launch Chromium. ``extra_args`` are appended to ``CHROMIUM_ARGS``."""

    executable_path: str = CHROMIUM
    max_pages: int = 4
    viewport_width: int = 1280
    viewport_height: int = 800
    extra_args: tuple[str, ...] = ()
