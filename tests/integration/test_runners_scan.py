"""Scans and visual regression against the local test site in a real Chromium."""

from __future__ import annotations

import asyncio
import io
import struct
from collections import Counter
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from PIL import Image

from runners.artifacts import HTML, PNG, ArtifactStore
from runners.browser import CHROMIUM, Browser, BrowserConfig
from runners.errors import PageTimeout, TargetRefused
from runners.guard import TargetGuard
from runners.scan import ScanResult, scan
from runners.vrt import compare
from tests.site.server import TestSite, serve_handler, serve_site

pytestmark = pytest.mark.integration

ALLOW = TargetGuard(allow_private=True)


@pytest.fixture
def site() -> Iterator[TestSite]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup.sh (installs Debian's chromium)")
    with serve_site() as served:
        yield served


# Pages the shared test site does not have: one taller than the viewport, and one that
# animates (an infinite animation, a long finite one, and one started after the load).
_EXTRA_PAGES = {
    "/long": b"""<!doctype html><html><body style="margin:0">
<div style="height:2600px;background:linear-gradient(#fff,#036)">long</div></body></html>""",
    "/animated": b"""<!doctype html><html><head><style>
@keyframes spin { from { transform: rotate(0deg) } to { transform: rotate(360deg) } }
@keyframes fade { from { opacity: 0 } to { opacity: 1 } }
.spin { width: 200px; height: 60px; margin: 40px; background: #c00;
        animation: spin 0.7s linear infinite; }
.fade { width: 300px; height: 80px; margin: 40px; background: #06c; animation: fade 30s; }
</style></head><body><div class="spin"></div><div class="fade"></div><div id="late"></div>
<script>
addEventListener("load", () => setTimeout(() => {
  document.getElementById("late").animate(
    [{ width: "0px", height: "50px", background: "#0a0" },
     { width: "900px", height: "50px", background: "#0a0" }],
    { duration: 20000 });
}, 0));
</script></body></html>""",
}


_SOCKET_PAGE = b"""<!doctype html><html><body><p id="state">opening</p><script>
const socket = new WebSocket("ws://TARGET/");
socket.onopen = () => { document.getElementById("state").textContent = "open"; };
socket.onerror = () => { document.getElementById("state").textContent = "failed"; };
</script></body></html>"""


@pytest.fixture
def extra_site() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = _EXTRA_PAGES.get(self.path)
            if self.path.startswith("/socket-to/"):  # a page that opens a WebSocket
                target = self.path.removeprefix("/socket-to/")
                body = _SOCKET_PAGE.replace(b"TARGET", target.encode())
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: object) -> None:
            pass

    with serve_handler(Handler) as base_url:
        yield base_url


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def run_scans(
    urls: Sequence[str], store: ArtifactStore, guard: TargetGuard = ALLOW, **config: object
) -> list[ScanResult]:
    async def go() -> list[ScanResult]:
        async with Browser(BrowserConfig(**config)) as browser:  # type: ignore[arg-type]
            return [await scan(browser, guard, store, url, timeout=30) for url in urls]

    return asyncio.run(go())


def test_scan_records_status_console_timings_network_and_artifacts(
    site: TestSite, tmp_path: Path
) -> None:
    store = ArtifactStore(tmp_path)
    home, console, missing = run_scans(
        [site.url("/"), site.url("/console.html"), site.url("/missing")], store
    )

    assert home.status == 200
    assert home.final_url == site.url("/")
    assert home.requests >= 3  # the page, its stylesheet and its logo
    assert home.bytes > 0
    assert home.timings.ttfb_ms is not None and home.timings.ttfb_ms >= 0
    assert home.timings.dom_content_loaded_ms is not None
    assert home.timings.load_ms is not None
    assert home.timings.load_ms >= home.timings.dom_content_loaded_ms
    assert home.timings.largest_contentful_paint_ms is not None
    html, media_type = store.get(home.html_hash)
    assert media_type == HTML and b"Welcome to the test site" in html
    png, media_type = store.get(home.screenshot_hash)
    assert media_type == PNG and png.startswith(b"\x89PNG")

    levels = {(entry.level, entry.text) for entry in console.console}
    assert ("log", "hello from the console page") in levels
    assert ("warning", "this is a warning") in levels
    assert ("error", "something went wrong") in levels
    assert any(level == "error" and "uncaught boom" in text for level, text in levels)
    assert console.console_errors >= 2

    assert missing.status == 404


def test_redirects_are_followed_to_the_final_url(site: TestSite, tmp_path: Path) -> None:
    (result,) = run_scans(
        [site.url(f"/redirect?to={site.url('/about.html')}")], ArtifactStore(tmp_path)
    )
    assert result.final_url == site.url("/about.html")
    assert result.status == 200


def test_scan_honours_its_timeout(site: TestSite, tmp_path: Path) -> None:
    async def go() -> None:
        async with Browser() as browser:
            await scan(browser, ALLOW, ArtifactStore(tmp_path), site.url("/slow?s=5"), timeout=1)

    with pytest.raises(PageTimeout):
        asyncio.run(go())


def test_vrt_passes_an_unchanged_page_and_detects_a_changed_one(
    site: TestSite, tmp_path: Path
) -> None:
    store = ArtifactStore(tmp_path)
    (first,) = run_scans([site.url("/changeable")], store)
    (same,) = run_scans([site.url("/changeable")], store)
    site.variant = 2
    (changed,) = run_scans([site.url("/changeable")], store)

    unchanged = compare(
        store.get(first.screenshot_hash)[0], store.get(same.screenshot_hash)[0], 0.95
    )
    assert unchanged.passed
    assert unchanged.similarity == 1.0

    diff = compare(store.get(first.screenshot_hash)[0], store.get(changed.screenshot_hash)[0], 0.95)
    assert not diff.passed
    assert diff.diff_share > 0.05
    diff_hash = store.put(diff.diff_png, PNG)
    assert store.get(diff_hash)[0].startswith(b"\x89PNG")


def test_a_page_taller_than_the_viewport_is_captured_whole(
    extra_site: str, site: TestSite, tmp_path: Path
) -> None:
    store = ArtifactStore(tmp_path)
    long, short = run_scans([extra_site + "/long", site.url("/about.html")], store)
    assert png_size(store.get(long.screenshot_hash)[0]) == (1280, 2600)
    assert png_size(store.get(short.screenshot_hash)[0]) == (1280, 800)


def test_animations_are_stopped_so_unchanged_pages_capture_the_same_pixels(
    extra_site: str, tmp_path: Path
) -> None:
    store = ArtifactStore(tmp_path)
    url = extra_site + "/animated"

    async def go() -> list[ScanResult]:
        async with Browser() as browser:
            results = [await scan(browser, ALLOW, store, url, timeout=30) for _ in range(3)]
            results.append(await scan(browser, ALLOW, store, url, timeout=30, settle=0.3))
            return results

    results = asyncio.run(go())
    assert len({result.screenshot_hash for result in results}) == 1
    # Finite animations ran to their end (no fill: the boxes show their own style, the
    # late bar is gone), the infinite one is cancelled (the red box is not rotated).
    with Image.open(io.BytesIO(store.get(results[0].screenshot_hash)[0])) as image:
        colours = Counter(
            {colour: count for count, colour in image.convert("RGB").getcolors(1 << 24) or ()}
        )
    assert colours[(0x00, 0x66, 0xCC)] == 300 * 80
    assert colours[(0xCC, 0x00, 0x00)] == 200 * 60
    assert colours[(0x00, 0xAA, 0x00)] == 0


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/",
        "http://localhost:{port}/",
        "http://[::1]:{port}/",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
    ],
)
def test_private_targets_are_refused_without_the_setting(
    site: TestSite, tmp_path: Path, target: str
) -> None:
    async def go() -> None:
        async with Browser() as browser:
            await scan(
                browser,
                TargetGuard(allow_private=False),
                ArtifactStore(tmp_path),
                target.format(port=site.port),
                timeout=10,
            )

    with pytest.raises(TargetRefused):
        asyncio.run(go())
    assert site.hits == []


def test_the_same_private_target_is_scanned_with_the_setting(
    site: TestSite, tmp_path: Path
) -> None:
    (result,) = run_scans([site.url("/")], ArtifactStore(tmp_path), TargetGuard(allow_private=True))
    assert result.status == 200


async def _public(host: str, port: int) -> Sequence[str]:
    return ["8.8.8.8"]  # what a public DNS name would resolve to


async def _to_site(address: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """The test's network: the "public" 8.8.8.8 is the local test site."""
    if address != "8.8.8.8":
        raise OSError(f"{address} is not reachable in this test")
    return await asyncio.open_connection("127.0.0.1", port)


# The guard believes public.test is public (8.8.8.8), and its egress proxy reaches the
# test site there: the page is allowed, and what it asks of 127.0.0.1 must be blocked.
# Chromium resolves no name itself (the proxy connects), so no resolver rule is needed.
PUBLIC = TargetGuard(allow_private=False, resolver=_public, opener=_to_site)


def test_subresources_on_private_addresses_are_blocked(site: TestSite, tmp_path: Path) -> None:
    page = f"http://public.test:{site.port}/embed?src=http://127.0.0.1:{site.port}/logo.svg"
    (result,) = run_scans([page], ArtifactStore(tmp_path), PUBLIC)
    assert result.status == 200
    assert result.blocked_requests == (f"http://127.0.0.1:{site.port}/logo.svg",)
    assert "/logo.svg" not in site.hits


def test_redirects_to_private_addresses_are_blocked(site: TestSite, tmp_path: Path) -> None:
    private = f"http://127.0.0.1:{site.port}/about.html"
    with pytest.raises(TargetRefused) as refused:
        run_scans(
            [f"http://public.test:{site.port}/redirect?to={private}"],
            ArtifactStore(tmp_path),
            PUBLIC,
        )
    assert refused.value.address == "127.0.0.1"
    assert "/about.html" not in site.hits
    # A subresource that redirects to a private address is blocked at the hop too.
    hop = f"http://public.test:{site.port}/redirect%3Fto%3D{private}"
    (result,) = run_scans(
        [f"http://public.test:{site.port}/embed?src={hop}"], ArtifactStore(tmp_path), PUBLIC
    )
    assert result.blocked_requests == (private,)
    assert "/about.html" not in site.hits


def test_the_browser_connects_to_the_address_the_guard_checked(
    site: TestSite, extra_site: str, tmp_path: Path
) -> None:
    """DNS rebinding: the guard's lookups of rebind.test answer a public address, the
    browser's own lookup would answer 127.0.0.1 (the rule below). The page must come
    from the address the guard checked, here a second local server standing for the
    public host, and the private test site must see no request."""
    public_port = int(extra_site.rsplit(":", 1)[1])
    opened: list[tuple[str, int]] = []

    async def to_public_host(
        address: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        opened.append((address, port))
        return await asyncio.open_connection("127.0.0.1", public_port)

    guard = TargetGuard(allow_private=False, resolver=_public, opener=to_public_host)
    rebound = ("--host-resolver-rules=MAP rebind.test 127.0.0.1",)
    (result,) = run_scans(
        [f"http://rebind.test:{site.port}/long"], ArtifactStore(tmp_path), guard, extra_args=rebound
    )
    assert site.hits == []
    assert result.status == 200
    assert opened and set(opened) == {("8.8.8.8", site.port)}  # the page, its favicon
    html, _ = ArtifactStore(tmp_path).get(result.html_hash)
    assert b"long" in html


def test_a_websocket_to_a_private_address_is_refused(
    site: TestSite, extra_site: str, tmp_path: Path
) -> None:
    """WebSockets never reach the request filter (Chromium's Fetch domain does not
    pause them); the egress proxy refuses their tunnel to a private address."""
    public_port = int(extra_site.rsplit(":", 1)[1])

    async def to_public_host(
        address: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", public_port)

    guard = TargetGuard(allow_private=False, resolver=_public, opener=to_public_host)
    private = f"127.0.0.1:{site.port}"

    async def go() -> ScanResult:
        # The rule lets Chromium find the page should it resolve public.test itself.
        config = BrowserConfig(extra_args=("--host-resolver-rules=MAP public.test 127.0.0.1",))
        async with Browser(config) as browser:
            page = f"http://public.test:{public_port}/socket-to/{private}"
            return await scan(browser, guard, ArtifactStore(tmp_path), page, settle=1.0)

    result = asyncio.run(go())
    assert result.status == 200
    assert result.blocked_requests == (private,)
    assert site.hits == []
    html, _ = ArtifactStore(tmp_path).get(result.html_hash)
    assert b'id="state">failed<' in html


def test_page_limit_bounds_concurrent_pages(site: TestSite, tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)

    async def go() -> int:
        peak = 0
        async with Browser(BrowserConfig(max_pages=2)) as browser:

            async def one() -> None:
                nonlocal peak
                async with browser.open_page() as tab:
                    peak = max(peak, browser.open_pages)
                    await tab.goto(site.url("/slow?s=0.3"), timeout=10)

            await asyncio.gather(*(one() for _ in range(5)))
            await scan(browser, ALLOW, store, site.url("/"))
            assert browser.open_pages == 0
        return peak

    assert asyncio.run(go()) == 2
