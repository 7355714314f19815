"""`runledger up`: its own broker, decider and node; SIGTERM stops all; a second up resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration


def _start_up(data_dir: Path, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNLEDGER_")}
    env["RUNLEDGER_PARTITIONS"] = "2"
    return subprocess.Popen(
        [sys.executable, "-m", "runledger", "up", "--data-dir", str(data_dir), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_token(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[str, list[str]]:
    """Read up's output until it prints the token line; the token and the lines read."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if "token for account 'default':" in line:
            return line.rsplit(" ", 1)[1].strip(), lines
    proc.kill()
    raise AssertionError("up did not print a token:\n" + "\n".join(lines))


def _stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def _pids_of_children(data_dir: Path) -> list[int]:
    """Processes still running whose command line mentions the data dir (broker, node, decider)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = (entry / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "pytest" in cmdline:
            continue
        # the broker names the data dir on its command line; the decider and the node
        # get it as RUNLEDGER_DATA_DIR
        if str(data_dir) in cmdline or f"RUNLEDGER_DATA_DIR={data_dir}" in environ:
            found.append(int(entry.name))
    return found


def test_up_runs_everything_and_a_second_up_resumes_with_the_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "ledger"
    port = free_port()
    proc = _start_up(data_dir, port)
    try:
        token, lines = _wait_for_token(proc)
        stack = json.loads((data_dir / "stack.json").read_text())
        assert stack["api_url"] == f"http://127.0.0.1:{port}"
        assert stack["token"] == token and stack["kafka_bootstrap"]
        assert set(stack) >= {"api_url", "kafka_bootstrap", "topic_prefix", "token"}
        headers = {"Authorization": token}
        created = httpx.post(
            f"{stack['api_url']}/process",
            json={"type": "up.test"},
            headers=headers,
            params={"wait": "true"},
            timeout=30,
        )
        assert created.status_code == 201, created.text
        pid = created.json()["id"]
        # up starts the orchestrator and a runner of every job kind too (issue 3).
        assert any("started orchestrator (pid" in line for line in lines), lines
        runner_log = data_dir / "logs" / "runner.log"
        ready = "runner ready: kinds scan,case,webhook,slack,email,wait,generate,"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
            runner_log.exists() and ready in runner_log.read_text(errors="replace")
        ):
            time.sleep(0.2)
        assert runner_log.exists() and ready in runner_log.read_text(errors="replace")
    finally:
        code = _stop(proc)
    assert proc.stdout is not None
    lines += proc.stdout.read().splitlines()
    assert code == 0, "\n".join(lines)
    # up names the broker it started among its stop lines, as it names each service.
    stopped = ("stopped the local Kafka broker (pid", "stopped the apache/kafka")  # or Docker's
    assert any(x in line for line in lines for x in stopped), "\n".join(lines)
    time.sleep(1)
    assert _pids_of_children(data_dir) == [], "up left processes running"

    proc = _start_up(data_dir, port)
    try:
        again, lines = _wait_for_token(proc)
        assert again == token, "a resumed stack keeps its token"
        found = httpx.get(
            f"http://127.0.0.1:{port}/process/{pid}",
            headers={"Authorization": token},
            params={"wait": "true"},
            timeout=30,
        )
        assert found.status_code == 200, found.text
        assert found.json()["type"] == "up.test"
    finally:
        assert _stop(proc) == 0, "\n".join(lines)
