"""What a local KRaft broker keeps in its ``log_dir``, and how each file is made.

``broker.lock`` (held for as long as the JVM lives), ``ports.json`` (so a restart keeps
its address), ``server.properties`` and ``log4j.properties`` (written on every start) and
the formatted storage in ``data/``. Apart from :mod:`runledger.broker.local` so that the
module which starts and stops the JVM reads as the process's lifecycle; these are the
files it is started on.

Log lines keep the ``runledger.broker.local`` logger they always had, so operators'
filters and the tests' captures stay valid.
"""

from __future__ import annotations

import fcntl
import json
import logging
import subprocess
import time
from pathlib import Path
from typing import IO

from runledger.broker.errors import BrokerError, tail
from runledger.broker.host import _free_ports, _kafka_lock_free, _new_cluster_id, _port_free

log = logging.getLogger("runledger.broker.local")

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


def lock_log_dir(log_dir: Path, lock_wait: float) -> IO[str]:
    """``log_dir/broker.lock``, opened and locked; waits up to ``lock_wait`` seconds
    while another broker holds it (or Kafka's own lock on ``data/``, for a broker
    started otherwise). Raises :class:`BrokerError` naming that broker's pid."""
    lock = open(log_dir / "broker.lock", "a+")  # noqa: SIM115 - returned open
    deadline = time.monotonic() + lock_wait
    waited = False
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _kafka_lock_free(log_dir / "data" / ".lock"):
                return lock
            fcntl.flock(lock, fcntl.LOCK_UN)
        except BlockingIOError:
            pass
        lock.seek(0)
        pid = lock.read().strip() or "unknown"
        if time.monotonic() >= deadline:
            lock.close()
            raise BrokerError(
                f"another Kafka broker (pid {pid}) is using {log_dir}; two brokers "
                f"must not share it. Stop that one (kill {pid}) or choose another data dir."
            )
        if not waited:
            log.info("waiting up to %gs for the Kafka broker (pid %s) on %s to exit",
                     lock_wait, pid, log_dir)  # fmt: skip
            waited = True
        time.sleep(0.2)


def choose_ports(log_dir: Path, wanted_port: int | None) -> tuple[int, int]:
    """The (broker, controller) ports: ``wanted_port`` or the stored ones while they are
    free, else free ones; stored in ``ports.json``. OSError when it cannot be written."""
    stored_file = log_dir / "ports.json"
    stored: dict[str, int] = {}
    if stored_file.exists():
        try:
            stored = json.loads(stored_file.read_text())
        except ValueError:
            log.warning("%s is unreadable; the broker gets new ports", stored_file)
    broker = wanted_port or stored.get("broker")
    controller = stored.get("controller")
    if broker and wanted_port is None and not _port_free(broker):
        log.warning("stored Kafka port %d is busy; the broker moves to a new port", broker)
        broker = None
    if controller and (controller == broker or not _port_free(controller)):
        controller = None
    spare = iter(p for p in _free_ports(3) if p not in (broker, controller))
    ports = (broker or next(spare), controller or next(spare))
    stored_file.write_text(json.dumps({"broker": ports[0], "controller": ports[1]}))
    return ports


def write_config(log_dir: Path, ports: tuple[int, int]) -> Path:
    """Write ``server.properties`` (a one-node cluster on ``ports``) and
    ``log4j.properties`` into ``log_dir``; the former's path. OSError when it cannot."""
    broker, controller = ports
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listeners": f"PLAINTEXT://127.0.0.1:{broker},CONTROLLER://127.0.0.1:{controller}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{broker}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(log_dir / "data"),
        **SINGLE_NODE,
    }
    config = log_dir / "server.properties"
    config.write_text("".join(f"{key}={value}\n" for key, value in props.items()))
    log4j = LOG4J.format(log_file=log_dir / "broker.log")
    (log_dir / "log4j.properties").write_text(log4j)
    return config


def format_storage(java: str, libs: Path, log_dir: Path, config: Path) -> None:
    """Format the KRaft storage in ``log_dir/data`` for ``config`` with Kafka's
    StorageTool; BrokerError with the tool's output when it fails."""
    command = [
        java, "-Xmx256m", f"-Dlog4j.configuration=file:{log_dir / 'log4j.properties'}",
        "-cp", f"{libs}/*", "kafka.tools.StorageTool", "format",
        "--ignore-formatted", "-t", _new_cluster_id(), "-c", str(config),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise BrokerError(
            f"formatting KRaft storage in {log_dir / 'data'} failed "
            f"(exit {done.returncode}):\n" + tail(done.stdout + done.stderr)
        )
