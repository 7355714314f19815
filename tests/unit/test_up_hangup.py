"""A closed terminal: SIGHUP stops a service like SIGTERM (its default action ended the
process at once, without a clean stop), a SIGHUP that comes again does not cut the stop
short (a closed terminal sends it more than once by itself), and what ``up`` says after
its terminal closed goes to ``DIR/logs/up.log`` instead of failing (runledger.console).
``up`` itself on a terminal that closes: tests/integration/test_up_hangup.py."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path

from runledger.services import FORCED_EXIT
from tests.unit.test_stop_grace import CLEAN_SERVICE, HANGING_SERVICE, _ended, _started


def test_sighup_stops_a_service_cleanly() -> None:
    proc = _started(CLEAN_SERVICE)
    proc.send_signal(signal.SIGHUP)
    code, err = _ended(proc, within=30)
    assert code == 0, err
    assert "without a clean stop" not in err


def test_a_repeated_sighup_leaves_the_stop_its_grace() -> None:
    proc = _started(HANGING_SERVICE, "1.5")
    began = time.monotonic()
    proc.send_signal(signal.SIGHUP)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "stopping"
    proc.send_signal(signal.SIGHUP)  # the shell's, then the kernel's when the shell exits
    code, err = _ended(proc, within=30)
    assert code == FORCED_EXIT, err
    assert time.monotonic() - began >= 1.5
    assert "did not stop within 1.5 s of SIGHUP" in err


def test_sigterm_after_sighup_still_ends_a_hanging_stop_at_once() -> None:
    proc = _started(HANGING_SERVICE, "600")
    proc.send_signal(signal.SIGHUP)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "stopping"
    proc.send_signal(signal.SIGTERM)
    code, err = _ended(proc, within=30)
    assert code == FORCED_EXIT, err
    assert "a second SIGTERM came while stopping" in err


# ``up``'s console on a terminal that closes between two lines: the first is seen on
# the terminal, the rest must reach the log file, the log handler's lines too.
SPEAKER = """
import logging, sys
from pathlib import Path
from runledger.console import Console

logging.basicConfig(level=logging.INFO, format="%(message)s")
console = Console(Path(sys.argv[1]))
console.say("before the hangup")
sys.stdin.readline()  # the test closes the terminal, then sends a line on the pipe
console.terminal_closed()
console.say("said after the hangup")
console.say("token: rl_" + "A" * 43)
console.say("an error after the hangup", err=True)
logging.info("logged after the hangup")
print("moved" if console.moved() else "not moved", file=open(sys.argv[1] + ".done", "w"))
"""


def test_up_s_lines_go_to_its_log_once_its_terminal_closed(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "up.log"
    master, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", SPEAKER, str(log)],
        stdin=subprocess.PIPE,
        stdout=terminal,
        stderr=terminal,
        text=True,
    )
    os.close(terminal)
    try:
        seen = b""
        while b"before the hangup\r\n" not in seen:  # the whole line (a print may
            seen += os.read(master, 1024)  # write the text and its newline apart)
        os.close(master)  # every write to the terminal fails with EIO from now on
        master = -1
        _, err = proc.communicate("go\n", timeout=30)
        assert proc.returncode == 0  # no traceback, no failed flush at exit
    finally:
        if master >= 0:
            os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert Path(f"{log}.done").read_text().strip() == "moved"
    lines = log.read_text().splitlines()
    assert "its terminal or output is gone; its lines go on here" in lines[0]
    assert lines[1:] == [
        "said after the hangup",
        "token: rl_[redacted]",  # as in every log: stack.json has it
        "an error after the hangup",
        "logged after the hangup",
    ]
    assert "before the hangup" not in log.read_text()


# Output to a pipe whose reader is gone (``runledger up | tee x``, tee killed): EPIPE,
# which moves the stream on the first write that fails, not before.
PIPED = """
import sys
from pathlib import Path
from runledger.console import Console

console = Console(Path(sys.argv[1]))
console.say("to the pipe")
sys.stdin.readline()
console.terminal_closed()  # a pipe is no terminal: nothing moves
print("moved" if console.moved() else "kept", file=sys.stderr, flush=True)
console.say("after the reader left")
"""


def test_a_pipe_without_reader_moves_stdout_on_the_failed_write(tmp_path: Path) -> None:
    log = tmp_path / "up.log"
    proc = subprocess.Popen(
        [sys.executable, "-c", PIPED, str(log)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None and proc.stderr is not None
    assert proc.stdout.readline().strip() == "to the pipe"
    proc.stdout.close()
    proc.stdin.write("go\n")
    proc.stdin.close()
    assert proc.wait(30) == 0
    assert proc.stderr.read().strip() == "kept"
    assert log.read_text().splitlines()[1:] == ["after the reader left"]
