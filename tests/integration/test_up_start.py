"""`runledger up` while it starts: a child that dies is reported at once with its last
words, and a signal stops everything without waiting for the node."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from projections.fold import Batch
from projections.store import Store
from streams.topics import Topics
from tests.integration.conftest import free_port
from tests.integration.test_up import _pids_of_children

pytestmark = pytest.mark.integration


def _up(kafka_bootstrap: str, data_dir: Path, prefix: str, **more: str) -> subprocess.Popen[str]:
    """``runledger up`` on ``data_dir`` with only these RUNLEDGER_ settings (``more``:
    others, e.g. RUNLEDGER_PARTITIONS), on a free port; stdout and stderr as one pipe."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNLEDGER_")}
    env.update(RUNLEDGER_KAFKA_BOOTSTRAP=kafka_bootstrap, RUNLEDGER_TOPIC_PREFIX=prefix, **more)
    argv = ["up", "--data-dir", str(data_dir), "--port", str(free_port())]
    return subprocess.Popen(
        [sys.executable, "-m", "runledger", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(up: subprocess.Popen[str], timeout: float) -> list[str]:
    try:
        out, _ = up.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        up.kill()
        raise
    return out.strip().splitlines()


def test_up_on_a_read_model_of_another_prefix_says_so_instead_of_waiting(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "stack"
    data_dir.mkdir()
    first = f"first{uuid.uuid4().hex[:6]}."
    with Store(data_dir / "node.duckdb") as store:
        store.write(Batch(topic=Topics(first).events, positions={0: 3}))

    up = _up(kafka_bootstrap, data_dir, f"second{uuid.uuid4().hex[:6]}.")
    # Before: the node died at once, and up waited 60 s to say it "did not answer".
    lines = _finish(up, timeout=55)
    assert up.returncode == 2
    (error,) = [x for x in lines if x.startswith("runledger: the ")]
    assert error.startswith("runledger: the node exited"), lines
    assert f"built from {first}ledger.events" in error and "node.log" in error, error
    assert _pids_of_children(data_dir) == []
    with Store(data_dir / "node.duckdb") as store:  # the first ledger's file is unchanged
        assert store.topics() == [f"{first}ledger.events"]


def test_a_signal_while_up_starts_stops_everything_at_once(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "stack"
    up = _up(kafka_bootstrap, data_dir, f"t{uuid.uuid4().hex[:8]}.")
    assert up.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any("started runner" in x for x in seen):
        line = up.stdout.readline()
        if not line:
            break
        seen.append(line.rstrip())
    assert any("started runner" in x for x in seen), seen
    up.send_signal(signal.SIGTERM)  # the node is still importing: not ready for seconds
    lines = seen + _finish(up, timeout=40)
    assert up.returncode == 0, lines
    assert "runledger: stopping before the stack was up" in lines, lines
    assert not any("token for account" in x for x in lines), lines
    assert _pids_of_children(data_dir) == []
