"""`runledger up` in a terminal that closes: the kernel sends SIGHUP to the terminal's
session leader, whose default action ended `up` at once (status -1): no stop in order,
no record of it, and the data dir's lock let go while its services (in sessions of
their own; the kernel's SIGTERM to the children of a dead parent stops them) and its
broker were all stopping at once. Here `up` runs on a pseudo-terminal as its controlling
terminal, and the terminal is closed the way a closed window closes it (the master side
goes away: SIGHUP, and every later write to it fails with EIO)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import time
import uuid
from pathlib import Path

import httpx
import pytest

from runledger.stackfile import StackFile
from tests.integration.conftest import free_port
from tests.integration.test_cli_review import _gone, _pids_of, _start_up, stop_up

pytestmark = pytest.mark.integration


def _take_terminal() -> None:  # in the child, after setsid: stdin becomes its terminal
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _read_until(master: int, marker: str, within: float) -> list[str]:
    """Lines from the terminal's master side until one holds ``marker``."""
    text = ""
    deadline = time.monotonic() + within
    while marker not in text and time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1.0)
        if not ready:
            continue
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the other side is gone
            break
        if not chunk:
            break
        text += chunk.decode("utf-8", "replace")
    return [line.rstrip("\r") for line in text.splitlines()]


def test_up_stops_its_services_in_order_when_its_terminal_closes(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNLEDGER_")}
    env |= {
        "RUNLEDGER_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "RUNLEDGER_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:8]}.",
        "RUNLEDGER_PARTITIONS": "1",
    }
    data_dir = tmp_path / "stack"
    master, slave = pty.openpty()
    argv = ["up", "--data-dir", str(data_dir), "--port", str(free_port())]
    up = subprocess.Popen(
        [sys.executable, "-m", "runledger", *argv],
        env=env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        preexec_fn=_take_terminal,
    )
    os.close(slave)
    pids: dict[str, int] = {}
    try:
        lines = _read_until(master, "token for", 120)
        pids = _pids_of(lines)
        assert {"node", "decider", "orchestrator", "runner"} <= set(pids), lines
        stack = StackFile.read(data_dir)
        headers = {"Authorization": stack.token}
        made = httpx.post(
            f"{stack.api_url}/process",
            json={"type": "hangup.test"},
            params={"wait": "true"},
            headers=headers,
            timeout=30,
        )
        assert made.status_code == 201, made.text
        process = made.json()["id"]

        os.close(master)  # the terminal closes: SIGHUP to up, EIO on its writes
        master = -1
        began = time.monotonic()
        assert up.wait(60) == 0  # as after SIGTERM
        assert time.monotonic() - began < 30
        assert all(_gone(pid, 10) for pid in pids.values()), pids
        said = (data_dir / "logs" / "up.log").read_text()
        assert "SIGHUP" in said and "stopping" in said, said
        assert f"stopped node (pid {pids['node']}) cleanly" in said, said
    finally:
        if master >= 0:
            os.close(master)
        if up.poll() is None:
            up.kill()
            up.wait()
        for pid in pids.values():  # none left by a passing run
            if not _gone(pid, 0.5):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    again, lines = _start_up(env, data_dir)
    try:
        assert any("token for" in x for x in lines), lines
        stack = StackFile.read(data_dir)
        url, headers = f"{stack.api_url}/process/{process}", {"Authorization": stack.token}
        deadline = time.monotonic() + 30  # the node catches up with the log first
        got = httpx.get(url, headers=headers, timeout=10)
        while got.status_code == 404 and time.monotonic() < deadline:
            time.sleep(0.2)
            got = httpx.get(url, headers=headers, timeout=10)
        assert got.status_code == 200 and got.json()["type"] == "hangup.test", got.text
    finally:
        stop_up(again)
