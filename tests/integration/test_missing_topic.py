"""The tools that read the ledger, pointed at a prefix whose topics do not exist: each
fails within seconds (not after a 30 s metadata wait) with one line naming the topic
and the broker, exits non-zero, and leaves the topic uncreated."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from projections.store import Store
from runledger.node import DB_FILE
from tests.integration.conftest import Cli, in_process

pytestmark = pytest.mark.integration

# A correctness bound, not a speed target: the old metadata wait took 30 s (10 s for
# audit), a fail-fast check takes well under a second.
BOUND_S = 15.0


@pytest.fixture
def missing(
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Cli]:
    """``runledger`` in this process, on a prefix no topic of the broker carries, with a
    read model that has applied nothing yet (what verify compares)."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    Store(data_dir / DB_FILE).open().close()
    monkeypatch.setenv("RUNLEDGER_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("RUNLEDGER_TOPIC_PREFIX", topic_prefix)
    monkeypatch.setenv("RUNLEDGER_DATA_DIR", str(data_dir))
    yield in_process(capsys)


async def _topics(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


@pytest.mark.parametrize(
    "argv",
    [
        ["replay", "--to", "{tmp}/rebuilt.duckdb"],
        ["verify"],
        ["export", "--format", "parquet", "--out", "{tmp}/export"],
        ["tail", "--from", "beginning"],
        ["audit", "some-id"],
        ["as-of", "some-id", "--at", "2026-01-01T00:00:00Z"],
    ],
    ids=lambda argv: argv[0],
)
def test_a_missing_topic_fails_fast_naming_topic_and_broker(
    missing: Cli, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, argv: list[str]
) -> None:
    topic = f"{topic_prefix}ledger.events"
    started = time.monotonic()
    code, out, err = missing(*(a.format(tmp=tmp_path) for a in argv))
    elapsed = time.monotonic() - started

    assert code == 2, (code, out, err)
    assert elapsed < BOUND_S, f"{argv[0]} took {elapsed:.1f} s to report the missing topic"
    assert f"topic {topic} does not exist" in err
    assert kafka_bootstrap in err
    assert len(err.strip().splitlines()) == 1, err
    assert out == ""
    assert not (tmp_path / "rebuilt.duckdb").exists()
    assert not (tmp_path / "export").exists()
    assert not {t for t in asyncio.run(_topics(kafka_bootstrap)) if t.startswith(topic_prefix)}
