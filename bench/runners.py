"""Scans per minute of the runner's scan against a bare Playwright loop, same run.

    python bench/runners.py [--seconds 20]

The local test site (``tests/site/server.py``, the one the runner tests use) serves its
pages on 127.0.0.1. For 1, 2 and 4 concurrent pages, two loops run for ``--seconds``
each over the same pages (``/``, ``/about.html``, ``/form.html``, ``/console.html``,
``/changeable``), in one Debian Chromium (``CHROMIUM_ARGS``):

(a) runner: ``runners.scan.scan`` through ``runners.browser.Browser`` (``max_pages``
    = the concurrency, a fresh context per page), the guard with private targets
    allowed, artifacts written to a temporary store: status, HTML, console, timings,
    network totals and a full-page screenshot, as a ``scan`` job records them;
(b) bare: Playwright's ``browser.new_context()``, ``new_page()``, ``goto(url)``
    (``load``), close — loading the same pages and recording nothing.

The scan does more than the bare loop (HTML, screenshot, CDP listeners, artifact
writes), so the ratio is the cost of that work per page. Kafka is not involved (the
job plumbing is measured by the orchestration bench). The last line is
``ratio: <runner scans/min / bare loads/min at 4 pages>``.

The benches otherwise do not import ``tests/``; the test site is the one exception, so
that both sides load exactly the pages the runner tests scan.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from playwright.async_api import async_playwright  # noqa: E402

from runners.artifacts import ArtifactStore  # noqa: E402
from runners.browser import CHROMIUM, CHROMIUM_ARGS, Browser, BrowserConfig  # noqa: E402
from runners.guard import TargetGuard  # noqa: E402
from runners.scan import scan  # noqa: E402
from tests.site.server import serve_site  # noqa: E402

PATHS = ("/", "/about.html", "/form.html", "/console.html", "/changeable")
CONCURRENCY = (1, 2, 4)


async def _loop(
    workers: int, seconds: float, one: Callable[[str], Awaitable[None]], urls: list[str]
) -> int:
    """Run ``one(url)`` on ``workers`` tasks for ``seconds``; pages completed."""
    done = 0
    deadline = time.monotonic() + seconds
    cycle = itertools.cycle(urls)

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            await one(next(cycle))
            done += 1

    await asyncio.gather(*(worker() for _ in range(workers)))
    return done


async def runner_rate(urls: list[str], workers: int, seconds: float, store_dir: Path) -> float:
    browser = Browser(BrowserConfig(max_pages=workers))
    await browser.start()
    guard = TargetGuard(allow_private=True)
    store = ArtifactStore(store_dir)
    try:
        await scan(browser, guard, store, urls[0], timeout=30)  # warm up

        async def one(url: str) -> None:
            result = await scan(browser, guard, store, url, timeout=30)
            assert result.status == 200, (url, result.status)

        started = time.monotonic()
        pages = await _loop(workers, seconds, one, urls)
        return pages * 60 / (time.monotonic() - started)
    finally:
        await browser.close()


async def bare_rate(urls: list[str], workers: int, seconds: float) -> float:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:

            async def one(url: str) -> None:
                context = await browser.new_context(viewport={"width": 1280, "height": 800})
                try:
                    page = await context.new_page()
                    answer = await page.goto(url, wait_until="load", timeout=30_000)
                    assert answer is not None and answer.status == 200, url
                finally:
                    await context.close()

            await one(urls[0])  # warm up
            started = time.monotonic()
            pages = await _loop(workers, seconds, one, urls)
            return pages * 60 / (time.monotonic() - started)
        finally:
            await browser.close()


async def main(seconds: float) -> None:
    with serve_site() as site, tempfile.TemporaryDirectory(prefix="bench-runners-") as tmp:
        urls = [site.url(p) for p in PATHS]
        print(f"local test site {site.base_url}, {len(urls)} pages, {seconds:g}s per measure")
        print("| pages at once | runner scans/min | bare loads/min | ratio |")
        print("| ---: | ---: | ---: | ---: |")
        ratio = float("nan")
        for workers in CONCURRENCY:
            ours = await runner_rate(urls, workers, seconds, Path(tmp))
            bare = await bare_rate(urls, workers, seconds)
            ratio = ours / bare
            print(f"| {workers} | {ours:,.0f} | {bare:,.0f} | {ratio:.2f} |", flush=True)
        print(f"ratio: {ratio:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    asyncio.run(main(parser.parse_args().seconds))
