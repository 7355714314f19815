"""A read model ahead of its log: ``DIR/kafka`` wiped while ``DIR/node.duckdb`` was
kept, or ``ledger.events`` deleted and re-created on a cluster. The stored positions are
past the log's ends (or name a partition the topic no longer has). Before, the consumer
sent such a position back to the beginning, the new log's events were folded in beside
the old rows, and read-your-writes answered at once from the old positions. Now the
projector refuses to start, saying which partition, its stored position and the log's
end, and what to do; the file is left as it was, and ``up`` exits 2 with that line
instead of serving the mix (projections/projector_clients.py, runledger/node.py).

The log is wiped for real: the topic is deleted and re-created on the broker.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from projections.errors import ProjectorError
from projections.projector import Projector
from projections.store import Store
from runledger.stackfile import StackFile
from streams.topics import Topics, ensure_topics
from tests.integration.test_cli_review import _start_up, stop_up
from tests.integration.test_projector import (
    History,
    encoded,
    lifecycle,
    produce,
    project_until_end,
)

pytestmark = pytest.mark.integration

TABLES = ("events", "processes", "positions")


async def recreate(bootstrap: str, topics: Topics, partitions: int) -> None:
    """Delete the events topic and create it again, empty, with ``partitions``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topics.events])
        deadline = time.monotonic() + 30
        while topics.events in await admin.list_topics():
            assert time.monotonic() < deadline, "the topic was not deleted in time"
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
    # Deleted topics linger a moment: create until it exists with its new layout.
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            await ensure_topics(bootstrap, topics, partitions)
            (described,) = await admin.describe_topics([topics.events])
            if described["error_code"] == 0 and len(described["partitions"]) == partitions:
                return
            assert time.monotonic() < deadline, "the topic was not re-created in time"
            await asyncio.sleep(0.5)
    finally:
        await admin.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def counts(store: Store) -> dict[str, int]:
    return {t: store.query(f"SELECT count(*) FROM {t}")[0][0] for t in TABLES}


async def refusal(store: Store, bootstrap: str, topics: Topics) -> str:
    """The message a projector's start refuses ``store`` with."""
    projector = Projector(store, bootstrap=bootstrap, topics=topics, start_timeout_s=10)
    with pytest.raises(ProjectorError) as refused:
        await projector.start()
    return str(refused.value)


@pytest.mark.parametrize("partitions_after", [2, 1], ids=["ends-behind", "fewer-partitions"])
def test_the_projector_refuses_a_read_model_ahead_of_its_log_and_leaves_it_as_it_was(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, partitions_after: int
) -> None:
    topics = Topics(topic_prefix)
    path = tmp_path / "node.duckdb"
    history = History()

    async def scenario() -> None:
        await ensure_topics(kafka_bootstrap, topics, 2)
        events = [e for i in range(4) for e in lifecycle(history, f"p-{i}")]
        await produce(kafka_bootstrap, topics.events, encoded(events))
        with Store(path) as store:
            await project_until_end(store, kafka_bootstrap, topics)
            before = store.positions(topics.events)
            rows = counts(store)
        assert sorted(before) == [0, 1] and all(before.values()), before
        kept = digest(path)

        await recreate(kafka_bootstrap, topics, partitions_after)
        newer = lifecycle(history, "q-1")[:2]  # a new log, shorter than the old one
        await produce(kafka_bootstrap, topics.events, encoded(newer))

        with Store(path) as store:
            message = await refusal(store, kafka_bootstrap, topics)
            assert store.positions(topics.events) == before
            assert counts(store) == rows
        assert digest(path) == kept  # not a byte written

        assert f"the read model {path} is ahead of its log" in message
        assert "runledger replay --to" in message and "restore the log" in message
        applied = f"it has applied {topics.events} partition "
        if partitions_after == 2:
            # Both partitions of the new log end before the model's positions.
            for partition, position in before.items():
                assert f"partition {partition} up to offset {position}, but that " in message
            assert message.count("but that partition of the log ends at offset") == 2
            assert applied in message
        else:
            assert f"{applied}0 up to offset {before[0]}, but that partition of" in message
            assert f"partition 1 up to offset {before[1]}, but {topics.events} has 1 " in message

    asyncio.run(scenario())


def test_a_read_model_at_the_log_s_end_starts_also_with_a_transaction_open(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """The normal restart: positions equal to the ends. A transaction left open keeps
    a read_committed reader's end (the last stable offset) behind the log's; the check
    compares with the high watermark, so it does not refuse then either."""
    topics = Topics(topic_prefix)
    path = tmp_path / "node.duckdb"
    history = History()

    async def scenario() -> None:
        await ensure_topics(kafka_bootstrap, topics, 1)
        await produce(kafka_bootstrap, topics.events, encoded(lifecycle(history, "p-1")))
        with Store(path) as store:
            await project_until_end(store, kafka_bootstrap, topics)
            at_end = store.positions(topics.events)
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka_bootstrap,
            transactional_id=f"{topic_prefix}open",
            enable_idempotence=True,
        )
        await producer.start()
        try:
            await producer.begin_transaction()
            for key, value in encoded(lifecycle(history, "p-2")):
                await producer.send_and_wait(topics.events, value=value, key=key)
            with Store(path) as store:  # resumed while the transaction is open
                projector = Projector(store, bootstrap=kafka_bootstrap, topics=topics)
                await projector.start()
                assert projector.applied == at_end
                task = asyncio.create_task(projector.run())
                await projector.stop()
                await task
            await producer.commit_transaction()
            with Store(path) as store:  # and the committed records are applied after it
                await project_until_end(store, kafka_bootstrap, topics)
                assert store.query("SELECT count(*) FROM processes") == [(2,)]
        finally:
            await producer.stop()

    asyncio.run(scenario())


def test_up_on_a_data_dir_whose_log_was_wiped_exits_2_saying_why(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """``up`` started the node, the node refused, ``up`` stopped everything with the
    node's line: no restart loop, no API serving the old rows, the file untouched."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNLEDGER_")}
    env |= {
        "RUNLEDGER_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "RUNLEDGER_TOPIC_PREFIX": prefix,
        "RUNLEDGER_PARTITIONS": "1",
    }
    data_dir = tmp_path / "stack"
    up, lines = _start_up(env, data_dir)
    try:
        assert any("token for" in x for x in lines), lines
        stack = StackFile.read(data_dir)
        made = httpx.post(
            f"{stack.api_url}/process",
            json={"type": "wiped.test"},
            params={"wait": "true"},
            headers={"Authorization": stack.token},
            timeout=30,
        )
        assert made.status_code == 201, made.text
    finally:
        stop_up(up)
    assert up.returncode == 0
    model = data_dir / "node.duckdb"
    kept = digest(model)

    asyncio.run(recreate(kafka_bootstrap, Topics(prefix), 1))

    began = time.monotonic()
    again, lines = _start_up(env, data_dir)
    try:
        out, _ = again.communicate(timeout=90)
    finally:
        stop_up(again)
    lines += out.splitlines()
    said = "\n".join(lines)
    assert again.returncode == 2, said
    assert time.monotonic() - began < 90
    refused = [x for x in lines if "the node exited with status 2 while starting" in x]
    assert len(refused) == 1, said
    assert f"the read model {model} is ahead of its log" in refused[0]
    assert f"it has applied {prefix}ledger.events partition 0 up to offset" in refused[0]
    assert "but that partition of the log ends at offset 0" in refused[0]
    assert not any("restarting" in x for x in lines), said
    assert digest(model) == kept
