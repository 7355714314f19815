"""`runledger up` through the restarts an operator hits: its broker killed under it
(up stops in seconds, the next up recovers the broker's log with every acknowledged
Process), and a second `up` started while the first one is still starting."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.integration.test_cli_review import _gone, _pids_of, _start_up, stop_up
from tests.integration.test_up import _pids_of_children
from tests.integration.test_up_start import _up

pytestmark = pytest.mark.integration


def _token(lines: list[str]) -> str:
    found = [x for x in lines if "token for account 'default':" in x]
    assert found, "\n".join(lines)
    return found[0].rsplit(" ", 1)[1]


def _api(lines: list[str]) -> str:
    (line,) = [x for x in lines if x.startswith("runledger: API on ")]
    return line.split("API on ", 1)[1].split(";", 1)[0]


def test_a_killed_broker_stops_up_in_seconds_and_the_next_up_has_every_process(
    tmp_path: Path,
) -> None:
    """Before: up said at once that its broker died, then stopped its services one after
    the other, each waiting out its 20 s grace for the dead broker: 36-42 s."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNLEDGER_")}
    env |= {"RUNLEDGER_PARTITIONS": "1"}
    data_dir = tmp_path / "ledger"
    first, lines = _start_up(env, data_dir)
    try:
        token = _token(lines)
        api, headers = _api(lines), {"Authorization": token}
        acknowledged = []
        for i in range(5):
            made = httpx.post(
                f"{api}/process", json={"type": f"drill.{i}"}, headers=headers, timeout=30
            )
            assert made.status_code == 201, made.text
            acknowledged.append(made.json()["id"])
        pids = _pids_of(lines)
        os.kill(pids["broker"], signal.SIGKILL)
        killed = time.monotonic()
        out, _ = first.communicate(timeout=60)
        took = time.monotonic() - killed
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 2, out
    assert f"broker (pid {pids['broker']}) was killed by signal 9" in out, out
    assert "stopping the services (they cannot stop cleanly without it)" in out, out
    assert took < 20, f"up took {took:.1f} s to stop after its broker died:\n{out}"
    assert all(_gone(pid, 10) for pid in pids.values()), pids
    deadline = time.monotonic() + 10  # and the runner's browser
    while _pids_of_children(data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _pids_of_children(data_dir) == []

    second, lines = _start_up(env, data_dir)  # the broker recovers its log after a kill
    try:
        assert _token(lines) == token, "\n".join(lines)
        for pid in acknowledged:
            found = httpx.get(
                f"{_api(lines)}/process/{pid}", headers=headers, params={"wait": "true"}, timeout=30
            )
            assert found.status_code == 200, found.text
    finally:
        stop_up(second)
    assert second.returncode == 0
    assert _pids_of_children(data_dir) == []


def test_a_second_up_while_the_first_starts_is_refused_at_once(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Before: the second up started a decider, a node (which failed on the DuckDB
    file) or, on a local broker, waited 30 s and named the first one's broker to kill."""
    data_dir = tmp_path / "ledger"
    prefix = f"t{uuid.uuid4().hex[:8]}."

    def up() -> subprocess.Popen[str]:
        return _up(kafka_bootstrap, data_dir, prefix, RUNLEDGER_PARTITIONS="1")

    first = up()
    try:
        assert first.stdout is not None
        assert first.stdout.readline().startswith("runledger: starting in"), "first up failed"
        began = time.monotonic()
        second = up()
        out, _ = second.communicate(timeout=30)
        assert second.returncode == 2 and time.monotonic() - began < 20, out
        assert out.strip() == (
            f"runledger: a stack runs or is starting on {data_dir} (runledger up, pid "
            f"{first.pid}); stop it first or choose another --data-dir"
        ), out
        lines: list[str] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not any("token for" in x for x in lines):
            line = first.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip())
        assert _token(lines), lines  # the first one came up undisturbed
    finally:
        stop_up(first)
    assert first.returncode == 0
    assert _pids_of_children(data_dir) == []
