"""The egress proxy on loopback sockets: what it forwards, to where, and what it refuses."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from runners.egress_proxy import EgressProxy
from runners.errors import TargetRefused

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _upstream() -> tuple[asyncio.Server, int, list[bytes]]:
    """A server that records what it receives until a blank line, then answers."""
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], received


def _run(
    request: bytes,
    connect: Callable[[str, int], Awaitable[Streams]],
) -> tuple[bytes, list[tuple[str, str]]]:
    """Send ``request`` to a fresh proxy; (everything it answered, its refusals)."""
    refusals: list[tuple[str, str]] = []

    async def go() -> bytes:
        proxy = EgressProxy(connect, lambda asked, why: refusals.append((asked, str(why))))
        url = await proxy.start()
        port = int(url.rsplit(":", 1)[1])
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            return answer
        finally:
            await proxy.close()

    return asyncio.run(go()), refusals


def _to(port: int, asked: list[Any]) -> Callable[[str, int], Awaitable[Streams]]:
    async def connect(host: str, p: int) -> Streams:
        asked.append((host, p))
        return await asyncio.open_connection("127.0.0.1", port)

    return connect


async def _refuse(host: str, port: int) -> Streams:
    raise TargetRefused(f"http://{host}:{port}/", "10.0.0.1", "private")


async def _unreachable(host: str, port: int) -> Streams:
    raise OSError("no address of it accepted a connection")


def _through_upstream(request: bytes) -> tuple[bytes, list[bytes], list[Any]]:
    """``request`` sent through a proxy whose connections reach a recording upstream:
    (the proxy's answer, what the upstream received, the (host, port) connected to)."""

    async def scenario() -> tuple[bytes, list[bytes], list[Any]]:
        server, port, received = await _upstream()
        asked: list[Any] = []
        async with server:
            answer, _ = await asyncio.to_thread(_run, request, _to(port, asked))
        return answer, received, asked

    return asyncio.run(scenario())


def test_a_plain_request_goes_on_in_origin_form_without_hop_by_hop_headers() -> None:
    answer, received, asked = _through_upstream(
        b"GET http://example.org:8080/a/b?c=1 HTTP/1.1\r\nHost: example.org:8080\r\n"
        b"Proxy-Connection: keep-alive\r\nConnection: keep-alive\r\n"
        b"Proxy-Authorization: Basic eDp5\r\nAccept: text/html\r\n\r\n"
    )
    assert answer.endswith(b"hello") and answer.startswith(b"HTTP/1.1 200 OK")
    assert asked == [("example.org", 8080)]
    (head,) = received
    lines = head.decode().split("\r\n")
    assert lines[0] == "GET /a/b?c=1 HTTP/1.1"
    assert "Host: example.org:8080" in lines and "Accept: text/html" in lines
    assert "Connection: close" in lines
    assert not [line for line in lines if line.lower().startswith(("proxy-", "connection: k"))]


def test_a_tunnel_carries_bytes_to_the_checked_host() -> None:
    answer, received, asked = _through_upstream(
        b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n"
        b"GET /inside HTTP/1.1\r\n\r\n"
    )
    assert asked == [("example.org", 443)]
    assert answer.startswith(b"HTTP/1.1 200 Connection Established\r\n\r\nHTTP/1.1 200 OK")
    assert received == [b"GET /inside HTTP/1.1\r\n\r\n"]


def test_a_refused_tunnel_gets_403_and_is_reported() -> None:
    answer, refusals = _run(b"CONNECT 10.0.0.1:443 HTTP/1.1\r\n\r\n", _refuse)
    assert answer.startswith(b"HTTP/1.1 403 Forbidden")
    assert [asked for asked, _ in refusals] == ["10.0.0.1:443"]
    assert "private" in refusals[0][1]


def test_a_refused_plain_request_gets_no_answer_the_browser_could_take_for_the_site() -> None:
    answer, refusals = _run(b"GET http://rebound.test/ HTTP/1.1\r\n\r\n", _refuse)
    assert answer == b""
    assert [asked for asked, _ in refusals] == ["http://rebound.test/"]


def test_an_unreachable_host_gets_502_and_is_not_a_refusal() -> None:
    answer, refusals = _run(b"GET http://example.org/ HTTP/1.1\r\n\r\n", _unreachable)
    assert answer.startswith(b"HTTP/1.1 502 Bad Gateway")
    assert refusals == []


def test_what_is_not_an_absolute_http_request_gets_400() -> None:
    for request in (
        b"GET /relative HTTP/1.1\r\n\r\n",
        b"GET ftp://example.org/ HTTP/1.1\r\n\r\n",
        b"CONNECT example.org HTTP/1.1\r\n\r\n",
        b"not http at all\r\n\r\n",
    ):
        answer, refusals = _run(request, _refuse)
        assert answer.startswith(b"HTTP/1.1 400 Bad Request"), request
        assert refusals == []
