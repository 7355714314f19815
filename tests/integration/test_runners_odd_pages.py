"""Scans and Cases on the odd pages real users point them at, in a real Chromium.

Every run must end with a clear outcome within its timeout, leave no tab open, keep the
runner's memory bounded, and leave the Browser usable for the next job.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import TypeVar

import pytest

from runners.artifacts import ArtifactStore
from runners.browser import Browser
from runners.case import Action, ActionType, CaseLimits, CaseResult, Element, Status, Step, run_case
from runners.errors import PageFailed
from runners.guard import TargetGuard
from runners.jobs_context import JobContext
from runners.jobs_generate import explore
from runners.scan import MAX_SHOT_PIXELS, ScanResult, scan
from runners.tab_record import MAX_CONSOLE_ENTRIES, MAX_CONSOLE_TEXT
from runners.vrt import compare
from tests.integration.chromium import require_chromium
from tests.integration.test_runners_scan import png_size
from tests.site.server import serve_handler

pytestmark = pytest.mark.integration

ALLOW = TargetGuard(allow_private=True)
T = TypeVar("T")

_PAGES = {
    "/ok": b"<!doctype html><title>ok</title><p id=landed>landed</p>",
    # Client-side redirects that many sites use ("/" -> "/en/"): after the load.
    "/meta-to-ok": b"<!doctype html><meta http-equiv=refresh content='0;url=/ok'><p>moving</p>",
    "/script-to-ok": b"""<!doctype html><p>moving</p>
<script>addEventListener('load', () => { location.href = '/ok'; });</script>""",
    # Reloads itself forever.
    "/meta-loop": b"<!doctype html><meta http-equiv=refresh content=0><p>again</p>",
    # 3000 long console messages, then errors (past any sane cap: still counted).
    "/console-flood": b"""<!doctype html><link rel=icon href="data:,"><p>flood</p><script>
const line = 'x'.repeat(5000);
for (let i = 0; i < 3000; i++) console.log(i + ':' + line);
console.error('late error');
throw new Error('late uncaught');
</script>""",
    # 150 messages of a megabyte each, logged after the load.
    "/console-megabytes": b"""<!doctype html><link rel=icon href="data:,"><p>mb</p><script>
addEventListener('load', () => {
  const line = 'm'.repeat(1024 * 1024);
  for (let i = 0; i < 150; i++) console.log(i + ':' + line);
});
</script>""",
    # A button under a full-page overlay, and one that is replaced every few ms.
    "/covered": b"""<!doctype html><button id=under style="position:absolute;top:10px">b</button>
<div style="position:fixed;inset:0;background:#c00"></div>""",
    "/detaching": b"""<!doctype html><button id=b>b</button><script>
setInterval(() => {
  const old = document.getElementById('b');
  if (old) { old.remove(); return; }
  const b = document.createElement('button'); b.id = 'b'; b.textContent = 'b';
  document.body.append(b);
}, 5);
</script>""",
    # Wider and taller than any screenshot side cap.
    "/huge": b"""<!doctype html><body style="margin:0">
<div style="width:30000px;height:100000px;background:linear-gradient(45deg,#fff,#036)">x</div>""",
}


@pytest.fixture
def odd_site() -> Iterator[str]:
    require_chromium()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path == "/no-content":
                self.send_response(204)
                self.end_headers()
                return
            if self.path == "/cut-short":  # promises 100 kB, sends 10 bytes, hangs up
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", "100000")
                self.end_headers()
                self.wfile.write(b"<p>partial")
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            if self.path == "/download":
                body, headers = b"binary", {"Content-Disposition": "attachment; filename=a.bin"}
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
            else:
                body, headers = _PAGES.get(self.path, b"not found"), {}
                self.send_response(200 if self.path in _PAGES else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with serve_handler(Handler) as base_url:
        yield base_url


def with_browser(work: Callable[[Browser], Awaitable[T]]) -> T:
    """``work`` in a fresh Browser; afterwards a plain scan must still pass in it and no
    tab may be left open."""

    async def go() -> T:
        async with Browser() as browser:
            result = await work(browser)
            assert browser.open_pages == 0
            return result

    return asyncio.run(go())


async def scan_then_plain(
    browser: Browser, store: ArtifactStore, base: str, path: str, timeout: float = 20
) -> ScanResult | PageFailed:
    """Scan ``base + path`` (its result or its error), then check the Browser is still
    usable for a normal page."""
    outcome: ScanResult | PageFailed
    try:
        outcome = await scan(browser, ALLOW, store, base + path, timeout=timeout)
    except PageFailed as exc:
        outcome = exc
    assert browser.open_pages == 0
    after = await scan(browser, ALLOW, store, base + "/ok", timeout=20)
    assert after.status == 200
    return outcome


@pytest.mark.parametrize("path", ["/meta-to-ok", "/script-to-ok"])
def test_a_page_that_redirects_itself_after_its_load_is_scanned_where_it_lands(
    odd_site: str, tmp_path: Path, path: str
) -> None:
    store = ArtifactStore(tmp_path)
    result = with_browser(lambda browser: scan_then_plain(browser, store, odd_site, path))

    assert isinstance(result, ScanResult), result
    assert result.final_url == odd_site + "/ok"
    html, _ = store.get(result.html_hash)
    assert b"landed" in html


def test_a_page_that_reloads_itself_forever_fails_with_a_sentence(
    odd_site: str, tmp_path: Path
) -> None:
    store = ArtifactStore(tmp_path)
    result = with_browser(lambda browser: scan_then_plain(browser, store, odd_site, "/meta-loop"))

    assert isinstance(result, PageFailed)
    assert "kept navigating" in str(result), result


def test_a_console_flood_is_recorded_bounded_and_counted_whole(
    odd_site: str, tmp_path: Path
) -> None:
    store = ArtifactStore(tmp_path)
    result = with_browser(
        lambda browser: scan_then_plain(browser, store, odd_site, "/console-flood", timeout=60)
    )

    assert isinstance(result, ScanResult), result
    assert len(result.console) == MAX_CONSOLE_ENTRIES
    assert all(len(entry.text) <= MAX_CONSOLE_TEXT for entry in result.console)
    assert result.console[0].text.startswith("0:xxx")
    # Everything the page logged is counted, what was not kept included.
    assert result.console_count == 3002
    assert result.console_errors == 2


def test_console_messages_do_not_pile_up_in_the_runners_memory(odd_site: str) -> None:
    # Playwright holds a handle to every console argument (here a 1 MB string each) for
    # as long as the page lives, unless it is released: 150 MB in the runner's process.
    async def work(browser: Browser) -> tuple[int, int]:
        async with browser.open_page() as tab:
            tracemalloc.start()
            try:
                await tab.goto(odd_site + "/console-megabytes", timeout=20)
                async with asyncio.timeout(60):
                    while len(tab.console) < 150:
                        await asyncio.sleep(0.05)
                await asyncio.sleep(0.5)  # the releases' round trips
                gc.collect()
                held, _ = tracemalloc.get_traced_memory()  # allocated since start, alive
            finally:
                tracemalloc.stop()
            return len(tab.console), held

    count, held = with_browser(work)

    assert count == 150
    assert held < 30 * 1024 * 1024, f"the runner holds {held / 2**20:.0f} MB more"


def test_a_huge_page_is_captured_within_the_pixel_cap_and_stays_comparable(
    odd_site: str, tmp_path: Path
) -> None:
    store = ArtifactStore(tmp_path)
    result = with_browser(lambda browser: scan_then_plain(browser, store, odd_site, "/huge"))

    assert isinstance(result, ScanResult), result
    png, _ = store.get(result.screenshot_hash)
    width, height = png_size(png)
    assert width * height <= MAX_SHOT_PIXELS
    assert width > 1280 and height >= 800  # still the page's width, cut in height
    assert compare(png, png, 1.0).passed  # the visual regression can read it


def test_a_download_fails_the_scan_saying_so(odd_site: str, tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    result = with_browser(lambda browser: scan_then_plain(browser, store, odd_site, "/download"))

    assert isinstance(result, PageFailed)
    assert "file download" in str(result), result


def run_steps(base: str, path: str, steps: tuple[Step, ...], tmp_path: Path) -> CaseResult:
    store = ArtifactStore(tmp_path)

    async def work(browser: Browser) -> CaseResult:
        result = await run_case(
            browser, ALLOW, store, base + path, steps, limits=CaseLimits(step_timeout=2)
        )
        assert browser.open_pages == 0
        assert (await scan(browser, ALLOW, store, base + "/ok", timeout=20)).status == 200
        return result

    return with_browser(work)


@pytest.mark.parametrize(
    ("path", "selector", "why"),
    [
        ("/covered", "#under", "<div></div> intercepts pointer events"),
        ("/detaching", "#b", "element was detached from the DOM"),
    ],
)
def test_a_click_that_cannot_happen_says_why(
    odd_site: str, tmp_path: Path, path: str, selector: str, why: str
) -> None:
    click = Step(Action(ActionType.CLICK, Element(selector=selector)))
    result = run_steps(odd_site, path, (click,), tmp_path)

    assert result.status is Status.FAILED
    exception = result.steps[0].action.exception or ""
    assert exception.startswith(f"clicking {selector}: Locator.click: Timeout 2000ms exceeded")
    assert why in exception, exception


def test_a_page_whose_connection_breaks_mid_body_fails_at_once_saying_so(
    odd_site: str, tmp_path: Path
) -> None:
    # Chromium never fires the load event of a document cut short: without a look at
    # the network the scan would wait for its whole timeout and blame the clock.
    store = ArtifactStore(tmp_path)
    started = time.monotonic()
    result = with_browser(lambda browser: scan_then_plain(browser, store, odd_site, "/cut-short"))

    assert isinstance(result, PageFailed)
    assert "ERR_CONTENT_LENGTH_MISMATCH" in str(result), result
    assert "broke off" in str(result), result
    assert time.monotonic() - started < 15  # not the 20 s timeout


def test_an_empty_204_answer_fails_saying_so(odd_site: str, tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    result = with_browser(lambda browser: scan_then_plain(browser, store, odd_site, "/no-content"))

    assert isinstance(result, PageFailed)
    assert "HTTP 204" in str(result), result


def test_a_click_on_nothing_invents_no_reason(odd_site: str, tmp_path: Path) -> None:
    # Nothing matched, or the page was too busy to be queried: Playwright cannot tell.
    click = Step(Action(ActionType.CLICK, Element(selector="#never")))
    result = run_steps(odd_site, "/ok", (click,), tmp_path)

    exception = result.steps[0].action.exception
    assert exception == "clicking #never: Locator.click: Timeout 2000ms exceeded."


def test_case_generation_explores_a_site_from_where_its_start_page_redirects(
    odd_site: str, tmp_path: Path
) -> None:
    async def work(browser: Browser) -> str:
        ctx = JobContext(browser, ALLOW, ArtifactStore(tmp_path), tmp_path / "baselines")
        start, _ = await explore(ctx, odd_site + "/meta-to-ok", timeout=20)
        return start.url

    assert with_browser(work) == odd_site + "/ok"


def _own_chromiums() -> list[int]:
    """Pids of the Chromium browser processes (not their renderers) this test started:
    descendants of this process, so no other test's browser is touched."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
            if b"chromium" not in command or b"--type=" in command:
                continue
            pid = int(entry.name)
            for _ in range(5):  # up through the Playwright driver to this process
                stat = Path(f"/proc/{pid}/stat").read_text()
                pid = int(stat.rsplit(")", 1)[1].split()[1])
                if pid == os.getpid():
                    found.append(int(entry.name))
                    break
        except (OSError, ValueError, IndexError):
            continue
    return found


def test_the_browser_is_launched_again_after_chromium_died(odd_site: str, tmp_path: Path) -> None:
    # Chromium killed (the OOM killer, a crash): the runner's next jobs must not all fail
    # with BrowserUnavailable, which the worker answers by running the job again, forever.
    store = ArtifactStore(tmp_path)

    async def work(browser: Browser) -> int | None:
        assert (await scan(browser, ALLOW, store, odd_site + "/ok", timeout=20)).status == 200
        victims = _own_chromiums()
        assert len(victims) == 1, victims
        os.kill(victims[0], signal.SIGKILL)
        async with asyncio.timeout(10):
            while Path(f"/proc/{victims[0]}").exists() and _own_chromiums():
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # Playwright notices the disconnection
        return (await scan(browser, ALLOW, store, odd_site + "/ok", timeout=20)).status

    assert with_browser(work) == 200
