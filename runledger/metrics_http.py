"""A metrics-only HTTP server for the services that have no HTTP port of their own: the
decider, the orchestrator and the runners (``--metrics-port N``, off by default).

``GET /metrics`` answers the Prometheus text exposition (the same rendering as the
node's, :mod:`streams.exposition`), ``GET /health`` 200, any other path 404, any other
method 405. Plain asyncio rather than Starlette and uvicorn: three fixed answers to a
scraper need no framework, and a decider process then loads none. Each connection gets
one answer and is closed (``Connection: close``), so nothing outlives :meth:`close`.

A scrape only reads counters the service keeps anyway; ``collect`` runs on the event
loop's thread, between the service's own steps, so it needs no lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from importlib import metadata

from runledger.settings import Settings, SettingsError
from streams.exposition import CONTENT_TYPE, Family, Sample, gauge, render

log = logging.getLogger("runledger.metrics")

Collect = Callable[[], Iterable[Family]]

# A request head larger than this, or slower than this to arrive, is dropped unanswered:
# a scraper's is a few hundred bytes, sent at once.
MAX_HEAD_BYTES = 16_384
HEAD_TIMEOUT_S = 10.0

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
_REASONS[500] = "Internal Server Error"


def package_version() -> str:
    """The installed runledger's version; ``unknown`` when run from an uninstalled tree."""
    try:
        return metadata.version("runledger")
    except metadata.PackageNotFoundError:
        return "unknown"


def identity_families(
    service: str, version: str, topic_prefix: str, started_at: float
) -> list[Family]:
    """``runledger_<service>_info`` (always 1, the facts in labels) and the process's
    start time (unix seconds), named as the node names its own."""
    info = {"version": version, "topic_prefix": topic_prefix}
    return [
        gauge(f"runledger_{service}_info", f"The {service}'s version and topic prefix.", 1, info),
        Family(
            "runledger_process_start_time_seconds",
            "gauge",
            f"When the {service}'s process started, unix seconds.",
            (Sample(started_at),),
        ),
    ]


class MetricsServer:
    """Serves ``collect()`` rendered at ``GET /metrics`` on ``host:port`` (0: a free
    port, read back from :attr:`port`) between :meth:`start` and :meth:`close`."""

    def __init__(self, collect: Collect, host: str = "127.0.0.1", port: int = 0) -> None:
        self.collect = collect
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Listen; OSError when the address cannot be had (in use, not this machine's)."""
        self._server = await asyncio.start_server(
            self._answer, self.host, self.port, limit=MAX_HEAD_BYTES
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and drop any connection still open; the port is free after."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for writer in list(self._open):
            writer.close()
        await server.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open.add(writer)
        try:
            try:
                async with asyncio.timeout(HEAD_TIMEOUT_S):
                    head = await reader.readuntil(b"\r\n\r\n")
            except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                return  # not an HTTP request worth an answer
            status, body, extra = self._respond(head.split(b"\r\n", 1)[0])
            method = head.split(b" ", 1)[0]
            content_type = CONTENT_TYPE if status == 200 else "text/plain; charset=utf-8"
            lines = [
                f"HTTP/1.1 {status} {_REASONS[status]}",
                f"Content-Type: {content_type}",
                f"Content-Length: {len(body)}",
                "Connection: close",
                *extra,
            ]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
            if method != b"HEAD":
                writer.write(body)
            await writer.drain()
        except ConnectionError:
            pass  # the scraper went away
        finally:
            self._open.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _respond(self, request_line: bytes) -> tuple[int, bytes, list[str]]:
        """Status, body and extra header lines for ``request_line``."""
        parts = request_line.decode("latin-1").split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return 400, b"not an HTTP/1.x request line\n", []
        method, target = parts[0], parts[1]
        path = target.split("?", 1)[0]
        if path not in ("/metrics", "/health"):
            return 404, b"not found: this port serves /metrics and /health only\n", []
        if method not in ("GET", "HEAD"):
            return 405, b"method not allowed\n", ["Allow: GET, HEAD"]
        if path == "/health":
            return 200, b"ok\n", []
        try:
            return 200, render(self.collect()).encode(), []
        except Exception:  # a bug in a family must not end the service, only the scrape
            log.exception("collecting the metrics failed")
            return 500, b"collecting the metrics failed; see the service's log\n", []


@asynccontextmanager
async def serving_metrics(
    settings: Settings, service: str, collect: Collect
) -> AsyncIterator[MetricsServer | None]:
    """A :class:`MetricsServer` for ``service`` on ``settings.host`` and
    ``settings.metrics_port`` (None: no server, yields None) while the block runs; its
    families are ``collect()``'s and the service's identity. SettingsError, saying which
    port, when it cannot listen there."""
    if settings.metrics_port is None:
        yield None
        return
    identity = identity_families(service, package_version(), settings.topic_prefix, time.time())
    server = MetricsServer(lambda: [*collect(), *identity], settings.host, settings.metrics_port)
    try:
        await server.start()
    except OSError as exc:
        raise SettingsError(
            f"the {service}'s metrics cannot listen on {settings.host}:{settings.metrics_port} "
            f"({exc.strerror or exc}); choose another --metrics-port"
        ) from exc
    log.info("%s metrics on %s/metrics", service, server.url)
    try:
        yield server
    finally:
        await server.close()
