"""Golden histories replay to exactly the expected tables (issue 4), without a broker.

Each ``tests/golden/<name>.events.jsonl`` holds recorded events (``partition``,
``offset`` and the Avro ``record``); ``<name>.expected.json`` holds every table of the
read model they must give (columns, rows sorted, values JSON-encoded). The records are
encoded with the codec (so decoding is exercised too), folded with ``fold_batch`` into a
fresh DuckDB file through ``Store.write`` in batches of 1, 3 and all, and through
``BulkReplay``; every table must equal the expected JSON exactly.

This is a regression lock: any change to the projection fails it. After an intended
change, regenerate the files with ``python scripts/record_golden.py --write`` and review
the diff of the ``.expected.json`` files before committing them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from projections.fold import RawMessage, fold_batch
from projections.replay import BulkReplay
from projections.store import Store
from schemas import default_codec
from tests.golden_tables import dump_tables

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
TOPIC = "golden.ledger.events"  # as recorded: the positions table names it
NAMES = sorted(p.name.removesuffix(".events.jsonl") for p in GOLDEN.glob("*.events.jsonl"))


def messages(name: str) -> list[RawMessage]:
    codec = default_codec()
    lines = (GOLDEN / f"{name}.events.jsonl").read_text().splitlines()
    out = []
    for line in lines:
        x = json.loads(line)
        value = codec.encode(x["record"]["type"], x["record"])
        out.append(RawMessage(x["partition"], x["offset"], value))
    return out


def expected(name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((GOLDEN / f"{name}.expected.json").read_text())
    return result


def assert_tables(path: Path, name: str) -> None:
    want, got = expected(name), dump_tables(path)
    assert sorted(got) == sorted(want), "the read model's tables changed"
    for table in want:
        assert got[table] == want[table], f"{name}: table {table} differs"


def test_there_are_golden_histories() -> None:
    assert len(NAMES) >= 3
    for name in NAMES:
        assert (GOLDEN / f"{name}.expected.json").exists(), name


@pytest.mark.parametrize("size", [1, 3, None], ids=["batch1", "batch3", "all"])
@pytest.mark.parametrize("name", NAMES)
def test_live_path_gives_the_expected_tables(tmp_path: Path, name: str, size: int | None) -> None:
    msgs = messages(name)
    step = size or len(msgs)
    path = tmp_path / "read.duckdb"
    with Store(path) as store:
        for start in range(0, len(msgs), step):
            batch = fold_batch({}, msgs[start : start + step], topic=TOPIC, load=store.load_states)
            assert not batch.dead_letters and not batch.duplicates
            store.write(batch)
    assert_tables(path, name)


@pytest.mark.parametrize("name", NAMES)
def test_bulk_replay_gives_the_expected_tables(tmp_path: Path, name: str) -> None:
    msgs = messages(name)
    path = tmp_path / "bulk.duckdb"
    with Store(path) as store:
        bulk = BulkReplay(store, TOPIC, chunk_events=4)  # several event chunks
        for start in range(0, len(msgs), 5):
            bulk.add(msgs[start : start + 5])
        bulk.finish()
    assert bulk.dead_letters == 0 and bulk.duplicates == 0
    assert_tables(path, name)
