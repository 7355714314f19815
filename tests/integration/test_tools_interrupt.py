"""Ctrl-C during ``runledger replay``: the terminal sends SIGINT to the whole process
group (the command and its replay workers). The command exits 130 with one line
saying what it left: no file at ``--to``, no ``.partial`` file or scratch folder, and
with ``--force`` the earlier file as it was."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ledger(stack: Any) -> None:
    client = stack.authenticated("acme")
    r = client.post("/process", json={"type": "interrupt.test"}, params={"wait": "true"})
    assert r.status_code == 201, r.text


def _replay_then_ctrl_c(stack: Any, target: Path, *extra: str) -> tuple[int, str]:
    """Start ``runledger replay --to target`` as a terminal would (own process group,
    SIGINT not ignored), and SIGINT its group once the replay is building its file
    (the workers start after it exists). Its exit status and stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "runledger", "replay", "--to", str(target), *extra],
        env=stack.env(),
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    partial = target.with_name(target.name + (".replay-" if extra else ".partial"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        if any(p.name.startswith(partial.name) for p in target.parent.iterdir()):
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the replay ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    return proc.returncode, err


def test_ctrl_c_leaves_no_file_and_says_so(stack: Any, ledger: None, tmp_path: Path) -> None:
    target = tmp_path / "rebuilt.duckdb"
    code, err = _replay_then_ctrl_c(stack, target)
    assert code == 130, err
    assert f"runledger replay: interrupted; {target} was not written" in err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_of_a_forced_replay_keeps_the_earlier_file(
    stack: Any, ledger: None, tmp_path: Path
) -> None:
    target = tmp_path / "rebuilt.duckdb"
    target.write_bytes(b"the earlier file")
    code, err = _replay_then_ctrl_c(stack, target, "--force")
    assert code == 130, err
    assert f"runledger replay: interrupted; {target} was left as it was" in err
    assert target.read_bytes() == b"the earlier file"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
