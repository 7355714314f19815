"""A single-node KRaft broker run by the machine's Java from the cached Kafka jars.

The JVM's lifecycle: start (with retries when a port is taken), wait until it answers,
say why it died, stop. The files it runs on are made by :mod:`runledger.broker.log_dir`.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from runledger.broker.errors import BrokerError, read_tail
from runledger.broker.host import (
    _answers_api_versions,
    _disk_full_note,
    _prctl,
    _unusable,
    die_with_parent,
)
from runledger.broker.java import find_java
from runledger.broker.log_dir import (
    SINGLE_NODE,
    choose_ports,
    format_storage,
    lock_log_dir,
    write_config,
)

# SINGLE_NODE lives with the configuration it is part of; the container broker imports it
# from here too.
__all__ = ["PORT_ATTEMPTS", "SINGLE_NODE", "STARTED_LINE", "LocalKafka"]

log = logging.getLogger(__name__)

STARTED_LINE = "Kafka Server started"
PORT_ATTEMPTS = 3

# Brokers still running when the interpreter exits are stopped cleanly.
_running: set[LocalKafka] = set()


@atexit.register
def _stop_running() -> None:
    for broker in list(_running):
        broker.stop()


class LocalKafka:
    """A single-node KRaft broker run by the machine's Java from the jars in ``libs``.

    Everything lives in ``log_dir``: the configuration, ``broker.log``, the chosen ports
    (``ports.json``, so a restart keeps its address) and the data (``data/``), so a broker
    started again on the same ``log_dir`` has every record the previous one stored.

    ``broker.lock`` in ``log_dir`` is locked for as long as the broker's JVM lives (the JVM
    inherits the lock), so a second broker never runs on the same files: Kafka's own lock
    comes too late, its controller writes to the metadata log before the log manager
    takes it. A start waits up to ``lock_wait`` seconds for a previous broker to exit
    (one left by a killed parent shuts down on its own).
    """

    def __init__(
        self,
        libs: Path,
        log_dir: Path,
        port: int | None = None,
        *,
        heap: str = "512m",
        lock_wait: float = 30,
    ) -> None:
        self.libs = libs
        self.log_dir = log_dir
        self.heap = heap
        self.lock_wait = lock_wait
        self._wanted_port = port
        self._ports: tuple[int, int] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The Java process's id while it runs, else ``None``."""
        if self._process is None or self._process.poll() is not None:
            return None
        return self._process.pid

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT`` of the broker; raises :class:`BrokerError` before :meth:`start`."""
        if self._ports is None:
            raise BrokerError("the local Kafka broker has not been started")
        return f"127.0.0.1:{self._ports[0]}"

    def start(self, timeout: float = 60) -> str:
        """Start the broker and return its bootstrap address once it answers requests.

        Raises :class:`BrokerError` if Java or the jars are missing, storage cannot be
        formatted, or the broker exits or stays silent for ``timeout`` seconds; the
        message ends with the tail of the broker's log.
        """
        if self.pid is not None:
            return self.bootstrap
        java = find_java()
        if not any(self.libs.glob("kafka_2.13-*.jar")):
            raise BrokerError(
                f"no Kafka broker jars in {self.libs}; run scripts/setup.sh (or fetch_jars)"
            )
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            lock = lock_log_dir(self.log_dir, self.lock_wait)
        except OSError as exc:
            raise _unusable(self.log_dir, exc) from exc
        with lock:  # ours until the JVM holds it too
            for attempt in range(1, PORT_ATTEMPTS + 1):
                try:
                    return self._start_locked(java, lock, timeout)
                except BrokerError as exc:
                    # Another program can bind a port between our choosing it and the JVM
                    # binding it; ports the caller did not ask for are simply chosen again.
                    this_start = str(exc).split("\nLast lines of ")[0]
                    if self._wanted_port is not None or attempt == PORT_ATTEMPTS:
                        raise
                    if "Address already in use" not in this_start:
                        raise
                    log.warning("a Kafka port was taken while the broker started; new ports")
                    (self.log_dir / "ports.json").unlink(missing_ok=True)
        raise AssertionError("unreachable")

    def _start_locked(self, java: str, lock: IO[str], timeout: float) -> str:
        try:
            self._ports = self._choose_ports()
            config = self._write_config()
        except OSError as exc:
            raise _unusable(self.log_dir, exc) from exc
        if not (self.log_dir / "data" / "meta.properties").exists():
            format_storage(java, self.libs, self.log_dir, config)
        broker_log = self.log_dir / "broker.log"
        offset = broker_log.stat().st_size if broker_log.exists() else 0
        command = [
            java, f"-Xmx{self.heap}", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{self.log_dir / 'log4j.properties'}",
            f"-Dkafka.logs.dir={self.log_dir}", "-cp", f"{self.libs}/*", "kafka.Kafka", str(config),
        ]  # fmt: skip
        # The death signal follows the thread that forked: only ask for it from the main one.
        die_with_us = _prctl is not None and threading.current_thread() is threading.main_thread()
        # The JVM's own complaints (bad flags, no main class) land in broker.out.
        with open(self.log_dir / "broker.out", "ab") as out:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C meant for us must not kill it mid-write
                preexec_fn=die_with_parent if die_with_us else None,
                pass_fds=(lock.fileno(),),  # the lock lives as long as the JVM
            )
        lock.truncate(0)
        lock.write(f"{self._process.pid}\n")
        lock.flush()
        _running.add(self)
        log.info("local Kafka broker starting, pid %d, log %s", self._process.pid, broker_log)
        try:
            self._wait_until_ready(broker_log, offset, timeout)
        except BaseException:
            self.stop()
            raise
        return self.bootstrap

    def failure(self) -> str | None:
        """Why the broker is gone when it died after :meth:`start` (killed, out of memory,
        disk full), or ``None`` while it runs or after :meth:`stop`: for a supervisor
        to say so instead of its clients retrying in silence."""
        process = self._process
        if process is None or process.poll() is None:
            return None
        code = process.returncode
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        broker_log = self.log_dir / "broker.log"
        full = _disk_full_note(self.log_dir)
        return (
            f"the local Kafka broker (pid {process.pid}) {how}; its log is {broker_log}:\n"
            + (f"{full}\n" if full else "")
            + read_tail(broker_log, 10)
        )

    def stop(self, timeout: float = 20) -> None:
        """Ask the broker to shut down cleanly, and kill it after ``timeout`` seconds.
        One log line says how it ended (INFO for a clean stop, else WARNING): the stop
        line of the broker that ``runledger up`` started, beside its services' lines."""
        process, self._process = self._process, None
        _running.discard(self)
        if process is None:
            return
        if process.poll() is not None:  # failure() has said why; this says it is over
            log.info(
                "the local Kafka broker (pid %d) had already exited with code %d",
                process.pid,
                process.returncode,
            )
            return
        began = time.monotonic()
        try:
            os.killpg(process.pid, signal.SIGTERM)
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            log.warning(
                "the local Kafka broker (pid %d) did not stop within %g s of SIGTERM; killed "
                "(see %s)",
                process.pid,
                timeout,
                self.log_dir / "broker.log",
            )
            return
        except ProcessLookupError:
            code = process.wait()
        took = time.monotonic() - began
        # The JVM exits with 128 + 15 once its shutdown hook (Kafka's clean stop) is done.
        if code in (0, 128 + signal.SIGTERM):
            log.info("stopped the local Kafka broker (pid %d) cleanly in %.1f s", process.pid, took)
        else:
            ended = f"signal {signal.Signals(-code).name}" if code < 0 else f"code {code}"
            log.warning(
                "the local Kafka broker (pid %d) stopped with %s (see %s)",
                process.pid,
                ended,
                self.log_dir / "broker.log",
            )

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # Kept as methods: tests replace them to make a port taken or the disk full just then.
    def _choose_ports(self) -> tuple[int, int]:
        return choose_ports(self.log_dir, self._wanted_port)

    def _write_config(self) -> Path:
        assert self._ports is not None
        return write_config(self.log_dir, self._ports)

    def _wait_until_ready(self, broker_log: Path, offset: int, timeout: float) -> None:
        assert self._process is not None and self._ports is not None
        deadline = time.monotonic() + timeout
        started = False
        while True:
            if not started and broker_log.exists():
                if broker_log.stat().st_size < offset:  # the log rolled over
                    offset = 0
                with broker_log.open("rb") as f:
                    f.seek(offset)
                    started = STARTED_LINE.encode() in f.read()
            if started and _answers_api_versions(self._ports[0]):
                return
            code = self._process.poll()
            if code is not None:
                what = f"the Kafka broker exited with code {code} while starting"
            elif time.monotonic() > deadline:
                what = f"the Kafka broker did not answer on {self.bootstrap} within {timeout:g} s"
            else:
                time.sleep(0.1)
                continue
            raise BrokerError(f"{what}.\n{self._diagnosis(broker_log, offset)}")

    def _diagnosis(self, broker_log: Path, offset: int) -> str:
        """The first errors this start logged (with the exception line under each), then the
        last lines of the JVM's output and of the broker log."""
        lines: list[str] = []
        if broker_log.exists():
            with broker_log.open("rb") as f:
                f.seek(offset)
                lines = f.read(4 * 1024 * 1024).decode("utf-8", "replace").splitlines()
        errors: list[str] = []
        for at, line in enumerate(lines):
            if "] ERROR " in line or "] FATAL " in line:
                errors += [line, *[n for n in lines[at + 1 : at + 2] if not n.startswith("[")]]
        parts = [f"First errors in {broker_log}:\n" + "\n".join(errors[:10])] if errors else []
        full = _disk_full_note(self.log_dir)
        if full:
            parts.insert(0, full)
        out = self.log_dir / "broker.out"
        if out.exists() and out.stat().st_size:
            parts.append(f"Last lines of {out}:\n{read_tail(out, 10)}")
        parts.append(f"Last lines of {broker_log}:\n{read_tail(broker_log, 15)}")
        return "\n".join(parts)
