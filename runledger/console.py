"""What ``runledger up`` prints, kept when its terminal or its reader goes away.

``up`` runs in a terminal, or with its output read by a pipe. When the terminal closes
(SIGHUP) every later write to it fails with EIO; when the pipe's reader dies, with
EPIPE. ``up`` still has its most important lines to say then, the record of its
orderly stop, and a failed write must neither end that stop nor hide it: a standard
stream that cannot be written any more is pointed at ``DIR/logs/up.log`` (its file
descriptor, so the log handler's stream and Python's exit-time flush follow it), and
the line goes there instead.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import termios
import time
from pathlib import Path
from typing import TextIO

from runledger.logs import REDACTED, TOKEN

LOG_NAME = "up.log"


class Console:
    """``up``'s standard output and error, moved to ``log_path`` once they fail."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self._moved: set[int] = set()  # file descriptors now writing to log_path

    def say(self, line: str, *, err: bool = False) -> None:
        """Print ``line`` on stdout (stderr with ``err``); when that write fails, move
        the stream to the log file and write it there (an API token in it redacted, as
        in every log: stack.json has it). Never raises for a write."""
        stream = sys.stderr if err else sys.stdout
        if self._moved and self._fd(stream) in self._moved:
            line = TOKEN.sub(REDACTED, line)
        try:
            print(line, file=stream, flush=True)
            return
        except (OSError, ValueError):  # EIO, EPIPE; ValueError: a closed stream object
            pass
        if self._move(stream):
            # Whole, also when part of it reached the terminal (print writes the text and
            # its newline apart). The log file may be unwritable too (a full disk):
            # nowhere left to say it then.
            with contextlib.suppress(OSError, ValueError):
                print(TOKEN.sub(REDACTED, line), file=stream, flush=True)

    def terminal_closed(self) -> None:
        """Move stdout and stderr to the log file when they are a terminal that hung up
        (SIGHUP came because it closed): the log handler writes to stderr, and its lines
        would be lost one by one without a failure ``up`` could see."""
        for stream in (sys.stdout, sys.stderr):
            if stream is not None and _hung_up(stream):
                self._move(stream)

    def moved(self) -> bool:
        """Whether a stream writes to the log file now."""
        return bool(self._moved)

    def _move(self, stream: TextIO | None) -> bool:
        """Point ``stream``'s file descriptor at the log file (appending); whether it
        writes there now."""
        fd = self._fd(stream)
        if fd < 0:
            return False
        if fd in self._moved:
            return True
        try:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            log = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError:
            return False
        try:
            if not self._moved:  # one heading per run: up.log keeps every run's lines
                stamp = time.strftime("%Y-%m-%d %H:%M:%S")
                os.write(
                    log,
                    f"{stamp} runledger up (pid {os.getpid()}): its terminal or output is "
                    "gone; its lines go on here\n".encode(),
                )
            os.dup2(log, fd)
        except OSError:
            return False
        finally:
            os.close(log)
        self._moved.add(fd)
        return True

    @staticmethod
    def _fd(stream: TextIO | None) -> int:
        """``stream``'s file descriptor; -1 when it has none (a test's captured output)."""
        try:
            return stream.fileno() if stream is not None else -1
        except (OSError, ValueError):
            return -1


def _hung_up(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal that hung up: any request to it but a write
    fails with EIO then (a write too, but that would print a line on a live one)."""
    try:
        termios.tcgetattr(stream.fileno())
    except termios.error as exc:
        return bool(exc.args and exc.args[0] == errno.EIO)
    except (OSError, ValueError):
        return False
    return False
