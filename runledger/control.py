"""``DATA_DIR/node.sock``: how a command line asks the running node to do something.

A Unix socket in the data dir, created with mode 0600, so by default only the user who
runs the node can connect (and root); on Linux the node also checks the caller's uid
(``SO_PEERCRED``). Nothing listens on the network for this.

One JSON object per line: the caller sends ``{"op": ..., ...}``; the node answers with
any number of ``{"progress": "..."}`` lines and then one line with ``"ok"``: true and
the result, or false and ``"error"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("runledger.control")

SOCKET_NAME = "node.sock"
# sun_path holds 108 bytes with its terminating NUL on Linux (104 on BSDs).
_MAX_PATH = 100
_LINE_LIMIT = 1 << 20
_TOO_LONG = f"the request is longer than {_LINE_LIMIT} bytes"

Report = Callable[[str], Awaitable[None]]
# A handler gets the request and a way to report progress; returns the result fields.
Handler = Callable[[dict[str, Any], Report], Awaitable[dict[str, Any]]]


class ControlError(Exception):
    """The node answered a request with an error; the message is the node's."""


class NoNode(Exception):
    """No node listens on the data dir's socket (none runs, or it crashed)."""


class RequestFailed(Exception):
    """A handler's error: its message goes back to the caller as ``"error"``."""


@contextlib.contextmanager
def _address(path: Path) -> Iterator[str]:
    """``path`` as a socket address; through the folder's descriptor when it is longer
    than a Unix socket address may be (Linux only)."""
    if len(os.fsencode(path)) <= _MAX_PATH or not Path("/proc/self/fd").is_dir():
        yield str(path)
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def _peer_uid(writer: asyncio.StreamWriter) -> int | None:
    """The uid of the connected process, where the platform tells it."""
    sock = writer.get_extra_info("socket")
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    _, uid, _ = struct.unpack("3i", raw)
    return int(uid)


class ControlServer:
    """Serves ``handlers`` (by ``op``) on a Unix socket at ``path``; run on the node's loop."""

    def __init__(self, path: Path, handlers: dict[str, Handler]) -> None:
        self.path = path
        self._handlers = handlers
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> bool:
        """Listen; False (logged) when the socket cannot be made: the node runs without it.

        Call after the node holds its DuckDB file: a socket left by a node that died is
        then known to be stale and is replaced.
        """
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            with _address(self.path) as address:
                umask = os.umask(0o177)  # born 0600: no moment where others may connect
                try:
                    sock.bind(address)
                finally:
                    os.umask(umask)
            self._server = await asyncio.start_unix_server(
                self._connected, sock=sock, limit=_LINE_LIMIT
            )
        except OSError as exc:
            sock.close()
            log.warning("node: no control socket at %s (%s): live swap is off", self.path, exc)
            return False
        return True

    async def close(self) -> None:
        """Stop listening and cancel requests in progress (each undoes itself)."""
        if self._server is not None:
            self._server.close()
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            uid = _peer_uid(writer)
            if uid is not None and uid not in (0, os.getuid()):
                await self._send(writer, {"ok": False, "error": "not the node's user"})
                return
            try:
                line = await reader.readline()
            except ValueError:  # no newline within the limit
                await self._send(writer, {"ok": False, "error": _TOO_LONG})
                return
            await self._send(writer, await self._answer(line, writer))
        except (ConnectionError, asyncio.IncompleteReadError):
            log.info("node: a control client went away")
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, line: bytes, writer: asyncio.StreamWriter) -> dict[str, Any]:
        try:
            request = json.loads(line)
            handler = self._handlers[request["op"]]
        except (ValueError, KeyError, TypeError):
            return {"ok": False, "error": f"not a request this node knows: {line[:200]!r}"}

        async def report(text: str) -> None:
            with contextlib.suppress(ConnectionError):  # the caller may stop listening
                await self._send(writer, {"progress": text})

        try:
            return {"ok": True, **await handler(request, report)}
        except RequestFailed as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:
            log.exception("node: the %s request failed", request["op"])
            return {"ok": False, "error": f"the node failed: {exc!r} (see its log)"}

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
        if writer.is_closing():  # uvloop raises RuntimeError on a write to a closed peer
            raise ConnectionResetError("the control client went away")
        writer.write(json.dumps(message).encode() + b"\n")
        await writer.drain()


async def ask(
    path: Path, request: dict[str, Any], on_progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Send ``request`` to the node listening on ``path`` and return its result.

    NoNode when nothing listens there; ControlError with the node's message when it
    refuses or fails.
    """
    line = json.dumps(request).encode() + b"\n"
    if len(line) > _LINE_LIMIT:
        raise ControlError(_TOO_LONG)
    try:
        with _address(path) as address:
            reader, writer = await asyncio.open_unix_connection(address, limit=_LINE_LIMIT)
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise NoNode(f"no node listens on {path}") from exc
    try:
        writer.write(line)
        await writer.drain()
        while True:
            line = await reader.readline()
            if not line:
                raise ControlError("the node closed the connection without an answer")
            message = json.loads(line)
            if "progress" in message:
                if on_progress is not None:
                    on_progress(str(message["progress"]))
                continue
            if not message.get("ok"):
                raise ControlError(str(message.get("error", "the node refused the request")))
            return {k: v for k, v in message.items() if k != "ok"}
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
