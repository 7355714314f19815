"""Egress proxy: a tab's connections go to the addresses the guard checked.

Chromium resolves host names itself. The request filter (``runners.request_filter``)
checks a name before Chromium sends the request, but Chromium then looks the name up
again, and a DNS record may answer a public address to the check and a private one to
the browser (DNS rebinding): the page would load from the private network and its HTML
and screenshot would land in the ledger's artifacts. With the guard active, every
context therefore sends its traffic through one of these: a small HTTP proxy on
127.0.0.1 that resolves and checks the host once and connects to an address it checked.
Chromium resolves nothing itself then.

- ``CONNECT host:port`` (HTTPS and WebSockets): the tunnel carries the bytes as they are;
  TLS runs between Chromium and the site, verified against the host's name.
- A plain HTTP request comes in absolute form (``GET http://host/path HTTP/1.1``); it
  goes on in origin form with ``Connection: close``, one request per connection, and
  the answer comes back as it is.

A refused host is reported to ``refused`` (the tab records it as blocked) and the
connection is failed: a ``403`` to a ``CONNECT`` (Chromium's
``ERR_TUNNEL_CONNECTION_FAILED``), for plain HTTP no answer at all
(``ERR_EMPTY_RESPONSE``), so that no proxy text passes for the site's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import SplitResult, urlsplit

from runners.errors import TargetInvalid, TargetRefused

log = logging.getLogger(__name__)

# (host, port) -> a connection to an address of host the guard checked; raises
# TargetRefused/TargetInvalid when the guard refuses the host, OSError when no checked
# address answers (``TargetGuard.connect``).
Connect = Callable[[str, int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
# (what was asked for: a URL, or host:port for a tunnel; why it was refused)
Refused = Callable[[str, Exception], None]

MAX_HEAD_BYTES = 64 * 1024
_HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"proxy-authorization", b"te"}
)
_TUNNEL_REFUSED = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_TUNNEL_OPEN = b"HTTP/1.1 200 Connection Established\r\n\r\n"
_BAD_GATEWAY = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _Unusable(Exception):
    """A request the proxy cannot forward (malformed, or not HTTP)."""


class EgressProxy:
    """One per browser context. ``start()`` gives the proxy's URL for Playwright's
    ``proxy`` option; ``close()`` stops it and drops its open connections."""

    def __init__(self, connect: Connect, refused: Refused) -> None:
        self._connect_to = connect
        self._refused = refused
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", 0, limit=MAX_HEAD_BYTES
        )
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the browser went away, or sent a head too long to be a request
        except asyncio.CancelledError:
            # close() stops the handlers. Nobody else awaits this task, and asyncio's
            # stream callback reports a cancelled handler as an unhandled error.
            pass
        except _Unusable as exc:
            log.debug("egress proxy: unusable request: %s", exc)
            with contextlib.suppress(ConnectionError):
                writer.write(_BAD_REQUEST)
        finally:
            self._handlers.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        line, _, rest = head.partition(b"\r\n")
        parts = line.split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            raise _Unusable(f"not an HTTP/1 request line: {line[:80]!r}")
        method, target, version = parts
        if method == b"CONNECT":
            await self._tunnel(target.decode("latin-1"), reader, writer)
        else:
            await self._forward(method, target.decode("latin-1"), version, rest, reader, writer)

    async def _open(
        self, asked: str, host: str, port: int, writer: asyncio.StreamWriter, refusal: bytes
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """A connection to a checked address of ``host``, or None once the browser has
        been answered: ``refusal`` when the guard refused (the refusal is reported), a
        502 when no address answered."""
        try:
            return await self._connect_to(host, port)
        except (TargetRefused, TargetInvalid) as exc:
            self._refused(asked, exc)
            log.info("egress proxy refused %s: %s", asked, exc)
            writer.write(refusal)
        except OSError as exc:
            log.info("egress proxy cannot reach %s: %s", asked, exc)
            writer.write(_BAD_GATEWAY)
        await writer.drain()
        return None

    async def _tunnel(
        self, authority: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        host, port = _host_port(urlsplit("//" + authority), None)
        upstream = await self._open(authority, host, port, writer, _TUNNEL_REFUSED)
        if upstream is not None:
            writer.write(_TUNNEL_OPEN)
            await _pipe(reader, writer, *upstream)

    async def _forward(
        self,
        method: bytes,
        url: str,
        version: bytes,
        header_block: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http":
            raise _Unusable(f"not an absolute http URL: {url!r}")
        host, port = _host_port(parts, 80)
        # A refused plain request gets no answer at all: Chromium fails it
        # (ERR_EMPTY_RESPONSE) instead of showing proxy text as the site's page.
        upstream = await self._open(url, host, port, writer, b"")
        if upstream is None:
            return
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = [method + b" " + target.encode("latin-1") + b" " + version]
        for field in header_block.split(b"\r\n"):
            name = field.partition(b":")[0].strip().lower()
            if field and name not in _HOP_BY_HOP:
                head.append(field)
        head.append(b"Connection: close")
        upstream[1].write(b"\r\n".join(head) + b"\r\n\r\n")
        await _pipe(reader, writer, *upstream)


def _host_port(parts: SplitResult, default_port: int | None) -> tuple[str, int]:
    """The host and port a request names; _Unusable when it names none."""
    try:
        host, port = parts.hostname, parts.port or default_port
    except ValueError as exc:  # a port that is not a number, or out of range
        raise _Unusable(f"bad request target {parts.geturl()!r}") from exc
    if not host or port is None:
        raise _Unusable(f"no host and port in {parts.geturl()!r}")
    return host, port


async def _pipe(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
) -> None:
    """Copy bytes both ways until either side closes, then close both."""

    async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()

    directions = [
        asyncio.create_task(copy(reader, up_writer)),
        asyncio.create_task(copy(up_reader, writer)),
    ]
    try:
        await asyncio.wait(directions, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in directions:
            task.cancel()
        await asyncio.gather(*directions, return_exceptions=True)
        up_writer.close()
