"""Notifications connect to the address the guard checked, not to a second lookup.

A DNS-rebinding name answers a public address to the guard's lookup and a private one
to the next. Here ``127.0.0.2`` plays the public address (the guard is told only
``127.0.0.1`` is private) and ``127.0.0.1`` the rebinding answer: the servers that
should get the notification listen on ``127.0.0.2``, a trap on ``127.0.0.1`` at the
same port, and every later lookup of the name (``socket.getaddrinfo``, which smtplib
and httpx would call) answers ``127.0.0.1``. Over TLS the host is still named: the
test certificate is valid for ``*.rebind.test`` names only, not for any address.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import socket
import socketserver
import ssl
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from runners import guard as guard_module
from runners.errors import NotifyFailed
from runners.guard import TargetGuard
from runners.notify import SmtpServer, send_email, send_webhook, webhook_from_node
from tests.site.server import serve_site
from tests.site.smtp import serve_smtp

pytestmark = pytest.mark.integration

CHECKED = "127.0.0.2"  # the "public" first answer, where the real servers listen
REBOUND = "127.0.0.1"  # the private answer every later lookup gets
NAMES = ("hooks.rebind.test", "mail.rebind.test")


class RebindingDns:
    """The first lookup of a ``.rebind.test`` name answers ``first``, every later one
    ``REBOUND``; ``answers`` lists what was given out, in order."""

    def __init__(self, first: Sequence[str] = (CHECKED,)) -> None:
        self.first = tuple(first)
        self.answers: list[tuple[str, ...]] = []

    def answer(self) -> tuple[str, ...]:
        addresses = (REBOUND,) if self.answers else self.first
        self.answers.append(addresses)
        return addresses

    async def resolve(self, host: str, port: int) -> list[str]:
        return list(self.answer())


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> RebindingDns:
    rebinding = RebindingDns()
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host  # anyio passes bytes
        if isinstance(name, str) and name.endswith(".rebind.test"):
            number = int(port or 0)
            return [
                (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (a, number))
                for a in rebinding.answer()
            ]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(
        guard_module, "refusal_reason", lambda a: "loopback" if str(a) == REBOUND else None
    )
    return rebinding


def _guard(dns: RebindingDns) -> TargetGuard:
    return TargetGuard(allow_private=False, resolver=dns.resolve)


@contextmanager
def trap(port: int) -> Iterator[socket.socket]:
    """A listener on the rebinding answer at ``port``; it never accepts, so a connection
    made to it waits in its backlog, where ``assert_untouched`` finds it."""
    listener = socket.create_server((REBOUND, port))
    listener.setblocking(False)
    try:
        yield listener
    finally:
        listener.close()


def assert_untouched(listener: socket.socket) -> None:
    with pytest.raises(BlockingIOError):
        connection, peer = listener.accept()
        connection.close()
        pytest.fail(f"a connection from {peer} went to the rebinding answer")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for ``NAMES`` (and no address): (cert, key)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
        + ["-nodes", "-days", "1", "-subj", "/CN=rebind.test", "-keyout", str(key)]
        + ["-out", str(cert), "-addext", "subjectAltName=" + ",".join(f"DNS:{n}" for n in NAMES)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


@dataclass
class TlsSeen:
    """What a TLS test server saw: the SNI names clients sent, and what they sent."""

    sni: list[str | None] = field(default_factory=list)
    received: list[bytes] = field(default_factory=list)


def _server_context(certificate: tuple[Path, Path], seen: TlsSeen) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)

    def record(sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        seen.sni.append(name)

    context.sni_callback = record
    return context


@contextmanager
def in_thread(server: socketserver.ThreadingTCPServer | ThreadingHTTPServer) -> Iterator[int]:
    """Serve ``server`` on a thread for the block; its port."""
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def serve_https(certificate: tuple[Path, Path]) -> Iterator[tuple[int, TlsSeen]]:
    """An HTTPS server on ``CHECKED`` that records each request's Host header."""
    seen = TlsSeen()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen.received.append(self.headers.get("Host", "").encode())
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((CHECKED, 0), Handler)
    server.socket = _server_context(certificate, seen).wrap_socket(server.socket, server_side=True)
    with in_thread(server) as port:
        yield port, seen


@contextmanager
def serve_starttls_smtp(certificate: tuple[Path, Path]) -> Iterator[tuple[int, TlsSeen]]:
    """Just enough SMTP with STARTTLS on ``CHECKED``: a message is kept only when it
    came over TLS."""
    seen = TlsSeen()
    context = _server_context(certificate, seen)

    class Handler(socketserver.StreamRequestHandler):
        def reply(self, line: str) -> None:
            self.wfile.write(line.encode() + b"\r\n")
            self.wfile.flush()

        def handle(self) -> None:
            tls = False
            self.reply("220 starttls-test ready")
            while raw := self.rfile.readline():
                verb = raw[:4].decode().upper()
                if verb == "EHLO":
                    self.reply("250 starttls-test" if tls else "250-starttls-test\r\n250 STARTTLS")
                elif verb == "STAR":
                    self.reply("220 go ahead")
                    self.request = context.wrap_socket(self.request, server_side=True)
                    self.rfile = self.request.makefile("rb")
                    self.wfile = self.request.makefile("wb")
                    tls = True
                elif verb == "DATA":
                    self.reply("354 end with <CRLF>.<CRLF>")
                    lines = []
                    while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                        lines.append(chunk)
                    if tls:
                        seen.received.append(b"".join(lines))
                    self.reply("250 queued")
                elif verb == "QUIT":
                    self.reply("221 bye")
                    return
                else:
                    self.reply("250 ok")

    server = socketserver.ThreadingTCPServer((CHECKED, 0), Handler)
    with in_thread(server) as port:
        yield port, seen


def test_a_webhook_never_goes_to_the_rebinding_answer(dns: RebindingDns) -> None:
    with serve_site(CHECKED) as site, trap(site.port) as listener:
        url = f"http://hooks.rebind.test:{site.port}/hook"
        request = webhook_from_node(url, "POST", "{}", "{}")
        result = asyncio.run(send_webhook(_guard(dns), request, timeout=5))
        assert result.ok
        (received,) = site.hooks
        assert received.headers["Host"] == f"hooks.rebind.test:{site.port}"
        assert dns.answers == [(CHECKED,)]  # the guard's lookup, and no other
        assert_untouched(listener)


def test_an_https_webhook_is_pinned_and_verified_against_its_name(
    dns: RebindingDns, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    with serve_https(certificate) as (port, seen), trap(port) as listener:
        request = webhook_from_node(f"https://hooks.rebind.test:{port}/hook", "POST", "{}", "{}")
        result = asyncio.run(send_webhook(_guard(dns), request, timeout=5))
        assert result.ok
        assert seen.sni == ["hooks.rebind.test"]
        assert seen.received == [f"hooks.rebind.test:{port}".encode()]
        assert_untouched(listener)
        # The certificate is checked against the name, not the address: a name it does
        # not cover is refused although the address and the certificate are the same.
        other = webhook_from_node(f"https://other.rebind.test:{port}/hook", "POST", "{}", "{}")
        with pytest.raises(NotifyFailed, match="CERTIFICATE_VERIFY_FAILED|match"):
            asyncio.run(send_webhook(_guard(RebindingDns()), other, timeout=5))
        assert len(seen.received) == 1


def test_an_email_never_goes_to_the_rebinding_answer(dns: RebindingDns) -> None:
    with serve_smtp(CHECKED) as mailbox, trap(mailbox.port) as listener:
        server = SmtpServer(host="mail.rebind.test", port=mailbox.port, sender="runs@example.com")
        asyncio.run(send_email(_guard(dns), server, "ops@example.com", "s", "b", timeout=5))
        (mail,) = mailbox.messages
        assert mail.recipients == ("ops@example.com",)
        assert dns.answers == [(CHECKED,)]
        assert_untouched(listener)


def test_email_tries_the_next_checked_address_when_one_does_not_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(guard_module, "refusal_reason", lambda a: None)
    dns = RebindingDns(first=("127.0.0.3", CHECKED))  # nothing listens on 127.0.0.3
    with serve_smtp(CHECKED) as mailbox:
        server = SmtpServer(host="mail.rebind.test", port=mailbox.port)
        asyncio.run(send_email(_guard(dns), server, "ops@example.com", "s", "b", timeout=5))
        assert len(mailbox.messages) == 1


def test_starttls_names_the_host_to_a_pinned_address(
    dns: RebindingDns, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    with serve_starttls_smtp(certificate) as (port, seen), trap(port) as listener:
        server = SmtpServer(host="mail.rebind.test", port=port, starttls=True)
        asyncio.run(send_email(_guard(dns), server, "ops@example.com", "tls", "b", timeout=5))
        assert seen.sni == ["mail.rebind.test"]
        (data,) = seen.received
        assert email.message_from_bytes(data)["Subject"] == "tls"
        assert_untouched(listener)
        other = SmtpServer(host="other.rebind.test", port=port, starttls=True)
        with pytest.raises(NotifyFailed, match="CERTIFICATE_VERIFY_FAILED|match"):
            asyncio.run(send_email(_guard(RebindingDns()), other, "ops@example.com", "s", "b"))
        assert len(seen.received) == 1


def test_a_webhook_tries_the_next_checked_address_when_one_refuses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(guard_module, "refusal_reason", lambda a: None)
    dns = RebindingDns(first=("127.0.0.3", CHECKED))  # nothing listens on 127.0.0.3
    with serve_site(CHECKED) as site:
        url = f"http://hooks.rebind.test:{site.port}/hook?key=s3cret"
        request = webhook_from_node(url, "POST", "{}", '{"n": 1}')
        result = asyncio.run(send_webhook(_guard(dns), request, timeout=5))
        assert result.ok
        (received,) = site.hooks
        assert received.headers["Host"] == f"hooks.rebind.test:{site.port}"
        assert dns.answers == [("127.0.0.3", CHECKED)]  # no second lookup either


@contextmanager
def serve_hangup(host: str, port: int) -> Iterator[list[bytes]]:
    """A server on ``host:port`` that reads a request and closes without answering;
    yields what it read."""
    listener = socket.create_server((host, port))
    listener.settimeout(5)
    read: list[bytes] = []

    def serve() -> None:
        with contextlib.suppress(OSError):
            connection, _ = listener.accept()
            with connection:
                connection.settimeout(5)
                read.append(connection.recv(65536))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield read
    finally:
        thread.join(timeout=5)
        listener.close()


def test_a_webhook_is_never_sent_again_once_an_address_took_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first address accepts the request and hangs up: the receiver may have acted
    on it, so the second address must not get it too."""
    monkeypatch.setattr(guard_module, "refusal_reason", lambda a: None)
    dns = RebindingDns(first=("127.0.0.3", CHECKED))
    with serve_site(CHECKED) as site, serve_hangup("127.0.0.3", site.port) as read:
        request = webhook_from_node(
            f"http://hooks.rebind.test:{site.port}/hook", "POST", "{}", "{}"
        )
        with pytest.raises(NotifyFailed):
            asyncio.run(send_webhook(_guard(dns), request, timeout=5))
        assert read and read[0].startswith(b"POST /hook")
        assert site.hooks == []


def test_a_webhook_names_every_address_that_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guard_module, "refusal_reason", lambda a: None)
    dns = RebindingDns(first=("127.0.0.3", "127.0.0.4"))
    with serve_site(CHECKED) as site:  # only for a port nobody listens on elsewhere
        request = webhook_from_node(
            f"http://hooks.rebind.test:{site.port}/hook", "POST", "{}", "{}"
        )
        with pytest.raises(NotifyFailed, match="no address accepted.*127.0.0.3.*127.0.0.4"):
            asyncio.run(send_webhook(_guard(dns), request, timeout=5))
