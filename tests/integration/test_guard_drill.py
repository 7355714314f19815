"""The guard drilled in a real Chromium, as an attacker with an account's token would:
a public page that tries every way a page can reach the runner's private network, case
``navigate`` steps and Case generation that are led there, and webhooks redirected there.

The network of these tests: ``public.test`` (any name, in fact) resolves to 8.8.8.8 for
the guard, and the guard's opener reaches the local page server when asked for 8.8.8.8,
so the page is "public". A trap listens on 127.0.0.1 (HTTP, and UDP for WebRTC) and
records whatever reaches it. Each guarded drill has a control run, the same page with
private targets allowed (or the protection switched off), which must reach the trap:
the page really tries, and the guard is what stops it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from runners import guard as guard_module
from runners.artifacts import ArtifactStore
from runners.browser import Browser, BrowserConfig
from runners.case import Action, ActionType, CaseLimits, Status, Step, run_case
from runners.errors import TargetRefused
from runners.guard import TargetGuard
from runners.jobs_context import JobContext
from runners.jobs_generate import explore
from runners.notify import WebhookRequest, send_slack, send_webhook
from runners.scan import ScanResult, scan
from tests.integration.chromium import require_chromium
from tests.site.server import serve_handler

pytestmark = pytest.mark.integration

PUBLIC_ADDRESS = "8.8.8.8"


@dataclass
class Trap:
    """What reached 127.0.0.1: HTTP request lines by path, and UDP datagrams."""

    port: int
    udp: socket.socket
    paths: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def datagrams(self) -> int:
        count = 0
        while True:
            try:
                self.udp.recvfrom(4096)
            except BlockingIOError:
                return count
            count += 1


@pytest.fixture
def trap() -> Iterator[Trap]:
    paths: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def _any(self) -> None:
            paths.append(self.path)
            body = b"<html><body>private</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_HEAD = _any

    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.setblocking(False)
    try:
        with serve_handler(Handler) as base:
            trap = Trap(int(base.rsplit(":", 1)[1]), udp, paths)
            yield trap
    finally:
        udp.close()


def _pages(trap: Trap) -> dict[str, str]:
    t, port = trap.base, trap.port
    stun = f"stun:127.0.0.1:{trap.udp.getsockname()[1]}"
    return {
        # Every subresource kind a page has, at once.
        "/subresources": f"""
<img src="{t}/img"><img src="http://2130706433:{port}/decimal">
<img src="http://0x7f000001:{port}/hex"><img src="http://127.1:{port}/short">
<iframe src="{t}/iframe"></iframe><iframe src="http://inner.test:PORT/inner"></iframe>
<link rel="prefetch" href="{t}/prefetch">
<script>
fetch("{t}/fetch").catch(() => 0);
const xhr = new XMLHttpRequest(); xhr.open("GET", "{t}/xhr"); xhr.send();
try {{ new WebSocket("ws://127.0.0.1:{port}/ws"); }} catch (e) {{}}
try {{ new WebSocket("ws://localhost:{port}/ws-localhost"); }} catch (e) {{}}
navigator.sendBeacon("{t}/beacon", "x");
new EventSource("{t}/eventsource");
new Worker(URL.createObjectURL(new Blob(['fetch("{t}/worker")'])));
window.open("{t}/popup");
</script>""",
        "/inner": f'<img src="{t}/inner-img"><script>fetch("{t}/inner-fetch")</script>',
        # A page that leaves for the private network by itself, each in its own way.
        "/meta": f'<meta http-equiv="refresh" content="0;url={t}/meta">',
        "/script": f'<script>location.href = "{t}/script";</script>',
        "/form": f'<form id="f" method="post" action="{t}/form"></form><script>f.submit()</script>',
        "/link": f'<a id="a" href="{t}/link">go</a><script>a.click()</script>',
        # WebRTC: STUN over UDP, which neither the request filter nor the proxy sees.
        "/webrtc": f"""<script>
const pc = new RTCPeerConnection({{iceServers: [{{urls: "{stun}"}}]}});
pc.createDataChannel("x");
pc.createOffer().then((offer) => pc.setLocalDescription(offer));
</script>""",
        # Case generation: links to the private network, direct and through a redirect.
        "/start": f"""<h1>Start</h1><a href="/redirect?to={t}/gen-redirect">Pricing</a>
<a href="{t}/gen-direct">Admin</a><a href="/redirect?to=http://10.0.0.1/">Team</a>
<a href="/about">About us</a>""",
        "/about": "<h1>About</h1>",
    }


@dataclass
class PageSite:
    port: int

    def public(self, path: str) -> str:
        return f"http://public.test:{self.port}{path}"

    def local(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def pages(trap: Trap) -> Iterator[PageSite]:
    require_chromium()
    served = _pages(trap)
    port_box: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path, _, query = self.path.partition("?")
            if path == "/redirect":
                self.send_response(302)
                self.send_header("Location", query.removeprefix("to="))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            text = served.get(path, "<h1>nothing here</h1>").replace("PORT", str(port_box[0]))
            body = f"<!doctype html><html><body>{text}</body></html>".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with serve_handler(Handler) as base:
        port_box.append(int(base.rsplit(":", 1)[1]))
        yield PageSite(port_box[0])


async def _public(host: str, port: int) -> Sequence[str]:
    return [PUBLIC_ADDRESS]


async def _to_pages(address: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if address != PUBLIC_ADDRESS:
        raise OSError(f"{address} is not reachable in this test")
    return await asyncio.open_connection("127.0.0.1", port)


GUARDED = TargetGuard(allow_private=False, resolver=_public, opener=_to_pages)
ALLOW = TargetGuard(allow_private=True)


def _scan(
    url: str, guard: TargetGuard, tmp_path: Path, settle: float = 1.5, *extra: str
) -> ScanResult:
    async def go() -> ScanResult:
        async with Browser(BrowserConfig(extra_args=extra)) as browser:
            return await scan(
                browser, guard, ArtifactStore(tmp_path), url, timeout=20, settle=settle
            )

    return asyncio.run(go())


# What the control run of /subresources reaches on 127.0.0.1 (the popup, the worker and
# inner.test, which does not resolve without the guard's resolver, are not counted on).
REACHED_WITHOUT_GUARD = {
    "/img", "/decimal", "/hex", "/short", "/iframe", "/fetch", "/xhr", "/ws",
    "/ws-localhost", "/beacon", "/eventsource",
}  # fmt: skip


def test_no_subresource_of_a_public_page_reaches_the_private_network(
    pages: PageSite, trap: Trap, tmp_path: Path
) -> None:
    result = _scan(pages.public("/subresources"), GUARDED, tmp_path)
    assert result.status == 200
    assert trap.paths == []
    blocked = " ".join(result.blocked_requests)
    for path in ("/img", "/fetch", "/xhr", "/beacon", "/eventsource", "/inner-img"):
        assert path in blocked, (path, result.blocked_requests)
    assert f"127.0.0.1:{trap.port}" in result.blocked_requests  # the WebSocket tunnel

    _scan(pages.local("/subresources"), ALLOW, tmp_path)
    assert set(trap.paths) >= REACHED_WITHOUT_GUARD, trap.paths


@pytest.mark.parametrize("how", ["/meta", "/script", "/form", "/link"])
def test_a_public_page_cannot_take_itself_to_the_private_network(
    pages: PageSite, trap: Trap, tmp_path: Path, how: str
) -> None:
    result = _scan(pages.public(how), GUARDED, tmp_path, 0.5)
    assert trap.paths == []
    assert f"{trap.base}{how}" in result.blocked_requests
    assert result.final_url.startswith("chrome-error://")  # the browser's error page

    _scan(pages.local(how), ALLOW, tmp_path, 0.5)
    assert how in trap.paths


def test_a_redirect_of_the_page_to_the_private_network_fails_the_scan(
    pages: PageSite, trap: Trap, tmp_path: Path
) -> None:
    with pytest.raises(TargetRefused) as refused:
        _scan(pages.public(f"/redirect?to={trap.base}/hop"), GUARDED, tmp_path)
    assert str(refused.value) == f"target '{trap.base}/hop' refused: 127.0.0.1 is loopback"
    assert trap.paths == []


def test_webrtc_sends_no_udp_to_the_private_network(
    pages: PageSite, trap: Trap, tmp_path: Path
) -> None:
    _scan(pages.public("/webrtc"), GUARDED, tmp_path, 2.0)
    assert trap.datagrams() == 0
    # The control: the same page with Chromium's default WebRTC policy sends STUN.
    _scan(pages.public("/webrtc"), GUARDED, tmp_path, 2.0, "--webrtc-ip-handling-policy=default")
    assert trap.datagrams() > 0


NAVIGATE_TARGETS = [
    ("http://127.1:{port}/n1", "127.0.0.1 is loopback"),
    ("http://2130706433:{port}/n2", "127.0.0.1 is loopback"),
    ("http://0x7f000001:{port}/n3", "127.0.0.1 is loopback"),
    ("http://[::ffff:127.0.0.1]:{port}/n4", "::ffff:7f00:1 is loopback"),
    ("http://localhost.:{port}/n5", "localhost is a loopback name"),
    ("http://a.localhost:{port}/n6", "a.localhost is a loopback name"),
    ("//127.0.0.1:{port}/n7", "127.0.0.1 is loopback"),
    ("http://127.0.0.1:{port}\\@public.test/n8", "makes the host ambiguous"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is link-local"),
    ("/redirect?to=http://127.0.0.1:{port}/n9", "127.0.0.1 is loopback"),
]


def test_a_navigate_step_to_the_private_network_fails_with_the_guards_reason(
    pages: PageSite, trap: Trap, tmp_path: Path
) -> None:
    async def go() -> list[str]:
        reasons = []
        async with Browser() as browser:
            for target, _ in NAVIGATE_TARGETS:
                step = Step(Action(ActionType.NAVIGATE, path=target.format(port=trap.port)))
                result = await run_case(
                    browser,
                    GUARDED,
                    ArtifactStore(tmp_path),
                    pages.public("/about"),
                    (step,),
                    limits=CaseLimits(step_timeout=5),
                )
                assert result.status is Status.FAILED
                reasons.append(result.steps[0].action.exception or "")
        return reasons

    for (target, says), reason in zip(NAVIGATE_TARGETS, asyncio.run(go()), strict=True):
        assert says in reason, (target, reason)
    assert trap.paths == []


def test_case_generation_does_not_explore_the_private_network(
    pages: PageSite, trap: Trap, tmp_path: Path
) -> None:
    async def go() -> list[str]:
        async with Browser() as browser:
            ctx = JobContext(browser, GUARDED, ArtifactStore(tmp_path), tmp_path / "baselines")
            _, linked = await explore(ctx, pages.public("/start"), timeout=10)
            return [page.url for page in linked]

    assert asyncio.run(go()) == [pages.public("/about")]
    assert trap.paths == []


# Webhooks: the hook stands on 127.0.0.2, which the guard is told is public (the only
# address it lets through here), and answers with a redirect to the trap.
HOOK_ADDRESS = "127.0.0.2"


@pytest.fixture
def hook(trap: Trap, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    real = guard_module.refusal_reason

    def only_the_hook_is_public(
        address: ipaddress.IPv4Address | ipaddress.IPv6Address,
    ) -> str | None:
        return None if str(address) == HOOK_ADDRESS else real(address)

    monkeypatch.setattr(guard_module, "refusal_reason", only_the_hook_is_public)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(307)  # 307 keeps the method and body: the worst case
            self.send_header("Location", f"{trap.base}/hook-redirect")
            self.send_header("Content-Length", "0")
            self.end_headers()

    with serve_handler(Handler, HOOK_ADDRESS) as base:
        yield f"http://hooks.test:{base.rsplit(':', 1)[1]}/hook"


async def _hook_address(host: str, port: int) -> Sequence[str]:
    return [HOOK_ADDRESS]


def test_webhook_and_slack_do_not_follow_a_redirect_to_the_private_network(
    hook: str, trap: Trap
) -> None:
    guard = TargetGuard(allow_private=False, resolver=_hook_address)
    answer = asyncio.run(send_webhook(guard, WebhookRequest(hook, "POST", (), b"{}")))
    assert (answer.status_code, answer.ok) == (307, False)
    slack = asyncio.run(send_slack(guard, hook, "deployed"))
    assert (slack.status_code, slack.ok) == (307, False)
    assert trap.paths == []


@pytest.mark.parametrize(
    "host", ["127.1", "2130706433", "[::ffff:127.0.0.1]", "localhost.", "%31%32%37.0.0.1"]
)
def test_a_webhook_to_a_private_address_form_is_refused_before_connecting(
    trap: Trap, host: str
) -> None:
    guard = TargetGuard(allow_private=False, resolver=_public)
    request = WebhookRequest(f"http://{host}:{trap.port}/hook?token=secret")
    with pytest.raises(TargetRefused) as refused:
        asyncio.run(send_webhook(guard, request))
    assert "secret" not in str(refused.value)  # the error names the origin only
    assert trap.paths == []
