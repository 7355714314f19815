"""Two brokers must never run on one log dir: the second one's controller would write to
the first one's metadata log before Kafka's own lock (taken later, by the log manager)
stops it. A broker left over from a killed ``up`` is waited for, then resumed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runledger.broker import BrokerError, LocalKafka, fetch_jars
from runledger.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def libs() -> Path:
    settings = Settings.from_env()
    return fetch_jars(settings.cache_dir, settings.kafka_version)


def test_second_broker_on_a_used_log_dir_is_refused_untouched(libs: Path, tmp_path: Path) -> None:
    log_dir = tmp_path / "kafka"
    with LocalKafka(libs, log_dir) as first:
        ports = (log_dir / "ports.json").read_text()
        quorum = log_dir / "data" / "__cluster_metadata-0" / "quorum-state"
        state = quorum.read_text()
        second = LocalKafka(libs, log_dir, lock_wait=1)
        with pytest.raises(BrokerError, match=rf"pid {first.pid}\b.*{log_dir}"):
            second.start(timeout=30)
        assert second.pid is None
        assert (log_dir / "ports.json").read_text() == ports  # its address is kept
        assert quorum.read_text() == state  # no second controller took over its log
        assert first.pid is not None


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs: gone, or a zombie nobody has reaped yet (an orphan's reaper
    in a container may be slow or absent), is not running."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def test_broker_left_by_a_killed_parent_is_waited_for_and_resumed(
    libs: Path, tmp_path: Path
) -> None:
    log_dir = tmp_path / "kafka"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; "
            "from runledger.broker import LocalKafka; "
            "b = LocalKafka(Path(sys.argv[1]), Path(sys.argv[2])); b.start(); "
            "print(b.pid, flush=True); time.sleep(120)",
            str(libs),
            str(log_dir),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        old_pid = int(parent.stdout.readline())
        port = json.loads((log_dir / "ports.json").read_text())["broker"]
        os.kill(parent.pid, signal.SIGKILL)  # as a killed `up`: its broker gets SIGTERM
        parent.wait()
        started = time.monotonic()
        with LocalKafka(libs, log_dir) as again:
            assert again.bootstrap == f"127.0.0.1:{port}"  # resumed, same address
            assert not _alive(old_pid)  # the old one was gone before the new one ran
        assert time.monotonic() - started < 60
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_port_taken_between_choosing_and_binding_gets_new_ports(
    libs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another program may bind the chosen free port before the JVM does; a port the
    caller did not ask for is then chosen again instead of failing the start."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        choose = LocalKafka._choose_ports
        calls: list[tuple[int, int]] = []

        def first_one_taken(self: LocalKafka) -> tuple[int, int]:
            ports = choose(self)
            calls.append(ports)
            return (busy, ports[1]) if len(calls) == 1 else ports

        monkeypatch.setattr(LocalKafka, "_choose_ports", first_one_taken)
        with LocalKafka(libs, tmp_path / "kafka") as broker:
            assert len(calls) == 2
            assert broker.bootstrap != f"127.0.0.1:{busy}"
            stored = json.loads((tmp_path / "kafka" / "ports.json").read_text())
            assert broker.bootstrap == f"127.0.0.1:{stored['broker']}"


def test_broker_that_dies_while_running_says_so_and_stops_quietly(
    libs: Path, tmp_path: Path
) -> None:
    """What ``up`` needs to notice a dead broker: ``failure()`` names it and its log;
    ``stop()`` on a process already gone does not raise."""
    broker = LocalKafka(libs, tmp_path / "kafka")
    broker.start()
    try:
        assert broker.failure() is None
        pid = broker.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while broker.failure() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        failure = broker.failure()
        assert failure is not None
        assert f"pid {pid}" in failure
        assert "signal 9" in failure
        assert str(tmp_path / "kafka" / "broker.log") in failure
    finally:
        broker.stop()
    assert broker.failure() is None  # stopped by us is not a failure
