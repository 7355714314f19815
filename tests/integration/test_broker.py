"""The broker the project starts is a real Kafka: transactions commit, aborted ones stay
invisible to read_committed consumers, and a restarted local broker keeps its data."""

from __future__ import annotations

import asyncio
import shutil
import socket
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from runledger.broker import BrokerError, LocalKafka, fetch_jars
from runledger.settings import Settings

pytestmark = pytest.mark.integration

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="java is not on PATH")


async def create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()


async def read_values(bootstrap: str, topic: str, until: bytes, timeout: float = 30) -> list[bytes]:
    """Every value of ``topic`` from the start, read_committed, up to and including ``until``."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        deadline = time.monotonic() + timeout
        while until not in values:
            assert time.monotonic() < deadline, f"{until!r} not read within {timeout} s: {values}"
            batches = await consumer.getmany(timeout_ms=500)
            values += [record.value for records in batches.values() for record in records]
    finally:
        await consumer.stop()
    return values


def test_transaction_commits_and_aborted_one_stays_invisible(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}ledger"

    async def scenario() -> list[bytes]:
        await create_topic(kafka_bootstrap, topic)
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka_bootstrap,
            transactional_id=f"{topic_prefix}tx",
            enable_idempotence=True,
            acks="all",
        )
        await producer.start()
        try:
            await producer.begin_transaction()
            await producer.send_and_wait(topic, b"aborted", key=b"a1")
            await producer.abort_transaction()
            async with producer.transaction():
                await producer.send_and_wait(topic, b"committed", key=b"a1")
        finally:
            await producer.stop()
        return await read_values(kafka_bootstrap, topic, until=b"committed")

    assert asyncio.run(scenario()) == [b"committed"]


@needs_java
def test_local_broker_restarted_on_same_log_dir_keeps_data(tmp_path: Path) -> None:
    settings = Settings.from_env()
    libs = fetch_jars(settings.cache_dir, settings.kafka_version)
    log_dir = tmp_path / "kafka"

    async def write(bootstrap: str) -> None:
        await create_topic(bootstrap, "kept")
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, enable_idempotence=True, acks="all"
        )
        await producer.start()
        try:
            await producer.send_and_wait("kept", b"before restart", key=b"k")
        finally:
            await producer.stop()

    with LocalKafka(libs, log_dir) as first:
        first_bootstrap = first.bootstrap
        asyncio.run(write(first_bootstrap))

    with LocalKafka(libs, log_dir) as second:
        assert second.bootstrap == first_bootstrap  # same address on resume
        values = asyncio.run(read_values(second.bootstrap, "kept", until=b"before restart"))
    assert values == [b"before restart"]


def test_start_without_jars_says_where_it_looked(tmp_path: Path) -> None:
    libs = tmp_path / "libs"
    libs.mkdir()
    broker = LocalKafka(libs, tmp_path / "kafka")
    with pytest.raises(BrokerError, match=r"no Kafka broker jars in .*libs"):
        broker.start(timeout=10)
    assert broker.pid is None


@needs_java
def test_broker_that_exits_while_starting_reports_its_log(tmp_path: Path) -> None:
    settings = Settings.from_env()
    libs = fetch_jars(settings.cache_dir, settings.kafka_version)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        broker = LocalKafka(libs, tmp_path / "kafka", port=taken.getsockname()[1])
        with pytest.raises(BrokerError, match="exited with code") as failure:
            broker.start(timeout=60)
    assert "Address already in use" in str(failure.value).split("Last lines")[0]
    assert broker.pid is None
