"""A tool run after Ctrl-C stopped the stack: ``stack.json`` is still there, its broker is
gone. The user gets one line saying the stack is not running and what to run, not
aiokafka's "Unable to bootstrap from [('127.0.0.1', 1, <AddressFamily.AF_INET: 2>)]".
A broker named by the environment, or one of a stack whose ``up`` still runs, keeps the
plain message: there the stack file's ``up`` is not the cause."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runledger.stackfile import StackFile
from tests.cli_support import Cli, one_line

# A port nothing listens on: the connection is refused at once.
NO_BROKER = "127.0.0.1:1"

TOOLS = [
    ["audit", "some-id"],
    ["as-of", "some-id", "--at", "2026-01-01T00:00:00Z"],
    ["tail", "--max", "1"],
    ["token", "create", "--account", "acme"],
    ["replay", "--to", "{tmp}/rebuilt.duckdb"],
    ["export", "--out", "{tmp}/export"],
]  # (verify first asks for DATA_DIR/node.duckdb, which this data dir lacks)


def _gone_pid() -> int:
    """The pid of a process that has exited (as the ``up`` of a stopped stack)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def stopped(tmp_path: Path) -> tuple[Path, int]:
    """A data dir as ``up`` leaves it after Ctrl-C: stack.json naming its gone pid."""
    data_dir = tmp_path / "stack"
    pid = _gone_pid()
    StackFile("http://127.0.0.1:9", NO_BROKER, "", "t", pid).write(data_dir)
    return data_dir, pid


def _argv(argv: list[str], tmp: Path) -> list[str]:
    return [a.replace("{tmp}", str(tmp)) for a in argv]


@pytest.mark.parametrize("argv", TOOLS, ids=lambda argv: argv[0])
def test_a_tool_on_a_stopped_stack_says_to_start_it(
    bare: Cli, stopped: tuple[Path, int], tmp_path: Path, argv: list[str]
) -> None:
    data_dir, pid = stopped
    code, out, err = bare(*_argv(argv, tmp_path), "--data-dir", str(data_dir))
    line = one_line(err)
    assert code == 2 and out == "", (code, out, err)
    assert f"the stack in {data_dir} is not running" in line, line
    assert f"pid {pid}" in line and f"`runledger up --data-dir {data_dir}`" in line, line
    assert "AddressFamily" not in line and "Traceback" not in err, line
    assert not (tmp_path / "rebuilt.duckdb").exists() and not (tmp_path / "export").exists()


def test_a_broker_from_the_environment_keeps_the_plain_message(
    bare: Cli, stopped: tuple[Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir, _ = stopped
    monkeypatch.setenv("RUNLEDGER_KAFKA_BOOTSTRAP", NO_BROKER)
    code, _, err = bare("audit", "some-id", "--data-dir", str(data_dir))
    line = one_line(err)
    assert code == 2 and NO_BROKER in line and "not running" not in line, line


def test_a_stack_whose_up_runs_keeps_the_plain_message(
    bare: Cli, stopped: tuple[Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # ``up`` alive but its broker unreachable (it died; up is stopping): not "start it".
    data_dir, _ = stopped
    monkeypatch.setattr(StackFile, "running", lambda self: True)
    code, _, err = bare("audit", "some-id", "--data-dir", str(data_dir))
    line = one_line(err)
    assert code == 2 and NO_BROKER in line and "not running" not in line, line
