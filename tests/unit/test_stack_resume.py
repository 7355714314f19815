"""`runledger up` on a data dir made with other settings: refused at once, one line
naming the setting and the value it was made with (runledger/stack_resume.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runledger.stack_resume import previous_own_broker, resume_refusal, same_ledger
from runledger.stackfile import StackFile, StackFileError
from tests.cli_support import Cli, one_line

NO_BROKER = "127.0.0.1:1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _made(data_dir: Path, prefix: str = "", *, own: bool | None, read_model: bool = True) -> None:
    """A stopped stack's data dir: its stack.json and (the file's presence is what
    counts) its read model."""
    bootstrap = "127.0.0.1:45678" if own else "10.1.2.3:9092"
    StackFile("http://127.0.0.1:9", bootstrap, prefix, "rl_t", 0, own).write(data_dir)
    if read_model:
        (data_dir / "node.duckdb").write_bytes(b"")


def test_a_read_model_of_another_prefix_is_refused_naming_the_prefix(tmp_path: Path) -> None:
    _made(tmp_path, "x.", own=True)
    assert resume_refusal(StackFile.read(tmp_path), tmp_path, "x.", "") is None
    said = resume_refusal(StackFile.read(tmp_path), tmp_path, "", "")
    assert said is not None and "made with RUNLEDGER_TOPIC_PREFIX=x." in said
    assert "set RUNLEDGER_TOPIC_PREFIX=x. to resume" in said
    _made(tmp_path, "", own=True)
    said = resume_refusal(StackFile.read(tmp_path), tmp_path, "y.", "")
    assert said is not None and "RUNLEDGER_TOPIC_PREFIX unset" in said and "unset it" in said


def test_the_other_kind_of_broker_is_refused_naming_the_setting(tmp_path: Path) -> None:
    _made(tmp_path, own=False)  # made on a configured cluster
    assert resume_refusal(StackFile.read(tmp_path), tmp_path, "", "10.1.2.3:9092") is None
    # another address of maybe the same cluster: not refused (a cluster may move)
    assert resume_refusal(StackFile.read(tmp_path), tmp_path, "", "kafka:9092") is None
    said = resume_refusal(StackFile.read(tmp_path), tmp_path, "", "")
    assert said is not None and "set RUNLEDGER_KAFKA_BOOTSTRAP=10.1.2.3:9092 to resume" in said
    _made(tmp_path, own=True)  # made on up's own broker
    assert resume_refusal(StackFile.read(tmp_path), tmp_path, "", "") is None
    said = resume_refusal(StackFile.read(tmp_path), tmp_path, "", "10.1.2.3:9092")
    assert said is not None and "up's own Kafka broker" in said
    assert "unset RUNLEDGER_KAFKA_BOOTSTRAP to resume" in said


def test_without_a_read_model_nothing_is_refused(tmp_path: Path) -> None:
    """Nothing built from the other ledger is there: a new stack on other settings."""
    _made(tmp_path, "x.", own=False, read_model=False)
    assert resume_refusal(StackFile.read(tmp_path), tmp_path, "", "") is None
    assert resume_refusal(None, tmp_path, "", "") is None


def test_a_stack_file_from_before_own_broker_was_recorded(tmp_path: Path) -> None:
    old = {"api_url": "http://x", "kafka_bootstrap": "127.0.0.1:45678", "topic_prefix": ""}
    (tmp_path / "stack.json").write_text(json.dumps({**old, "token": "t"}))
    previous = StackFile.read(tmp_path)
    assert previous.own_broker is None
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / "ports.json").write_text('{"broker": 45678, "controller": 45679}')
    assert previous_own_broker(previous, tmp_path) is True  # the local broker's address
    (tmp_path / "kafka" / "ports.json").write_text('{"broker": 1111, "controller": 45679}')
    assert previous_own_broker(previous, tmp_path) is None


def test_own_broker_round_trips_and_a_wrong_type_is_refused(tmp_path: Path) -> None:
    StackFile("http://x", "h:1", "", "t", 5, False).write(tmp_path)
    assert StackFile.read(tmp_path).own_broker is False
    raw = json.loads((tmp_path / "stack.json").read_text())
    (tmp_path / "stack.json").write_text(json.dumps({**raw, "own_broker": "yes"}))
    with pytest.raises(StackFileError, match="own_broker must be"):
        StackFile.read(tmp_path)


def test_the_token_is_reused_only_on_the_same_ledger(tmp_path: Path) -> None:
    _made(tmp_path, "x.", own=True, read_model=False)
    previous = StackFile.read(tmp_path)
    assert same_ledger(previous, tmp_path, "x.", "")
    assert not same_ledger(previous, tmp_path, "y.", "")
    assert not same_ledger(previous, tmp_path, "x.", "10.1.2.3:9092")


def test_up_refuses_another_prefix_before_starting_anything(
    bare: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    StackFile("http://127.0.0.1:9", NO_BROKER, "x.", "rl_t", 0, False).write(tmp_path)
    (tmp_path / "node.duckdb").write_bytes(b"")
    monkeypatch.setenv("RUNLEDGER_KAFKA_BOOTSTRAP", NO_BROKER)
    code, out, err = bare("up", "--data-dir", str(tmp_path), "--port", str(free_port()))
    # Before: up went on to the broker (here: none answers, so a different error).
    assert code == 2 and out == ""
    assert "made with RUNLEDGER_TOPIC_PREFIX=x." in one_line(err), err


def test_up_without_the_cluster_it_was_made_with_is_refused_at_once(tmp_path: Path) -> None:
    """An operator drill: up started an empty broker of its own and the node served the
    old rows beside the new ledger's (same topic names, two ledgers)."""
    StackFile("http://127.0.0.1:9", "127.0.0.1:19093", "p.", "rl_t", 0, False).write(tmp_path)
    (tmp_path / "node.duckdb").write_bytes(b"")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNLEDGER_")}
    env["RUNLEDGER_TOPIC_PREFIX"] = "p."
    argv = ["up", "--data-dir", str(tmp_path), "--port", str(free_port())]
    began = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "runledger", *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired as exc:  # before: a broker and the services started
        raise AssertionError("up did not refuse at once") from exc
    assert done.returncode == 2 and time.monotonic() - began < 20, done.stderr
    line = one_line(done.stderr)
    assert "made with RUNLEDGER_KAFKA_BOOTSTRAP=127.0.0.1:19093" in line, line
    assert not (tmp_path / "kafka").exists()  # no broker of its own was made
