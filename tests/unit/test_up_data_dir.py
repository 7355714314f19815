"""`runledger up` holds its data dir: a second `up` while the first starts, and a data
dir it cannot write, are refused before anything starts (runledger/up.py)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runledger.stackfile import StackFile
from tests.cli_support import Cli, one_line

NO_BROKER = "127.0.0.1:1"  # nothing answers: an `up` that went on fails on it at once


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


HOLD = """
import fcntl, os, sys, time
lock = open(sys.argv[1], "a+")
fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
lock.truncate(0); lock.write(f"{os.getpid()}\\n"); lock.flush()
print("held", flush=True)
time.sleep(60)
"""


def test_a_second_up_while_the_first_starts_is_refused_naming_it(
    bare: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first `up` has written no stack.json yet (it does once the stack is up): the
    second one went on, waited 30 s for the broker's lock, then named the first one's
    broker as the process to kill."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path / "up.lock")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        monkeypatch.setenv("RUNLEDGER_KAFKA_BOOTSTRAP", NO_BROKER)
        code, out, err = bare("up", "--data-dir", str(tmp_path), "--port", str(_free_port()))
        line = one_line(err)
        assert code == 2 and f"(runledger up, pid {holder.pid})" in line, err
        assert "runs or is starting on" in line and "--data-dir" in line
    finally:
        holder.kill()
        holder.wait()


def test_up_after_the_holder_died_takes_the_data_dir(
    bare: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock goes with the process that held it (here: killed), whatever up.lock says."""
    (tmp_path / "up.lock").write_text("999999\n")
    monkeypatch.setenv("RUNLEDGER_KAFKA_BOOTSTRAP", NO_BROKER)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code, _, err = bare("up", "--data-dir", str(tmp_path), "--port", str(_free_port()))
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert code == 2 and "cannot reach a Kafka broker at 127.0.0.1:1" in err, err


def _without_root_powers() -> list[str]:
    """The command prefix that makes permissions count: root writes into a read-only
    folder unless it gives up CAP_DAC_OVERRIDE."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    assert setpriv, "root needs setpriv (util-linux) to test a read-only data dir"
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]


def test_a_read_only_data_dir_is_refused_before_anything_starts(tmp_path: Path) -> None:
    """Before: up started the broker and every service, then failed on writing
    stack.json with a bare `[Errno 13] Permission denied: '.../stack.tmp'`."""
    data_dir = tmp_path / "stack"
    StackFile("http://127.0.0.1:9", NO_BROKER, "", "rl_t", 0, False).write(data_dir)
    data_dir.chmod(0o555)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNLEDGER_")}
    env["RUNLEDGER_KAFKA_BOOTSTRAP"] = NO_BROKER
    argv = ["up", "--data-dir", str(data_dir), "--port", str(_free_port())]
    began = time.monotonic()
    try:
        done = subprocess.run(
            [*_without_root_powers(), sys.executable, "-m", "runledger", *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        data_dir.chmod(0o755)
    assert done.returncode == 2 and time.monotonic() - began < 30, done.stderr
    line = one_line(done.stderr)
    assert line == (
        f"runledger: cannot write to the data dir {data_dir} (Permission denied): make it "
        "writable or choose another --data-dir"
    ), line
    assert sorted(p.name for p in data_dir.iterdir()) == ["stack.json"]
