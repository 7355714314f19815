"""Fixtures shared by every test: the one Kafka broker of a test run, and topic isolation.

The broker is session-scoped and lazy: it starts the first time a test asks for
``kafka_bootstrap`` and stops when the run ends, so unit-only runs never start Java.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from runledger.broker import start_broker
from runledger.settings import Settings
from runledger.stackfile import StackFile
from tests.cli_support import Cli, in_process

log = logging.getLogger(__name__)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of the run's broker: ``RUNLEDGER_KAFKA_BOOTSTRAP`` if set, else one
    started for this run (a container where Docker answers, else the local Java broker)."""
    settings = Settings.from_env()
    broker = start_broker(settings, tmp_path_factory.mktemp("kafka"), keep_data=False)
    log.info("tests use the Kafka broker at %s", broker.bootstrap)
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def topic_prefix() -> str:
    """A prefix like ``t1a2b3c4d.`` that no other test shares, for topics and group ids."""
    return f"t{uuid.uuid4().hex[:8]}."


@pytest.fixture
def bare(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Cli]:
    """``runledger`` in-process with no RUNLEDGER_* setting: (exit code, stdout, stderr)."""
    for name in [n for n in os.environ if n.startswith("RUNLEDGER_")]:
        monkeypatch.delenv(name)
    yield in_process(capsys)


@pytest.fixture
def dead(tmp_path: Path) -> Path:
    """A data dir whose stack.json names a broker nobody runs."""
    d = tmp_path / "dead"
    StackFile("http://127.0.0.1:1", "127.0.0.1:1", "gone.", "t").write(d)
    return d
