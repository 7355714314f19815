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
from runners.browser import Browser, ConsoleEntry, RequestFilter
from runners.errors import PageTimeout
from runners.guard import TargetGuard

# Navigation Timing for TTFB, DCL and load; the largest-contentful-paint entries are
# buffered, so an observer registered now still gets them (in a later task, hence the
# short wait). Chromium reports LCP only for pages that painted some content.
_TIMINGS_JS = """
() => new Promise((resolve) => {
  const nav = performance.getEntriesByType("navigation")[0];
  const out = {
    ttfb: nav ? nav.responseStart : null,
    dcl: nav && nav.domContentLoadedEventEnd > 0 ? nav.domContentLoadedEventEnd : null,
    load: nav && nav.loadEventEnd > 0 ? nav.loadEventEnd : null,
    lcp: null,
  };
  let observer = null;
  const finish = () => {
    if (observer) {
      for (const entry of observer.takeRecords()) out.lcp = entry.startTime;
      observer.disconnect();
    }
    resolve(out);
  };
  try {
    observer = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) out.lcp = entry.startTime;
    });
    observer.observe({ type: "largest-contentful-paint", buffered: true });
  } catch (error) {
    observer = null;
  }
  setTimeout(finish, 50);
})
"""


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

    @property
    def console_errors(self) -> int:
        return sum(1 for entry in self.console if entry.level == "error")


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
    full-page screenshot. ``settle`` seconds are waited after the load event (a node's
    ``min_wait_time``). Raises ``TargetRefused``/``TargetInvalid`` before any request
    when the guard refuses ``url``, ``PageTimeout`` past ``timeout`` seconds,
    ``PageFailed`` when the page cannot be loaded."""
    await guard.check_url(url)
    request_filter = None if guard.allow_private else guard.request_refusal
    try:
        async with asyncio.timeout(timeout):
            return await _scan(browser, store, url, timeout, settle, request_filter)
    except TimeoutError as exc:
        raise PageTimeout(f"scan of {url} did not finish within {timeout:g}s") from exc


async def _scan(
    browser: Browser,
    store: ArtifactStore,
    url: str,
    timeout: float,
    settle: float,
    request_filter: RequestFilter | None,
) -> ScanResult:
    async with browser.open_page(request_filter) as tab:
        status = await tab.goto(url, timeout=timeout)
        if settle > 0:
            await tab.pause(settle)
        values = await tab.evaluate(_TIMINGS_JS)
        html = await tab.content()
        screenshot = await tab.screenshot(full_page=True, timeout=timeout)
        html_hash = await asyncio.to_thread(store.put, html.encode(), HTML)
        screenshot_hash = await asyncio.to_thread(store.put, screenshot, PNG)
        network = tab.network
        return ScanResult(
            requested_url=url,
            final_url=tab.url,
            status=status,
            html_hash=html_hash,
            screenshot_hash=screenshot_hash,
            console=tab.console,
            timings=timings_from(values if isinstance(values, dict) else {}),
            requests=network.requests,
            bytes=network.bytes,
            blocked_requests=network.blocked,
        )
