"""Scans per minute of the runner's scan against a bare Playwright loop, same run.

    python bench/runners.py [--seconds 15]

The local test site (``tests/site/server.py``, the one the runner tests use) is started
as a child process (``python tests/site/server.py``: no test code is imported, and the
site's threads do not compete with the measuring process's interpreter). For 1, 2 and 4
concurrent pages, two loops load the same pages (``/``, ``/about.html``,
``/form.html``, ``/console.html``, ``/changeable``) in one Debian Chromium each, with
the same flags (``CHROMIUM_ARGS``) and viewport:

(a) runner: ``runners.scan.scan`` through ``runners.browser.Browser`` (``max_pages``
    = the concurrency, a fresh context per page), the guard with private targets
    allowed, artifacts written to a temporary store: status, HTML, console, timings
    with LCP, network totals and a full-page screenshot, as a ``scan`` job records them;
(b) bare: Playwright's ``browser.new_context()``, ``new_page()``, ``goto(url)``
    (``load``), close — loading the same pages and recording nothing;
(c) for reference, not in the ratio: the bare loop plus Playwright's own
    ``page.screenshot()`` before the close. The bare loop never paints a frame; a scan
    must, for its screenshot, so (c) is about the fastest any scan can go.

Each side is measured for ``--seconds`` per concurrency, split A/2, B, A/2 (runner,
bare, runner) so that a change of the machine's load during the measure weighs on both
sides alike. Besides pages per minute it prints the CPU time per page of the bench
process and its Chromium and Playwright driver processes (``/proc``), which depends
less on what else runs on the machine. Kafka is not involved (the job plumbing is
measured by the orchestration bench). The last line is ``ratio: <the least of runner
scans/min / bare loads/min over 1, 2 and 4 pages>``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from _stack import site_process  # noqa: E402
from playwright.async_api import async_playwright  # noqa: E402

from runners.artifacts import ArtifactStore  # noqa: E402
from runners.browser import CHROMIUM, CHROMIUM_ARGS, Browser, BrowserConfig  # noqa: E402
from runners.guard import TargetGuard  # noqa: E402
from runners.scan import scan  # noqa: E402

PATHS = ("/", "/about.html", "/form.html", "/console.html", "/changeable")
CONCURRENCY = (1, 2, 4)
VIEWPORT = {"width": BrowserConfig.viewport_width, "height": BrowserConfig.viewport_height}
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Measure:
    pages: int = 0
    seconds: float = 0.0
    cpu: float = 0.0

    def add(self, other: Measure) -> None:
        self.pages += other.pages
        self.seconds += other.seconds
        self.cpu += other.cpu

    @property
    def per_minute(self) -> float:
        return self.pages * 60 / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_page(self) -> float:
        return self.cpu * 1000 / self.pages if self.pages else float("nan")


def _cpu_of(pid: int) -> tuple[int, float]:
    """(parent pid, CPU seconds of ``pid`` and its reaped children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # after the name: state ppid ... utime(12) stime(13) cutime(14) cstime(15)
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
    return int(fields[1]), ticks / TICKS


def tree_cpu(exclude: int) -> float:
    """CPU seconds of this process and its descendants, without ``exclude``'s subtree."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            parents[int(entry)], cpu[int(entry)] = _cpu_of(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    me = os.getpid()
    total = 0.0
    for pid, seconds in cpu.items():
        node = pid
        while node not in (me, exclude, 0, 1) and node in parents:
            node = parents[node]
        if node == me:
            total += seconds
    return total


async def _loop(
    workers: int, seconds: float, one: Callable[[str], Awaitable[None]], urls: list[str], site: int
) -> Measure:
    """Run ``one(url)`` on ``workers`` tasks for ``seconds``."""
    done = 0
    started = time.monotonic()
    cpu_before = tree_cpu(site)
    deadline = started + seconds
    cycle = itertools.cycle(urls)

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            await one(next(cycle))
            done += 1

    await asyncio.gather(*(worker() for _ in range(workers)))
    return Measure(done, time.monotonic() - started, tree_cpu(site) - cpu_before)


async def runner_measure(
    urls: list[str], workers: int, seconds: float, store_dir: Path, site: int
) -> Measure:
    browser = Browser(BrowserConfig(max_pages=workers))
    await browser.start()
    guard = TargetGuard(allow_private=True)
    store = ArtifactStore(store_dir)
    try:
        await scan(browser, guard, store, urls[0], timeout=30)  # warm up

        async def one(url: str) -> None:
            result = await scan(browser, guard, store, url, timeout=30)
            assert result.status == 200, (url, result.status)

        return await _loop(workers, seconds, one, urls, site)
    finally:
        await browser.close()


async def bare_measure(
    urls: list[str], workers: int, seconds: float, site: int, *, screenshot: bool = False
) -> Measure:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:

            async def one(url: str) -> None:
                context = await browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
                try:
                    page = await context.new_page()
                    answer = await page.goto(url, wait_until="load", timeout=30_000)
                    assert answer is not None and answer.status == 200, url
                    if screenshot:
                        await page.screenshot()
                finally:
                    await context.close()

            await one(urls[0])  # warm up
            return await _loop(workers, seconds, one, urls, site)
        finally:
            await browser.close()


async def main(seconds: float) -> None:
    print(f"load average before: {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()})")
    budget = seconds * len(CONCURRENCY) * 3 + 120
    with (
        site_process(budget) as (base_url, site_pid),
        tempfile.TemporaryDirectory(prefix="bench-runners-") as tmp,
    ):
        urls = [base_url + p for p in PATHS]
        print(f"local test site {base_url}, {len(urls)} pages, {seconds:g}s per side and measure")
        print(
            "| pages at once | runner scans/min | bare loads/min | ratio "
            "| runner CPU ms/page | bare CPU ms/page | bare + screenshot/min (ratio) |"
        )
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        ratios = []
        for workers in CONCURRENCY:
            ours, bare = Measure(), Measure()
            ours.add(await runner_measure(urls, workers, seconds / 2, Path(tmp), site_pid))
            bare.add(await bare_measure(urls, workers, seconds, site_pid))
            ours.add(await runner_measure(urls, workers, seconds / 2, Path(tmp), site_pid))
            shot = await bare_measure(urls, workers, seconds / 2, site_pid, screenshot=True)
            ratio = ours.per_minute / bare.per_minute
            ratios.append(ratio)
            print(
                f"| {workers} | {ours.per_minute:,.0f} | {bare.per_minute:,.0f} | {ratio:.2f} "
                f"| {ours.cpu_ms_per_page:.0f} | {bare.cpu_ms_per_page:.0f} "
                f"| {shot.per_minute:,.0f} ({shot.per_minute / bare.per_minute:.2f}) |",
                flush=True,
            )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"ratio: {min(ratios):.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    asyncio.run(main(parser.parse_args().seconds))
