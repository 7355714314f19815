"""Browser config: which Chromium the runners launch, with which flags and page size.

Plain values, built where a runner is assembled (``runledger.runner``) and handed to
:class:`runners.browser.Browser`; nothing here touches Playwright.
"""

from __future__ import annotations

from dataclasses import dataclass

CHROMIUM = "/usr/bin/chromium"
# WebRTC sends STUN/TURN over UDP sockets of its own, past the HTTP stack: neither the
# request filter nor the egress proxy sees it, so a page could send datagrams to any
# private address (and learn from its ICE candidates which ones answer). Without UDP,
# WebRTC falls back to TCP through the proxy, where the guard checks it.
NO_DIRECT_UDP = "--webrtc-ip-handling-policy=disable_non_proxied_udp"
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-gpu",
    "--no-first-run",
    NO_DIRECT_UDP,
)


@dataclass(frozen=True)
class BrowserConfig:
    """How to launch Chromium. ``extra_args`` are appended to ``CHROMIUM_ARGS``."""

    executable_path: str = CHROMIUM
    max_pages: int = 4
    viewport_width: int = 1280
    viewport_height: int = 800
    extra_args: tuple[str, ...] = ()
