"""``runledger swap`` with no node running, on a stack that ``runledger up`` started
with a topic prefix: the prefix comes from ``stack.json``, as for every other tool.

Before, the offline swap took the prefix from the environment only, looked for
positions of ``ledger.events`` in a rebuilt file of ``<prefix>ledger.events``, and
refused the file as "not a read model of this ledger"."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from runledger.node import DB_FILE
from runledger.stackfile import StackFile
from streams.topics import Topics, ensure_topics
from tests.integration.conftest import in_process
from tests.integration.test_projector import History, encoded, lifecycle, produce

pytestmark = pytest.mark.integration


def test_offline_swap_takes_the_prefix_from_the_stack_file(
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topics = Topics(topic_prefix)
    asyncio.run(ensure_topics(kafka_bootstrap, topics, 2))
    events = lifecycle(History(), "p-1")  # a read model holds positions once it has events
    asyncio.run(produce(kafka_bootstrap, topics.events, encoded(events)))
    data_dir = tmp_path / "data"
    # What `up` leaves behind once stopped: stack.json naming broker and prefix.
    StackFile("http://127.0.0.1:1", kafka_bootstrap, topic_prefix, "rl_x", 0).write(data_dir)
    for name in ("RUNLEDGER_KAFKA_BOOTSTRAP", "RUNLEDGER_TOPIC_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    cli = in_process(capsys)
    dd = ["--data-dir", str(data_dir)]
    code, _, err = cli("replay", "--to", str(data_dir / DB_FILE), *dd)
    assert code == 0, err
    rebuilt = data_dir / "rebuilt.duckdb"
    code, _, err = cli("replay", "--to", str(rebuilt), *dd)
    assert code == 0, err

    code, out, err = cli("swap", "--from", str(rebuilt), *dd)

    assert code == 0, err
    assert "is now the rebuilt file" in out and "no node was running" in err
    assert not rebuilt.exists() and (data_dir / DB_FILE).exists()
