"""The local test site of the runner tests, served on 127.0.0.1 on a free port.

Static pages live in ``pages/``; a few routes are dynamic:

- ``/changeable``: its look follows ``site.variant`` (the test changes it between scans);
- ``/redirect?to=<url>``: a 302 to ``to``;
- ``/embed?src=<url>``: a page with one image loaded from ``src``;
- ``/slow?s=<seconds>``: answers after a delay;
- ``/missing``: a 404;
- ``/hook`` (any method): records the request in ``site.hooks`` and answers 200 (or
  ``site.hook_status``).

Every request's path is recorded in ``site.hits``. Use ``with serve_site() as site:``;
the server stops when the block ends.
"""

from __future__ import annotations

import html
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

PAGES = Path(__file__).parent / "pages"
_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css", ".svg": "image/svg+xml"}

_VARIANTS = {
    1: ("#ffffff", "#222222", "Version one of the changeable page"),
    2: ("#ffe0e0", "#aa0000", "Version two looks different"),
}


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class TestSite:
    host: str
    port: int
    variant: int = 1
    hook_status: int = 200
    hits: list[str] = field(default_factory=list)
    hooks: list[ReceivedRequest] = field(default_factory=list)

    __test__ = False  # not a pytest test class

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.base_url + path


def _changeable(variant: int) -> bytes:
    background, color, heading = _VARIANTS.get(variant, _VARIANTS[1])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Changeable</title>
<style>
  body {{ margin: 0; background: {background}; color: {color}; font-family: sans-serif; }}
  .box {{ width: 400px; height: 200px; margin: 40px; background: {color}; }}
</style></head>
<body><h1 id="title">{heading}</h1><div class="box"></div></body></html>
""".encode()


def _handler(site: TestSite) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # keep test output quiet

        def _send(self, status: int, body: bytes, media_type: str, **headers: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", media_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _route(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            site.hits.append(parts.path)
            if parts.path == "/hook":
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                site.hooks.append(
                    ReceivedRequest(self.command, self.path, dict(self.headers.items()), body)
                )
                self._send(site.hook_status, b'{"ok": true}', "application/json")
            elif parts.path == "/changeable":
                self._send(200, _changeable(site.variant), _TYPES[".html"])
            elif parts.path == "/redirect":
                self._send(302, b"", "text/plain", Location=query.get("to", ["/"])[0])
            elif parts.path == "/embed":
                src = html.escape(query.get("src", ["/logo.svg"])[0])
                page = f'<html><body><h1>Embed</h1><img id="embedded" src="{src}"></body></html>'
                self._send(200, page.encode(), _TYPES[".html"])
            elif parts.path == "/slow":
                time.sleep(float(query.get("s", ["5"])[0]))
                self._send(200, b"<html><body>slow</body></html>", _TYPES[".html"])
            else:
                name = "index.html" if parts.path == "/" else parts.path.lstrip("/")
                path = (PAGES / name).resolve()
                if path.parent != PAGES.resolve() or not path.is_file():
                    self._send(404, b"<html><body>not found</body></html>", _TYPES[".html"])
                    return
                media_type = _TYPES.get(path.suffix, "application/octet-stream")
                self._send(200, path.read_bytes(), media_type)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _route

    return Handler


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        # A browser that closes its context drops requests still in flight (a favicon,
        # a slow page): not an error of the site.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


@contextmanager
def serve_handler(handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``handler`` on a free port of ``host`` until the block ends; its base URL."""
    server = _Server((host, 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="test-site", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def serve_site(host: str = "127.0.0.1") -> Iterator[TestSite]:
    """Serve the test site on a free port of ``host`` until the block ends."""
    site = TestSite(host=host, port=0)
    with serve_handler(_handler(site), host) as base_url:
        site.port = int(base_url.rsplit(":", 1)[1])
        yield site


def main() -> None:
    """``python tests/site/server.py``: serve the site in a process of its own (the
    benches do, so they import no test code and the site's threads do not share the
    measuring process's interpreter). Prints ``<base url>`` on one line, then serves
    until stdin closes (the parent ended) or ``--max-seconds`` pass."""
    import argparse

    parser = argparse.ArgumentParser(description="serve the runner test site")
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    args = parser.parse_args()
    with serve_site() as site:
        print(site.base_url, flush=True)
        done = threading.Event()

        def watch_stdin() -> None:
            sys.stdin.read()  # returns at EOF: the parent closed the pipe or exited
            done.set()

        threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()
        done.wait(args.max_seconds)


if __name__ == "__main__":
    main()
