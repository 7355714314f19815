"""Scan a page: load it in Chromium and record what a visitor's browser saw.

The result is a plain value; the HTML and the screenshot go to the artifact store and
the result carries their hashes only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runners.artifacts import HTML, PNG, ArtifactStore
from runners.browser import Browser, ConsoleEntry, Tab
from runners.errors import PageFailed, PageNavigated, PageTimeout
from runners.guard import TargetGuard

# Finishes finite animations and cancels infinite ones, as Playwright's ``animations:
# "disabled"`` does, so two scans of an unchanged page capture the same pixels. Returns
# how many it stopped (finished ones are left alone).
_STOP_ANIMATIONS = """
function stopAnimations() {
  let stopped = 0;
  for (const animation of document.getAnimations()) {
    if (animation.playState === "finished") continue;
    const timing = animation.effect ? animation.effect.getComputedTiming() : null;
    if (timing && Number.isFinite(timing.endTime)) animation.finish();
    else animation.cancel();
    stopped += 1;
  }
  return stopped;
}
"""

# Runs in the scanned document before its own scripts: animations are stopped during
# the load event (before ``goto`` returns), so the screenshot can be taken at once,
# together with the page script below instead of after its round trip.
_AT_LOAD_JS = f"addEventListener('load', {_STOP_ANIMATIONS.strip()});"

# One round trip after the load: Navigation Timing for TTFB, DCL and load, the time
# origin (to place the largest contentful paint, which Chromium pushes to the tab as a
# PerformanceTimeline event), the HTML as ``page.content()`` gives it, and the size of
# the whole page for the screenshot. It stops animations started since the load and
# says how many (``restarted``): a screenshot taken meanwhile may show them moving.
_PAGE_JS = f"""
() => {{
  const restarted = ({_STOP_ANIMATIONS.strip()})();
  const nav = performance.getEntriesByType("navigation")[0];
  const root = document.documentElement;
  if (!root) return null;  // between two documents: looked at again
  const body = document.body || root;
  const doctype = document.doctype ? new XMLSerializer().serializeToString(document.doctype) : "";
  return {{
    ttfb: nav ? nav.responseStart : null,
    dcl: nav && nav.domContentLoadedEventEnd > 0 ? nav.domContentLoadedEventEnd : null,
    load: nav && nav.loadEventEnd > 0 ? nav.loadEventEnd : null,
    origin: performance.timeOrigin,
    restarted,
    html: doctype + root.outerHTML,
    width: Math.max(root.scrollWidth, body.scrollWidth, root.clientWidth),
    height: Math.max(root.scrollHeight, body.scrollHeight, root.clientHeight),
  }};
}}
"""

# A screenshot larger than this (CSS pixels per side) is cut: a very long page would
# otherwise cost seconds and megabytes for pixels no one compares.
MAX_SHOT_SIDE = 16_384
# And at most this many pixels (a page as wide as the default viewport, MAX_SHOT_SIDE
# tall): a page both wide and long is cut in height. A 16384 x 16384 capture is a 1 GB
# bitmap, and Pillow refuses to decode it for the visual comparison (a "decompression
# bomb"); past ~8000 x 16384 the comparison alone takes gigabytes of the runner's memory.
MAX_SHOT_PIXELS = 1280 * MAX_SHOT_SIDE
# How many times a scan follows a page that goes to another document by itself after its
# load (a meta refresh, a script setting ``location``) before it calls that a loop, and
# how many looks at the page that allows (a look cut short by a navigation that has not
# yet replaced the document is tried again).
MAX_SELF_NAVIGATIONS = 5
_MAX_LOOKS = 3 * (MAX_SELF_NAVIGATIONS + 1)
# How long a scan waits after the screenshot for a first largest-contentful-paint entry
# when none has arrived yet (the screenshot's frame usually brings it).
LCP_WAIT_S = 0.05


@dataclass(frozen=True)
class Timings:
    """Milliseconds from the start of navigation; None where the browser reported none."""

    ttfb_ms: float | None
    dom_content_loaded_ms: float | None
    load_ms: float | None
    largest_contentful_paint_ms: float | None


@dataclass(frozen=True)
class ScanResult:
    """What a scan recorded. ``status`` is None when the page gave no HTTP response."""

    requested_url: str
    final_url: str
    status: int | None
    html_hash: str
    screenshot_hash: str
    console: tuple[ConsoleEntry, ...]
    timings: Timings
    requests: int
    bytes: int
    blocked_requests: tuple[str, ...]
    # Console messages past the tab's record limit: counted, not kept (all, errors).
    console_dropped: int = 0
    console_dropped_errors: int = 0

    @property
    def console_count(self) -> int:
        """How many console messages and page errors there were, kept or not."""
        return len(self.console) + self.console_dropped

    @property
    def console_errors(self) -> int:
        kept = sum(1 for entry in self.console if entry.level == "error")
        return kept + self.console_dropped_errors


def _ms(values: Mapping[str, Any], key: str) -> float | None:
    value = values.get(key)
    return round(float(value), 1) if isinstance(value, int | float) else None


def timings_from(values: Mapping[str, Any]) -> Timings:
    """Timings from the page script's answer (keys ttfb, dcl, load, lcp)."""
    return Timings(_ms(values, "ttfb"), _ms(values, "dcl"), _ms(values, "load"), _ms(values, "lcp"))


async def scan(
    browser: Browser,
    guard: TargetGuard,
    store: ArtifactStore,
    url: str,
    *,
    timeout: float = 60.0,
    settle: float = 0.0,
) -> ScanResult:
    """Load ``url`` and record status, HTML, console, timings, network totals and a
    full-page screenshot (PNG, at most ``MAX_SHOT_SIDE`` pixels a side). ``settle``
    seconds are waited after the load event (a node's ``min_wait_time``). Raises
    ``TargetRefused``/``TargetInvalid`` before any request when the guard refuses
    ``url``, ``PageTimeout`` past ``timeout`` seconds, ``PageFailed`` when the page
    cannot be loaded."""
    await guard.check_url(url)
    try:
        return await _scan(browser, store, url, timeout, settle, guard)
    except TimeoutError as exc:
        raise PageTimeout(f"scan of {url} did not finish within {timeout:g}s") from exc


async def _scan(
    browser: Browser,
    store: ArtifactStore,
    url: str,
    timeout: float,
    settle: float,
    guard: TargetGuard,
) -> ScanResult:
    viewport = (browser.config.viewport_width, browser.config.viewport_height)
    # The deadline starts once the tab is open: waiting for a free page (the runner's
    # page limit) is not the page's time, and the job's own timeout bounds that wait.
    request_filter, egress = guard.page_checks()
    async with (
        browser.open_page(request_filter, _AT_LOAD_JS, egress=egress) as tab,
        asyncio.timeout(timeout),
    ):
        status = await tab.goto(url, timeout=timeout)
        if settle > 0:
            await tab.pause(settle)
        # A page that goes elsewhere by itself after its load (a meta refresh, a script
        # redirect) is read where it lands: the HTML and the screenshot of one document.
        landed, loop = tab.navigations, None
        for _ in range(_MAX_LOOKS):
            if tab.navigations - landed > MAX_SELF_NAVIGATIONS:
                break
            loop = await _look_unless_navigating(tab, viewport, settle, timeout)
            if loop is not None:
                break
            await tab.wait_for_load(timeout)
        if loop is None:
            raise PageFailed(
                f"{url} kept navigating by itself after its load (more than "
                f"{MAX_SELF_NAVIGATIONS} times): a redirect or reload loop"
            )
        values, screenshot = loop
        lcp_at = await tab.largest_contentful_paint(LCP_WAIT_S)
        final_url, console, network = tab.url, tab.console, tab.network
        dropped, dropped_errors = tab.console_dropped
    # The tab is closed (its slot free for the next job) before the disk is touched.
    html = str(values.get("html") or "").encode()
    html_hash, screenshot_hash = await asyncio.to_thread(_store, store, html, screenshot)
    origin = values.get("origin")
    if lcp_at is not None and isinstance(origin, int | float):
        values = {**values, "lcp": lcp_at * 1000 - origin}
    return ScanResult(
        requested_url=url,
        final_url=final_url,
        status=status,
        html_hash=html_hash,
        screenshot_hash=screenshot_hash,
        console=console,
        timings=timings_from(values),
        requests=network.requests,
        bytes=network.bytes,
        blocked_requests=network.blocked,
        console_dropped=dropped,
        console_dropped_errors=dropped_errors,
    )


async def _look_unless_navigating(
    tab: Tab, viewport: tuple[int, int], settle: float, timeout: float
) -> tuple[dict[str, Any], bytes] | None:
    """:func:`_look`, or None (the look cancelled) if the page starts another document
    meanwhile: a screenshot of a navigating page may otherwise wait for the timeout."""
    since = tab.navigations
    look = asyncio.ensure_future(_look(tab, viewport, settle, timeout))
    moved = asyncio.ensure_future(tab.wait_for_navigation(since))
    try:
        await asyncio.wait((look, moved), return_when=asyncio.FIRST_COMPLETED)
    finally:
        moved.cancel()
        look.cancel()  # no-op when it is done
        await asyncio.gather(look, moved, return_exceptions=True)
    if look.cancelled() or isinstance(look.exception(), PageNavigated):
        return None
    values, screenshot = look.result()  # raises what the look raised
    return None if tab.navigations != since else (values, screenshot)


async def _look(
    tab: Tab, viewport: tuple[int, int], settle: float, timeout: float
) -> tuple[dict[str, Any], bytes]:
    """The page script's answer and a screenshot of the whole page (within the caps).
    Raises ``PageNavigated`` when the page went to another document meanwhile."""
    screenshot: bytes | None = None
    if settle > 0:  # animations may have started during the wait: the script stops them
        answer = await tab.evaluate(_PAGE_JS)
    else:
        # The page script and a viewport screenshot at once (animations running at
        # the load were stopped by _AT_LOAD_JS); the page is captured again below if
        # it is larger than the viewport or started animations after its load.
        script = asyncio.ensure_future(tab.evaluate(_PAGE_JS))
        shot = asyncio.ensure_future(tab.capture(*viewport, timeout=timeout))
        try:
            answer, screenshot = await asyncio.gather(script, shot)
        except BaseException:  # not left running into the next look or the next job
            script.cancel()
            shot.cancel()
            raise
    if not isinstance(answer, dict):
        raise PageNavigated("reading the page: it had no document element (between two)")
    values: dict[str, Any] = answer
    width = _side(values.get("width"), viewport[0])
    height = min(_side(values.get("height"), viewport[1]), max(1, MAX_SHOT_PIXELS // width))
    if screenshot is None or (width, height) != viewport or values.get("restarted"):
        screenshot = await tab.capture(width, height, timeout=timeout)
    return values, screenshot


def _side(value: Any, least: int) -> int:
    """A screenshot side: the page's size, at least the viewport's, at most the cap."""
    size = int(value) if isinstance(value, int | float) and value > 0 else least
    return max(least, min(size, MAX_SHOT_SIDE))


def _store(store: ArtifactStore, html: bytes, screenshot: bytes) -> tuple[str, str]:
    return store.put(html, HTML), store.put(screenshot, PNG)
