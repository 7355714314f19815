"""The bulk replay path against the live path, on real DuckDB files, without a broker.

The same messages (processes through their lifecycles, failures, retries, restarts
that replace steps, tokens, a duplicate and an undecodable message, on two partitions)
go once through the live path (``fold_batch`` + ``Store.write`` per small batch, states
loaded back from the store as the projector does after a restart) and once through
the bulk path: ``BulkReplay`` in one process, and one ``PartitionFold`` per partition
whose chunks a ``ChunkWriter`` appends in some interleaving (what the worker processes
of ``replay_parallel`` do). With a tiny ``max_states`` states leave memory for the
spill between their events and come back: every table must still be equal row for
row, and ``verify.compare`` must say so. The golden histories (every aggregate type)
go through the same test.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pytest

from projections.fold import RawMessage, fold_batch
from projections.replay import BulkReplay, ChunkWriter, Progress, replay
from projections.replay_fold import Chunk, PartitionFold
from projections.spill import StateSpill
from projections.store import Store
from projections.verify import compare
from schemas import default_codec
from streams.consumer import partition_for
from streams.domain import commands as c
from streams.domain.aggregates import decide, evolve, stream_key
from streams.domain.events import Event, StepDefinition
from streams.domain.rejection import Rejected
from streams.serde import encode_event

T0 = 1_700_000_000_000_000
TOPIC = "t.ledger.events"
PARTITIONS = 2
STEPS = (StepDefinition("fetch", "Fetch", 1), StepDefinition("parse", "Parse", 2))


def script(n: int) -> list[c.Body]:
    base: list[c.Body] = [
        c.CreateProcess("scan", f"site-{n % 3}", f'{{"n":{n}}}', STEPS),
        c.StartStep("fetch"),
        c.ReportProgress(30.0, "fetching"),
        c.CompleteStep("fetch"),
    ]
    if n % 4 == 0:
        return [*base, c.FailProcess("boom"), c.RetryProcess(), c.StartStep("fetch")]
    if n % 4 == 1:
        return [*base, c.RestartFromStep("fetch"), c.CancelProcess("enough")]
    if n % 4 == 2:
        return [*base, c.StartStep("parse"), c.CompleteStep("parse"), c.CompleteProcess("x")]
    return [*base, c.DeleteProcess()]


def history() -> list[Event]:
    """Events of 40 processes and 3 accounts, interleaved as the decider would write them."""
    scripts: list[tuple[str, str, list[c.Body]]] = [
        ("process", f"p{n}", script(n)) for n in range(40)
    ]
    for a in range(3):
        tokens: list[c.Body] = [c.CreateToken(f"h{a}-{i}", f"tok{i}") for i in range(3)]
        scripts.append(("account", f"acct{a}", [*tokens, c.RevokeToken(f"h{a}-1")]))
    return interleaved(scripts)


def interleaved(scripts: Sequence[tuple[str, str, list[c.Body]]]) -> list[Event]:
    """The events of (aggregate type, id, commands) scripts decided one command of each
    in turn, as the decider would write them; rejected commands leave nothing."""
    states: dict[str, Any] = {}
    out: list[Event] = []
    clock = T0
    for i in range(max(len(s) for _, _, s in scripts)):
        for kind, aid, bodies in scripts:
            if i >= len(bodies):
                continue
            clock += 1000
            cmd = c.Command(f"{aid}-{i}", kind, aid, clock, "acme", "tester", "r", "r", bodies[i])
            try:
                events = decide(states.get(aid), cmd)
            except Rejected:
                continue
            for ev in events:
                states[aid] = evolve(states.get(aid), ev)
                out.append(ev)
    return out


def log(events: Sequence[Event]) -> list[RawMessage]:
    """The events as Kafka would hold them: keyed to a partition, offsets per partition,
    plus one duplicate (a decider re-run) and one undecodable message."""
    codec = default_codec()
    next_offset = [0] * PARTITIONS
    out: list[RawMessage] = []

    def put(key: bytes, value: bytes) -> None:
        p = partition_for(key, PARTITIONS)
        out.append(RawMessage(p, next_offset[p], value, key))
        next_offset[p] += 1

    for i, ev in enumerate(events):
        key = stream_key(ev.aggregate_type, ev.aggregate_id).encode()
        put(key, encode_event(codec, ev))
        if i == 50:
            put(key, encode_event(codec, ev))  # the same event again
        if i == 80:
            put(b"junk", b"\x00 not avro")
    return out


def live_path(path: Path, messages: Sequence[RawMessage], batch: int = 7) -> Path:
    """``path`` built by the live path: ``fold_batch`` and ``Store.write``, ``batch``
    messages at a time in partition order."""
    with Store(path) as store:
        by_partition = sorted(messages, key=lambda m: (m.partition, m.offset))
        for start in range(0, len(by_partition), batch):
            chunk = by_partition[start : start + batch]
            store.write(fold_batch({}, chunk, topic=TOPIC, load=store.load_states))
    return path


def tables(path: Path) -> dict[str, list[tuple[object, ...]]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        names = [
            r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        ]
        return {n: con.execute(f'SELECT * FROM "{n}" ORDER BY ALL').fetchall() for n in names}
    finally:
        con.close()


@pytest.fixture(scope="module")
def messages() -> list[RawMessage]:
    return log(history())


@pytest.fixture(scope="module")
def live_file(tmp_path_factory: pytest.TempPathFactory, messages: list[RawMessage]) -> Path:
    """The live path's file of ``messages`` (read only by the tests that share it)."""
    live = tmp_path_factory.mktemp("live") / "live.duckdb"
    live_path(live, messages)
    return live


def assert_same_tables(live: Path, bulk: Path) -> None:
    expected, got = tables(live), tables(bulk)
    assert set(expected) == set(got)
    assert got["events"] and got["positions"]
    for name in expected:
        assert got[name] == expected[name], f"table {name} differs"
    assert all(check.equal for check in compare(live, bulk))


@pytest.mark.parametrize("max_states", [1, 4, 20_000])
def test_bulk_replay_gives_the_live_paths_tables(
    tmp_path: Path, messages: list[RawMessage], live_file: Path, max_states: int
) -> None:
    live = live_file
    bulk = tmp_path / "bulk.duckdb"
    with Store(bulk) as store:
        # Several event chunks; with a small max_states, states go to the spill and back.
        replay_ = BulkReplay(store, TOPIC, chunk_events=50, max_states=max_states)
        # Arrival order mixes partitions, as a consumer's batches do.
        for start in range(0, len(messages), 33):
            replay_.add(messages[start : start + 33])
        replay_.finish()
    assert replay_.duplicates == 1
    assert replay_.dead_letters == 1
    assert replay_.states == 43  # 40 processes and 3 accounts, each counted once

    assert_same_tables(live, bulk)
    got = tables(bulk)
    assert len(got["events"]) == len(history())
    assert got["processes"] and got["steps"] and got["tokens"]


def fold_by_partition(
    messages: Sequence[RawMessage], max_states: int, chunk_events: int
) -> tuple[list[list[Chunk]], list[PartitionFold]]:
    """One PartitionFold per partition, as the replay workers run them: their chunks."""
    chunks: list[list[Chunk]] = []
    folds = []
    for partition in sorted({m.partition for m in messages}):
        mine = [m for m in messages if m.partition == partition]
        fold = PartitionFold(TOPIC, StateSpill(), max_states=max_states, chunk_events=chunk_events)
        out = []
        for start in range(0, len(mine), 9):
            chunk = fold.add(mine[start : start + 9])
            if chunk is not None:
                out.append(chunk)
        out.append(fold.finish())
        chunks.append(out)
        folds.append(fold)
    return chunks, folds


def write_interleaved(path: Path, chunks: list[list[Chunk]], ends: dict[int, int]) -> ChunkWriter:
    """The chunks of every fold, alternating between folds (in order within one)."""
    with Store(path) as store:
        writer = ChunkWriter(store, TOPIC)
        longest = max(len(c) for c in chunks)
        for i in range(longest):
            for per_fold in reversed(chunks):  # the last partition's first
                if i < len(per_fold):
                    writer.write(per_fold[i])
        writer.finish(ends)
    return writer


@pytest.mark.parametrize("max_states", [1, 3, 20_000])
def test_folds_per_partition_give_the_live_paths_tables(
    tmp_path: Path, messages: list[RawMessage], live_file: Path, max_states: int
) -> None:
    live = live_file
    chunks, folds = fold_by_partition(messages, max_states, chunk_events=20)
    assert len(folds) == PARTITIONS and all(len(c) > 2 for c in chunks)
    ends = {p: 1 + max(m.offset for m in messages if m.partition == p) for p in range(PARTITIONS)}
    writer = write_interleaved(tmp_path / "bulk.duckdb", chunks, ends)
    assert sum(f.duplicates for f in folds) == 1 and sum(f.dead_letters for f in folds) == 1
    assert writer.states == 43
    if max_states < 10:  # the spill was used, and states came back from it changed
        assert all(f.evicted for f in folds)
        assert writer.rewritten > 0
    assert_same_tables(live, tmp_path / "bulk.duckdb")


GOLDEN = Path(__file__).resolve().parents[1] / "golden"


@pytest.mark.parametrize("name", sorted(p.name.split(".")[0] for p in GOLDEN.glob("*.jsonl")))
def test_golden_histories_through_folds_with_a_spill(tmp_path: Path, name: str) -> None:
    """Every aggregate type goes to the spill and back, and to the tables as rows."""
    codec = default_codec()
    messages = []
    for line in (GOLDEN / f"{name}.events.jsonl").read_text().splitlines():
        x = json.loads(line)
        value = codec.encode(x["record"]["type"], x["record"])
        messages.append(RawMessage(x["partition"], x["offset"], value))
    live = tmp_path / "live.duckdb"
    live_path(live, messages, batch=1)
    chunks, folds = fold_by_partition(messages, max_states=1, chunk_events=3)
    ends: dict[int, int] = {}
    for m in messages:
        ends[m.partition] = max(ends.get(m.partition, 0), m.offset + 1)
    write_interleaved(tmp_path / "bulk.duckdb", chunks, ends)
    assert_same_tables(live, tmp_path / "bulk.duckdb")


def test_the_spill_gives_back_equal_states(messages: list[RawMessage]) -> None:
    states = fold_batch({}, messages, topic=TOPIC).states
    with StateSpill() as spill:
        spill.put(states)
        assert spill.load([*states, ("process", "nobody")]) == states
        first = next(iter(states))
        spill.put({first: states[next(k for k in states if k != first)]})  # replaced
        assert spill.load([first])[first] != states[first]


def test_compare_finds_a_changed_row(tmp_path: Path, messages: list[RawMessage]) -> None:
    live = tmp_path / "live.duckdb"
    live_path(live, messages)
    bulk = tmp_path / "bulk.duckdb"
    asyncio.run(_replay(bulk, messages))
    con = duckdb.connect(str(live))
    con.execute("UPDATE processes SET progress = 99 WHERE id = 'p3'")
    con.close()

    checks = {c.name: c for c in compare(live, bulk)}
    assert not checks["processes"].equal
    assert checks["processes"].left_checksum != checks["processes"].right_checksum
    (only_live,) = checks["processes"].only_left
    (only_rebuilt,) = checks["processes"].only_right
    assert only_live[0] == only_rebuilt[0] == "p3"
    assert [n for n, chk in checks.items() if not chk.equal] == ["processes"]


async def _replay(target: Path, messages: Sequence[RawMessage]) -> Progress:
    async def batches() -> AsyncIterator[Sequence[RawMessage]]:
        for start in range(0, len(messages), 40):
            yield messages[start : start + 40]

    progress = Progress()
    ends = {p: 1 + max(m.offset for m in messages if m.partition == p) for p in range(PARTITIONS)}
    progress.set_range(dict.fromkeys(range(PARTITIONS), 0), ends)
    await replay(target, batches(), topic=TOPIC, progress=progress, ends=lambda: ends)
    return progress


def test_replay_builds_a_new_file_and_never_overwrites(
    tmp_path: Path, messages: list[RawMessage]
) -> None:
    target = tmp_path / "new.duckdb"
    progress = asyncio.run(_replay(target, messages))
    assert target.exists() and not (tmp_path / "new.duckdb.partial").exists()
    assert progress.read == progress.total == len(messages)
    with pytest.raises(FileExistsError):
        asyncio.run(_replay(target, messages))
