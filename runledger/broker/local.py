"""A single-node KRaft broker run by the machine's Java from the cached Kafka jars."""

from __future__ import annotations

import atexit
import base64
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from runledger.broker.errors import BrokerError, read_tail, tail

log = logging.getLogger(__name__)

STARTED_LINE = "Kafka Server started"

# Broker settings that make one node a complete cluster: replication factors and ISR of
# 1 for the internal topics (transactions and idempotent producers need them), one
# partition for the internal topics instead of 50 so the first transaction and the first
# consumer group do not wait for 50 partitions to be created, and a smaller cleaner
# buffer than the 128 MiB default.
SINGLE_NODE = {
    "num.partitions": "1",
    "default.replication.factor": "1",
    "min.insync.replicas": "1",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "1",
    "auto.create.topics.enable": "false",
    "group.initial.rebalance.delay.ms": "0",
    "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
}

LOG4J = """\
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File={log_file}
log4j.appender.file.MaxFileSize=10MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.org.apache.kafka.clients=WARN
"""


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _port_free(port: int) -> bool:
    # SO_REUSEADDR as the JVM sets it: a port held only by TIME_WAIT connections of the
    # previous run of this broker counts as free.
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _answers_api_versions(port: int) -> bool:
    """Send Kafka's ApiVersions v0 request and check the reply carries no error code."""
    client_id = b"runledger-probe"
    body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(struct.pack(">i", len(body)) + body)
            head = s.recv(10)
    except OSError:
        return False
    return len(head) >= 10 and struct.unpack(">iih", head)[1:] == (7, 0)


def _new_cluster_id() -> str:
    while True:  # an id starting with "-" would read as an option on the command line
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


# Looked up here, not in the child: between fork and exec the child must not load anything.
_prctl: Callable[..., int] | None
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl  # Linux only
except (OSError, AttributeError):
    _prctl = None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if _prctl is not None:
        _prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: SIGTERM when the parent dies


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
    """

    def __init__(
        self, libs: Path, log_dir: Path, port: int | None = None, *, heap: str = "512m"
    ) -> None:
        self.libs = libs
        self.log_dir = log_dir
        self.heap = heap
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
        java = shutil.which("java")
        if java is None:
            raise BrokerError("java is not on PATH; the local Kafka broker needs Java 17 or later")
        if not any(self.libs.glob("kafka_2.13-*.jar")):
            raise BrokerError(
                f"no Kafka broker jars in {self.libs}; run scripts/setup.sh (or fetch_jars)"
            )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._ports = self._choose_ports()
        config = self._write_config()
        if not (self.log_dir / "data" / "meta.properties").exists():
            self._format(java, config)
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
                preexec_fn=_die_with_parent if die_with_us else None,
            )
        _running.add(self)
        log.info("local Kafka broker starting, pid %d, log %s", self._process.pid, broker_log)
        try:
            self._wait_until_ready(broker_log, offset, timeout)
        except BaseException:
            self.stop()
            raise
        return self.bootstrap

    def stop(self, timeout: float = 20) -> None:
        """Ask the broker to shut down cleanly, and kill it after ``timeout`` seconds."""
        process, self._process = self._process, None
        _running.discard(self)
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("Kafka broker %d ignored SIGTERM for %ss; killing it", process.pid, timeout)
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            process.wait()

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _choose_ports(self) -> tuple[int, int]:
        stored_file = self.log_dir / "ports.json"
        stored: dict[str, int] = {}
        if stored_file.exists():
            try:
                stored = json.loads(stored_file.read_text())
            except ValueError:
                log.warning("%s is unreadable; the broker gets new ports", stored_file)
        broker = self._wanted_port or stored.get("broker")
        controller = stored.get("controller")
        if broker and self._wanted_port is None and not _port_free(broker):
            log.warning("stored Kafka port %d is busy; the broker moves to a new port", broker)
            broker = None
        if controller and (controller == broker or not _port_free(controller)):
            controller = None
        spare = iter(p for p in _free_ports(3) if p not in (broker, controller))
        ports = (broker or next(spare), controller or next(spare))
        stored_file.write_text(json.dumps({"broker": ports[0], "controller": ports[1]}))
        return ports

    def _write_config(self) -> Path:
        assert self._ports is not None
        broker, controller = self._ports
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{controller}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listeners": f"PLAINTEXT://127.0.0.1:{broker},CONTROLLER://127.0.0.1:{controller}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{broker}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.log_dir / "data"),
            **SINGLE_NODE,
        }
        config = self.log_dir / "server.properties"
        config.write_text("".join(f"{key}={value}\n" for key, value in props.items()))
        log4j = LOG4J.format(log_file=self.log_dir / "broker.log")
        (self.log_dir / "log4j.properties").write_text(log4j)
        return config

    def _format(self, java: str, config: Path) -> None:
        command = [
            java, "-Xmx256m", f"-Dlog4j.configuration=file:{self.log_dir / 'log4j.properties'}",
            "-cp", f"{self.libs}/*", "kafka.tools.StorageTool", "format",
            "--ignore-formatted", "-t", _new_cluster_id(), "-c", str(config),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise BrokerError(
                f"formatting KRaft storage in {self.log_dir / 'data'} failed "
                f"(exit {done.returncode}):\n" + tail(done.stdout + done.stderr)
            )

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
        out = self.log_dir / "broker.out"
        if out.exists() and out.stat().st_size:
            parts.append(f"Last lines of {out}:\n{read_tail(out, 10)}")
        parts.append(f"Last lines of {broker_log}:\n{read_tail(broker_log, 15)}")
        return "\n".join(parts)
