"""Screenshots of a tab's page: Playwright's careful one, and a one-call CDP capture.

Two ways because they cost differently: Playwright's ``page.screenshot`` prepares the
page in several round trips (what the case runner's failure screenshots use), while a
scan takes its full-page PNG in one ``Page.captureScreenshot`` call on the tab's own CDP
session and falls back to the careful way when Chromium has no frame to capture yet.
:class:`runners.browser_tab.Tab` exposes both as methods.
"""

from __future__ import annotations

import asyncio
import base64
import logging

from playwright.async_api import CDPSession, Page
from playwright.async_api import Error as PlaywrightError

from runners.browser_errors import failing
from runners.errors import PageTimeout

log = logging.getLogger(__name__)


async def screenshot(
    page: Page,
    full_page: bool = True,
    timeout: float = 30.0,
    size: tuple[int, int] | None = None,
) -> bytes:
    """A PNG of the page (the whole scrollable page when ``full_page``; only its
    top-left ``size`` CSS pixels, when given). Raises ``PageTimeout`` or ``PageFailed``."""
    clip = None if size is None else {"x": 0, "y": 0, "width": size[0], "height": size[1]}
    with failing("taking a screenshot"):
        return await page.screenshot(
            full_page=full_page,
            type="png",
            timeout=timeout * 1000,
            animations="disabled",
            clip=clip,  # type: ignore[arg-type]
        )


async def capture(
    page: Page, session: CDPSession | None, width: int, height: int, timeout: float = 30.0
) -> bytes:
    """A PNG of the page's top-left ``width`` x ``height`` CSS pixels (beyond the
    viewport when larger), in one CDP call on ``session``: no page preparation round
    trips as in :func:`screenshot` (the caller stops animations itself), and zlib tuned
    for speed (``optimizeForSpeed``: larger files, the same pixels). Falls back to
    :func:`screenshot` without a session or when Chromium has no frame to capture yet;
    ``PageTimeout`` when Chromium does not answer within ``timeout`` seconds."""
    if session is None:
        return await screenshot(page, True, timeout, (width, height))
    viewport = page.viewport_size or {"width": width, "height": height}
    fits = width <= viewport["width"] and height <= viewport["height"]
    params = {
        "format": "png",
        "optimizeForSpeed": True,
        "captureBeyondViewport": not fits,
        "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
    }
    try:
        async with asyncio.timeout(timeout):
            answer = await session.send("Page.captureScreenshot", params)
    except TimeoutError as exc:
        raise PageTimeout(f"taking a screenshot: no answer within {timeout:g}s") from exc
    except PlaywrightError as exc:
        # The same clip: the whole page may be far larger than the caller's cap.
        log.info("fast screenshot failed (%s); taking it the long way", exc)
        return await screenshot(page, True, timeout, (width, height))
    return base64.b64decode(answer["data"])
