"""A tiny SMTP server for the notify tests: enough of RFC 5321 for smtplib (EHLO, AUTH
PLAIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT), messages kept in memory."""

from __future__ import annotations

import base64
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ReceivedMail:
    sender: str
    recipients: tuple[str, ...]
    data: bytes
    login: str | None


@dataclass
class MailBox:
    host: str
    port: int
    messages: list[ReceivedMail] = field(default_factory=list)


def _handler(box: MailBox) -> type[socketserver.StreamRequestHandler]:
    class Handler(socketserver.StreamRequestHandler):
        def reply(self, line: str) -> None:
            self.wfile.write(line.encode() + b"\r\n")
            self.wfile.flush()

        def handle(self) -> None:
            sender, recipients, login = "", [], None
            self.reply("220 test-smtp ready")
            while True:
                raw = self.rfile.readline()
                if not raw:
                    return
                line = raw.decode().rstrip("\r\n")
                verb = line[:4].upper()
                if verb in ("EHLO", "HELO"):
                    self.reply("250-test-smtp")
                    self.reply("250 AUTH PLAIN")
                elif verb == "AUTH":
                    parts = line.split()
                    decoded = base64.b64decode(parts[2]).split(b"\0")
                    login = decoded[1].decode()
                    self.reply("235 2.7.0 authenticated")
                elif verb == "MAIL":
                    sender = line.split(":", 1)[1].strip().strip("<>").split(">")[0]
                    self.reply("250 ok")
                elif verb == "RCPT":
                    recipients.append(line.split(":", 1)[1].strip().strip("<>"))
                    self.reply("250 ok")
                elif verb == "DATA":
                    self.reply("354 end with <CRLF>.<CRLF>")
                    lines = []
                    while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                        lines.append(chunk)
                    box.messages.append(
                        ReceivedMail(sender, tuple(recipients), b"".join(lines), login)
                    )
                    recipients = []
                    self.reply("250 queued")
                elif verb in ("RSET", "NOOP"):
                    self.reply("250 ok")
                elif verb == "QUIT":
                    self.reply("221 bye")
                    return
                else:
                    self.reply("502 not implemented")

    return Handler


@contextmanager
def serve_smtp(host: str = "127.0.0.1") -> Iterator[MailBox]:
    """Receive mail on a free port of ``host`` until the block ends."""
    box = MailBox(host, 0)
    server = socketserver.ThreadingTCPServer((host, 0), _handler(box))
    server.daemon_threads = True
    box.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, name="test-smtp", daemon=True)
    thread.start()
    try:
        yield box
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
