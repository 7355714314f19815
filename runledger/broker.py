"""The Kafka broker a runledger process talks to, and the only module that starts one.

Three ways to get one, chosen by :func:`start_broker`: an existing cluster named in the
settings; a container from the ``apache/kafka`` image where a Docker engine answers; or
Apache Kafka's own jars, fetched once from Maven Central, run by the machine's Java as a
single-node KRaft broker on loopback ports (:class:`LocalKafka`).
"""

from __future__ import annotations

import atexit
import base64
import ctypes
import fcntl
import json
import logging
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from runledger.settings import Settings

log = logging.getLogger(__name__)

KAFKA_IMAGE = "apache/kafka:3.9.1"
POM = Path(__file__).resolve().parent.parent / "scripts" / "kafka" / "pom.xml"
FETCHED_MARKER = "fetched.ok"
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


class BrokerError(Exception):
    """No broker could be fetched, started or reached; the message says why and what to do."""


class BrokerHandle(Protocol):
    """A running broker: where to reach it, and how to let it go."""

    @property
    def bootstrap(self) -> str: ...

    def stop(self) -> None: ...


def jars_cached(cache_dir: Path, version: str) -> bool:
    """True when :func:`fetch_jars` finished for this version and will not run Maven."""
    home = cache_dir / f"kafka-{version}"
    jar = home / "libs" / f"kafka_2.13-{version}.jar"
    return (home / FETCHED_MARKER).exists() and jar.exists()


def fetch_jars(cache_dir: Path, version: str) -> Path:
    """Return ``cache_dir/kafka-VERSION/libs``, fetching the broker's jars with Maven first
    if an earlier fetch did not finish. Safe to call from several processes at once.

    Raises :class:`BrokerError` when ``mvn`` is missing or fails.
    """
    home = cache_dir / f"kafka-{version}"
    libs = home / "libs"
    if jars_cached(cache_dir, version):
        return libs
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if jars_cached(cache_dir, version):  # another process fetched while we waited
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError(
                "Maven (mvn) is not on PATH; it is needed once to fetch the Kafka broker's "
                f"jars into {libs}. Install it (apt-get install maven) or set "
                "RUNLEDGER_KAFKA_BOOTSTRAP to an existing broker."
            )
        if not POM.exists():
            raise BrokerError(f"{POM} is missing: fetching the Kafka jars needs a source checkout")
        partial = home / "libs.partial"
        shutil.rmtree(partial, ignore_errors=True)
        command = [
            mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
            f"-DoutputDirectory={partial}", "-DincludeScope=runtime", f"-Dkafka.version={version}",
        ]  # fmt: skip
        log.info("fetching Kafka %s jars with Maven into %s", version, libs)
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired as exc:
            raise BrokerError("mvn did not finish fetching the Kafka jars within 900 s") from exc
        if done.returncode != 0 or not (partial / f"kafka_2.13-{version}.jar").exists():
            shutil.rmtree(partial, ignore_errors=True)
            raise BrokerError(
                f"mvn failed to fetch Kafka {version} (exit {done.returncode}):\n"
                + _tail(done.stdout + done.stderr)
            )
        _settle(partial, libs)
        (home / FETCHED_MARKER).write_text(f"{version}\n")
    return libs


def _settle(fresh: Path, libs: Path) -> None:
    """Move the fetched jars into ``libs`` one by one, leaving alone the ones already there
    with the same size: a broker running from ``libs`` keeps the files it has open."""
    libs.mkdir(exist_ok=True)
    wanted = {jar.name for jar in fresh.iterdir()}
    for jar in fresh.iterdir():
        old = libs / jar.name
        if not (old.exists() and old.stat().st_size == jar.stat().st_size):
            os.replace(jar, old)
    for stale in libs.iterdir():
        if stale.name not in wanted:
            stale.unlink()
    shutil.rmtree(fresh)


def _tail(text: str, lines: int = 40) -> str:
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)  # Maven colours its output even with -B
    return "\n".join(plain.rstrip().splitlines()[-lines:])


def _read_tail(path: Path, lines: int = 40) -> str:
    try:
        with path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 64 * 1024))
            return _tail(f.read().decode("utf-8", "replace"), lines)
    except FileNotFoundError:
        return f"({path} does not exist)"


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
                f"(exit {done.returncode}):\n" + _tail(done.stdout + done.stderr)
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
            parts.append(f"Last lines of {out}:\n{_read_tail(out, 10)}")
        parts.append(f"Last lines of {broker_log}:\n{_read_tail(broker_log, 15)}")
        return "\n".join(parts)


@dataclass(frozen=True)
class ExternalBroker:
    """A broker someone else runs; stopping it is not ours to do."""

    bootstrap: str

    def stop(self) -> None:
        pass


@dataclass
class ContainerBroker:
    """A broker in a container from the ``apache/kafka`` image, removed on :meth:`stop`."""

    bootstrap: str
    container: Any

    def stop(self) -> None:
        self.container.stop()


def docker_answers(timeout: float = 5.0) -> bool:
    """True when a Docker engine answers ``docker info`` within ``timeout`` seconds."""
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        done = subprocess.run([docker, "info"], capture_output=True, timeout=timeout)
    except (subprocess.TimeoutExpired, OSError):
        return False
    return done.returncode == 0


def start_container(
    log_dir: Path, *, keep_data: bool = True, timeout: float = 120
) -> ContainerBroker:
    """Start ``apache/kafka`` with testcontainers; with ``keep_data`` the data lives in a
    Docker volume named after ``log_dir``, so a later start on the same ``log_dir`` resumes.

    The advertised address is only known once Docker has mapped the port, so the
    container waits for it in a file before it runs the image's own start script.
    """
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    listeners = "/tmp/runledger-advertised-listeners"
    container = DockerContainer(KAFKA_IMAGE)
    env = {
        "CLUSTER_ID": "miE7yK2jTyOs2JLX_TnzDw",
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        # BROKER is the broker's way to itself (transaction markers); PLAINTEXT is ours.
        "KAFKA_LISTENERS": "PLAINTEXT://0.0.0.0:9092,CONTROLLER://0.0.0.0:9093,BROKER://0.0.0.0:9094",
        "KAFKA_INTER_BROKER_LISTENER_NAME": "BROKER",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": (
            "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,BROKER:PLAINTEXT"
        ),
        "KAFKA_LOG_DIRS": "/var/lib/kafka/data",
    }
    env.update({"KAFKA_" + k.upper().replace(".", "_"): v for k, v in SINGLE_NODE.items()})
    for key, value in env.items():
        container.with_env(key, value)
    container.with_exposed_ports(9092)
    container.with_command([
        "sh", "-c",
        f"while [ ! -s {listeners} ]; do sleep 0.1; done; "
        f'export KAFKA_ADVERTISED_LISTENERS="$(cat {listeners})"; exec /etc/kafka/docker/run',
    ])  # fmt: skip
    if keep_data:
        key = uuid.uuid5(uuid.NAMESPACE_URL, str(log_dir.resolve())).hex[:12]
        volume = f"runledger-kafka-{key}"
        container.with_volume_mapping(volume, "/var/lib/kafka/data", "rw")
    container.start()
    try:
        bootstrap = f"{container.get_container_host_ip()}:{container.get_exposed_port(9092)}"
        advertised = f"PLAINTEXT://{bootstrap},BROKER://localhost:9094"
        publish = f"echo '{advertised}' > {listeners}.new && mv {listeners}.new {listeners}"
        container.exec(["sh", "-c", publish])
        ready = LogMessageWaitStrategy(STARTED_LINE).with_startup_timeout(int(timeout))
        ready.wait_until_ready(container)
    except Exception as exc:
        container.stop()
        raise BrokerError(f"the {KAFKA_IMAGE} container did not start: {exc}") from exc
    return ContainerBroker(bootstrap=bootstrap, container=container)


def start_broker(settings: Settings, log_dir: Path, *, keep_data: bool = True) -> BrokerHandle:
    """Give back a running broker: the configured cluster if there is one, else a container
    where Docker answers, else a :class:`LocalKafka` keeping its files in ``log_dir``.

    Raises :class:`BrokerError` when none of them can be had.
    """
    if settings.kafka_bootstrap:
        log.info("Kafka: using the configured cluster at %s", settings.kafka_bootstrap)
        return ExternalBroker(settings.kafka_bootstrap)
    if docker_answers():
        log.info("Kafka: Docker answers; starting a %s container", KAFKA_IMAGE)
        return start_container(log_dir, keep_data=keep_data)
    log.info("Kafka: no Docker engine; starting a local broker from the Kafka jars in %s", log_dir)
    libs = fetch_jars(settings.cache_dir, settings.kafka_version)
    broker = LocalKafka(libs, log_dir)
    broker.start()
    log.info("Kafka: local broker ready at %s (pid %s)", broker.bootstrap, broker.pid)
    return broker
