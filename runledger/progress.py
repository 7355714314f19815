"""Progress lines on stderr for the tools that read much of the log: replay, verify,
export, swap, audit and as-of."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from streams.progress import Progress


class ProgressLine:
    """``  41% 412,000 events  52,311 ev/s  0:11 left`` on one rewritten stderr line; in
    a log file or a pipe (no terminal), a plain line every ``log_every_s`` instead, so a
    CI log gets a readable record rather than thousands of carriage returns."""

    def __init__(
        self, out: TextIO | None = None, every_s: float = 0.2, log_every_s: float = 10.0
    ) -> None:
        self._out = out or sys.stderr
        isatty = getattr(self._out, "isatty", None)
        self._tty = bool(isatty and isatty())
        self._every = every_s if self._tty else log_every_s
        self._last = 0.0 if self._tty else time.monotonic()  # no line at 0 %

    def __call__(self, p: Progress, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last < self._every:
            return
        self._last = now
        share = p.read / p.total if p.total else 1.0
        left = p.left_s
        eta = "--:--" if left is None else f"{int(left) // 60}:{int(left) % 60:02d}"
        line = f"{share:5.0%} {p.events:>12,} events {p.rate:>10,.0f} ev/s  {eta} left"
        if self._tty:
            self._out.write(f"\r{line}   " + ("\n" if final else ""))
        else:
            self._out.write(line + "\n")
        self._out.flush()


class QuietFirst:
    """A progress line that appears only once the work has run ``after_s``: a read that
    ends sooner prints nothing (``audit`` of a small ledger answers at once, without a
    line in front of its table)."""

    def __init__(self, line: ProgressLine | None = None, after_s: float = 1.0) -> None:
        self._line = line or ProgressLine()
        self._after = after_s
        self._shown = False

    def __call__(self, p: Progress, final: bool = False) -> None:
        if not self._shown and p.elapsed < self._after:
            return
        self._shown = True
        self._line(p, final)
