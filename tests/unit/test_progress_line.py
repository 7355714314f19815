"""The log-reading tools' progress: a rewritten line on a terminal, plain lines (no
carriage returns, at most one per interval) in a log file or pipe; audit's only when
its read takes a while."""

from __future__ import annotations

import io

import pytest

import runledger.progress
import streams.progress
from runledger.progress import ProgressLine, QuietFirst
from streams.progress import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _progress(read: int, events: int) -> Progress:
    p = Progress()
    p.set_range({0: 0}, {0: 1000})
    p.reach({0: read})
    p.events = events
    return p


def test_a_terminal_gets_one_rewritten_line() -> None:
    out = _Terminal()
    line = ProgressLine(out, every_s=0)
    line(_progress(100, 100))
    line(_progress(500, 500))
    line(_progress(1000, 1000), True)
    text = out.getvalue()
    assert text.count("\r") == 3 and text.count("\n") == 1 and text.endswith("\n")
    assert " 50%" in text and "100%" in text


def test_a_log_gets_plain_lines_at_most_one_per_interval() -> None:
    out = io.StringIO()  # not a terminal
    line = ProgressLine(out, log_every_s=3600)
    for read in range(0, 1000, 10):
        line(_progress(read, read))
    line(_progress(1000, 1000), True)
    text = out.getvalue()
    assert "\r" not in text
    # Within the hour, only the final line: a CI log is not flooded.
    assert len(text.splitlines()) == 1 and text.strip().startswith("100%")


def test_a_log_gets_a_line_each_interval() -> None:
    out = io.StringIO()
    line = ProgressLine(out, log_every_s=0)
    line(_progress(250, 250))
    line(_progress(1000, 1000), True)
    lines = out.getvalue().splitlines()
    assert [x.split()[0] for x in lines] == ["25%", "100%"]


class _Clock:
    """A stand-in for the ``time`` module: ``monotonic`` is what the test sets."""

    now = 1000.0

    @classmethod
    def monotonic(cls) -> float:
        return cls.now


def test_the_line_shows_events_the_rate_and_the_time_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(streams.progress, "time", _Clock)
    monkeypatch.setattr(runledger.progress, "time", _Clock)
    p = Progress()
    p.set_range({0: 0}, {0: 100_000})  # starts the clock at 1000 s
    _Clock.now = 1050.0  # a quarter read in 50 s: 150 s left at that pace
    p.reach({0: 25_000})
    p.events = 24_000
    out = io.StringIO()
    ProgressLine(out, log_every_s=0)(p)
    assert out.getvalue().split() == ["25%", "24,000", "events", "480", "ev/s", "2:30", "left"]
    assert p.left_s == 150.0


def test_a_quick_read_prints_no_line_and_a_long_one_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(streams.progress, "time", _Clock)
    monkeypatch.setattr(runledger.progress, "time", _Clock)
    _Clock.now = 1000.0
    quick, out = Progress(), _Terminal()
    line = QuietFirst(ProgressLine(out, every_s=0), after_s=1.0)
    quick.set_range({0: 0}, {0: 1000})
    _Clock.now = 1000.5
    quick.reach({0: 1000})
    line(quick)
    line(quick, True)
    assert out.getvalue() == ""  # audit's table comes alone

    slow, out = Progress(), _Terminal()
    line = QuietFirst(ProgressLine(out, every_s=0), after_s=1.0)
    slow.set_range({0: 0}, {0: 1000})
    _Clock.now = 1000.5
    slow.reach({0: 100})
    line(slow)
    assert out.getvalue() == ""
    _Clock.now = 1002.0
    slow.reach({0: 600})
    line(slow)
    slow.reach({0: 1000})
    line(slow, True)
    text = out.getvalue()
    assert " 60%" in text and "100%" in text and text.endswith("\n")
