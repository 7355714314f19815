"""What the machine gives the local broker: free loopback ports, a probe that the
broker answers, room on the log dir's disk, Kafka's own data-dir lock, and a child
process that dies with its parent. No state: the broker (``local.py``) uses these."""

from __future__ import annotations

import base64
import ctypes
import fcntl
import shutil
import signal
import socket
import struct
import uuid
from collections.abc import Callable
from pathlib import Path

from runledger.broker.errors import BrokerError


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _port_free(port: int) -> bool:
    # SO_REUSEADDR as the JVM sets it: a port held only by TIME_WAIT connections of the
    # previous run of this broker counts as free.
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _answers_api_versions(port: int) -> bool:
    """Send Kafka's ApiVersions v0 request and check the reply carries no error code."""
    client_id = b"runledger-probe"
    body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(struct.pack(">i", len(body)) + body)
            head = s.recv(10)
    except OSError:
        return False
    return len(head) >= 10 and struct.unpack(">iih", head)[1:] == (7, 0)


def _new_cluster_id() -> str:
    while True:  # an id starting with "-" would read as an option on the command line
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


LOW_SPACE = 64 * 1024 * 1024


def _disk_full_note(log_dir: Path) -> str | None:
    """A sentence when the disk of ``log_dir`` is (nearly) full: Kafka then cannot write
    even its own log, and what it left says nothing about the cause."""
    try:
        free = shutil.disk_usage(log_dir).free
    except OSError:
        return None
    if free >= LOW_SPACE:
        return None
    return (
        f"Little or no space left on the disk of {log_dir} ({free // 1024} KiB free): Kafka "
        "needs room for its data and log; free some space or choose another --data-dir."
    )


def _unusable(log_dir: Path, exc: OSError) -> BrokerError:
    """The error for a log dir that cannot be written (read-only, full, not a folder):
    a write's ENOSPC names no file, so this names the folder."""
    return BrokerError(
        f"the Kafka log dir {log_dir} cannot be used: {exc.strerror or exc}"
        + (f" ({exc.filename})" if exc.filename else "")
        + "; free some space, make it writable, or choose another --data-dir"
    )


def _kafka_lock_free(path: Path) -> bool:
    """Whether no process holds Kafka's own lock on a data dir (a POSIX record lock,
    which ours only tests: closing the file lets it go again)."""
    try:
        with path.open("a") as f:
            try:
                fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False
            return True
    except FileNotFoundError:
        return True


# Looked up here, not in the child: between fork and exec the child must not load anything.
_prctl: Callable[..., int] | None
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl  # Linux only
except (OSError, AttributeError):
    _prctl = None


def die_with_parent() -> None:  # runs in the child between fork and exec
    if _prctl is not None:
        _prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: SIGTERM when the parent dies
