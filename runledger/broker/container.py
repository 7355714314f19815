"""A broker in a container from the ``apache/kafka`` image, for machines with Docker."""

from __future__ import annotations

import logging
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runledger.broker.errors import BrokerError
from runledger.broker.local import SINGLE_NODE, STARTED_LINE

log = logging.getLogger(__name__)

KAFKA_IMAGE = "apache/kafka:3.9.1"


@dataclass
class ContainerBroker:
    """A broker in a container from the ``apache/kafka`` image, removed on :meth:`stop`."""

    bootstrap: str
    container: Any

    def stop(self) -> None:
        self.container.stop()
        log.info("stopped the %s container (broker %s)", KAFKA_IMAGE, self.bootstrap)

    def failure(self) -> str | None:
        """Why the container stopped on its own, or ``None`` while it runs."""
        try:
            wrapped = self.container.get_wrapped_container()
            wrapped.reload()
        except Exception as exc:  # the engine itself went away
            return f"the {KAFKA_IMAGE} container cannot be inspected: {exc}"
        if wrapped.status == "running":
            return None
        code = wrapped.attrs.get("State", {}).get("ExitCode")
        return f"the {KAFKA_IMAGE} container is {wrapped.status} (exit code {code})"


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
