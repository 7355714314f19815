"""The Kafka broker a runledger process talks to, and the only module that starts one.

Three ways to get one, chosen by :func:`start_broker`: an existing cluster named in the
settings; a container from the ``apache/kafka`` image where a Docker engine answers; or
Apache Kafka's own jars, fetched once from Maven Central, run by the machine's Java as a
single-node KRaft broker on loopback ports (:class:`LocalKafka`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from runledger.broker.container import KAFKA_IMAGE, docker_answers, start_container
from runledger.broker.errors import BrokerError
from runledger.broker.jars import fetch_jars, jars_cached
from runledger.broker.local import LocalKafka
from runledger.settings import Settings

__all__ = [
    "BrokerError",
    "BrokerHandle",
    "ExternalBroker",
    "LocalKafka",
    "fetch_jars",
    "jars_cached",
    "start_broker",
]

log = logging.getLogger(__name__)


class BrokerHandle(Protocol):
    """A running broker: where to reach it, and how to let it go."""

    @property
    def bootstrap(self) -> str: ...

    def stop(self) -> None: ...

    def failure(self) -> str | None:
        """Why the broker stopped on its own while in use, or ``None`` while it runs."""
        ...


@dataclass(frozen=True)
class ExternalBroker:
    """A broker someone else runs; stopping it is not ours to do."""

    bootstrap: str

    def stop(self) -> None:
        pass

    def failure(self) -> str | None:
        return None  # its health is its operator's to watch; clients report errors


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
