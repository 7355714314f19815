"""Review of the bulk replay against the live projector, on the log's awkward cases.

Every test builds one log (raw Kafka messages) and folds it twice: through the live
path (``fold_batch`` + ``Store.write`` per small batch, states loaded back from the
store) and through the bulk path (``BulkReplay``, and one ``PartitionFold`` per
partition whose chunks a ``ChunkWriter`` appends). The tables must be equal row for
row. The log holds what a real one can: dead letters of every reason (undecodable,
sequence gap, refused by ``evolve``), duplicates of aggregates long evicted, every
aggregate type (the golden histories: definitions, runs, tokens), partitions with no
record at all.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from projections.export import EventWriter, export_tables
from projections.fold import RawMessage, fold_batch
from projections.replay import BulkReplay, ChunkWriter
from projections.replay_fold import Chunk, PartitionFold
from projections.replay_parallel import ReplayError, check_range
from projections.spill import StateSpill
from projections.store import Store
from projections.tables import ALL as ALL_TABLES
from projections.verify import compare
from schemas import default_codec
from streams.consumer import Delivery, partition_for
from streams.domain import commands as c
from streams.domain.aggregates import stream_key
from streams.domain.events import Event, ProcessCreated, StepDefinition
from streams.serde import decode_event, encode_event, event_from_record
from tests.unit.test_replay_bulk import interleaved, live_path, tables

TOPIC = "t.ledger.events"
T0 = 1_700_000_000_000_000
STEPS = (StepDefinition("fetch", "Fetch", 1), StepDefinition("parse", "Parse", 2))
GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def _script(n: int) -> list[c.Body]:
    base: list[c.Body] = [
        c.CreateProcess("scan", f"site-{n % 3}", f'{{"n":{n}}}', STEPS),
        c.StartStep("fetch"),
        c.CompleteStep("fetch"),
        c.StartStep("parse"),
    ]
    if n % 3 == 0:  # fails long after its start, is retried and restarted
        return [*base, c.FailProcess("boom"), c.RetryProcess(), c.RestartFromStep("fetch")]
    if n % 3 == 1:
        return [*base, c.RestartFromStep("fetch"), c.StartStep("fetch")]
    return [*base, c.CompleteStep("parse"), c.CompleteProcess("x")]


def _domain_history(processes: int = 24, accounts: int = 3) -> list[Event]:
    scripts: list[tuple[str, str, list[c.Body]]] = [
        ("process", f"p{n}", _script(n)) for n in range(processes)
    ]
    for a in range(accounts):
        tokens: list[c.Body] = [c.CreateToken(f"h{a}-{i}", f"tok{i}") for i in range(4)]
        scripts.append(("account", f"acct{a}", [*tokens, c.RevokeToken(f"h{a}-1")]))
    return interleaved(scripts)


def _golden_events() -> list[Event]:
    codec = default_codec()
    out = []
    for path in sorted(GOLDEN.glob("*.events.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)["record"]
            out.append(decode_event(codec, codec.encode(record["type"], record)))
    return out


class Log:
    """Messages keyed to partitions with offsets per partition, as Kafka holds them."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.codec = default_codec()
        self.next = [0] * partitions
        self.messages: list[RawMessage] = []

    def put(self, key: bytes, value: bytes | None) -> None:
        p = partition_for(key, self.partitions)
        self.messages.append(RawMessage(p, self.next[p], value, key))
        self.next[p] += 1

    def event(self, ev: Event) -> None:
        self.put(stream_key(ev.aggregate_type, ev.aggregate_id).encode(), self.encode(ev))

    def encode(self, ev: Event) -> bytes:
        return encode_event(self.codec, ev)

    @property
    def ends(self) -> dict[int, int]:
        return {p: o for p, o in enumerate(self.next) if o}


def awkward_log(partitions: int = 3) -> Log:
    """Domain and golden events, plus every kind of message the projector skips."""
    events = _domain_history() + _golden_events()
    log = Log(partitions)
    seen: dict[tuple[str, str], Event] = {}
    for i, ev in enumerate(events):
        key = (ev.aggregate_type, ev.aggregate_id)
        first = key not in seen
        seen.setdefault(key, ev)
        if not first and ev.aggregate_type == "process" and i % 5 == 0:
            # Refused by evolve at the next seq (a process created twice); the real
            # event with that seq follows and must still apply.
            twice = dataclasses.replace(
                ev,
                event_id=f"{ev.event_id}-twice",
                type=ProcessCreated.TYPE,
                data=ProcessCreated("scan", None, "{}", STEPS),
            )
            log.event(twice)
        if not first and i % 7 == 0:
            # A sequence gap: an event far ahead of its aggregate.
            log.event(dataclasses.replace(ev, event_id=f"{ev.event_id}-gap", seq=ev.seq + 5))
        log.event(ev)
        if i % 11 == 0:
            log.put(stream_key(*key).encode(), b"\x00 not avro")
        if i % 13 == 0:
            log.put(stream_key(*key).encode(), None)
    # Late duplicates of the first events of aggregates long gone from memory.
    for ev in list(seen.values())[::2]:
        log.event(ev)
    return log


def assert_same(live: Path, bulk: Path) -> None:
    expected, got = tables(live), tables(bulk)
    assert set(expected) == set(got)
    for name in sorted(expected):
        assert got[name] == expected[name], f"table {name} differs"
    assert [chk.name for chk in compare(live, bulk) if not chk.equal] == []


@pytest.fixture(scope="module")
def log() -> Log:
    return awkward_log()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, log: Log) -> Path:
    return live_path(tmp_path_factory.mktemp("live") / "live.duckdb", log.messages, batch=5)


def test_the_awkward_log_has_what_it_claims(live: Path, log: Log) -> None:
    batch = fold_batch({}, log.messages, topic=TOPIC)
    reasons = {d.reason for d in batch.dead_letters}
    assert reasons == {"undecodable", "sequence_gap", "rejected"}
    assert batch.duplicates > 10
    kinds = {k for k, _ in batch.states}
    assert {"process", "account", "flowrun", "caserun", "flow", "site", "case"} <= kinds
    got = tables(live)
    assert all(got[n] for n in ("processes", "steps", "tokens", "flowruns", "caseruns"))


@pytest.mark.parametrize(("max_states", "chunk_events", "batch"), [(1, 1, 1), (2, 3, 4), (5, 7, 9)])
def test_bulk_replay_equals_live_on_the_awkward_log(
    tmp_path: Path, log: Log, live: Path, max_states: int, chunk_events: int, batch: int
) -> None:
    bulk = tmp_path / "bulk.duckdb"
    with Store(bulk) as store:
        replay = BulkReplay(store, TOPIC, chunk_events=chunk_events, max_states=max_states)
        for start in range(0, len(log.messages), batch):
            replay.add(log.messages[start : start + batch])
        replay.finish(log.ends)
    expected = fold_batch({}, log.messages, topic=TOPIC)
    assert replay.duplicates == expected.duplicates
    assert replay.dead_letters == len(expected.dead_letters)
    assert_same(live, bulk)


def _folds(log: Log, max_states: int, chunk_events: int) -> list[list[Chunk]]:
    out = []
    for partition in range(log.partitions):
        mine = [m for m in log.messages if m.partition == partition]
        fold = PartitionFold(TOPIC, StateSpill(), max_states=max_states, chunk_events=chunk_events)
        chunks = [ch for i in range(0, len(mine), 3) if (ch := fold.add(mine[i : i + 3]))]
        chunks.append(fold.finish())
        assert fold.evicted or max_states > 100
        out.append(chunks)
    return out


@pytest.mark.parametrize("max_states", [1, 2])
def test_folds_per_partition_equal_live_on_the_awkward_log(
    tmp_path: Path, log: Log, live: Path, max_states: int
) -> None:
    chunks = _folds(log, max_states, chunk_events=2)
    bulk = tmp_path / "bulk.duckdb"
    with Store(bulk) as store:
        writer = ChunkWriter(store, TOPIC)
        for i in range(max(map(len, chunks))):
            for per_fold in chunks:
                if i < len(per_fold):
                    writer.write(per_fold[i])
        writer.finish(log.ends)
    assert writer.rewritten > 0
    assert_same(live, bulk)


def test_an_aggregate_evicted_and_brought_back_many_times(tmp_path: Path) -> None:
    """One process whose every event comes after 3 others pushed it out (max_states 1)."""
    events = _domain_history(processes=4, accounts=0)
    log = Log(1)
    for ev in sorted(events, key=lambda e: (e.seq, e.aggregate_id)):
        log.event(ev)
    live = live_path(tmp_path / "live.duckdb", log.messages, batch=5)
    bulk = tmp_path / "bulk.duckdb"
    with Store(bulk) as store, StateSpill() as spill:
        replay = BulkReplay(store, TOPIC, chunk_events=2, max_states=1, spill=spill)
        for m in log.messages:
            replay.add([m])
        replay.finish(log.ends)
        assert spill.stored > 3 * len(events) // 4
    assert_same(live, bulk)


def test_a_topic_with_an_empty_partition_gives_the_live_positions(tmp_path: Path) -> None:
    """The live projector stores no position for a partition it never read anything
    from; a replay must not add one (``verify`` would call the tables different)."""
    log = Log(8)
    for ev in _domain_history(processes=2, accounts=0):
        log.event(ev)
    ends = {p: log.next[p] for p in range(log.partitions)}
    assert 0 in ends.values()
    live = live_path(tmp_path / "live.duckdb", log.messages, batch=5)
    bulk = tmp_path / "bulk.duckdb"
    with Store(bulk) as store:
        replay = BulkReplay(store, TOPIC)
        replay.add(log.messages)
        positions = replay.finish(ends)
    assert 0 not in positions.values()
    assert_same(live, bulk)


def test_an_empty_log_gives_an_empty_model(tmp_path: Path) -> None:
    live = live_path(tmp_path / "live.duckdb", [], batch=5)
    bulk = tmp_path / "bulk.duckdb"
    with Store(bulk) as store:
        assert BulkReplay(store, TOPIC).finish({0: 0, 1: 0}) == {}
    assert_same(live, bulk)


def test_a_log_whose_start_was_deleted_is_refused() -> None:
    """Retention deleted offsets 0..99 of partition 1: the model cannot be rebuilt."""
    check_range({0: 0, 1: 0}, {0: 5, 1: 0})  # an empty partition is fine
    with pytest.raises(ReplayError, match=r"partition 1 .*starts at offset 100"):
        check_range({0: 0, 1: 100}, {0: 5, 1: 130})
    # Emptied by retention (start == end > 0): the records are gone all the same.
    with pytest.raises(ReplayError, match="partition 0"):
        check_range({0: 40, 1: 0}, {0: 40, 1: 0})


def test_positions_past_the_end_of_the_log_are_refused() -> None:
    """``until`` beyond a partition's end (a model of another cluster, a topic made
    again) would wait forever for offsets that never come."""
    with pytest.raises(ReplayError, match=r"partition 0 up to offset 12: the log ends at 10"):
        check_range({0: 0}, {0: 10}, until={0: 12})
    with pytest.raises(ReplayError, match="partition 3"):
        check_range({0: 0}, {0: 10}, until={0: 4, 3: 1})
    check_range({0: 0}, {0: 10}, until={0: 10})


def test_events_parquet_round_trips_every_field(tmp_path: Path) -> None:
    events = _domain_history() + _golden_events()
    assert len({e.type for e in events}) > 20
    deliveries = [Delivery(i % 3, i, T0 // 1000 + i, ev) for i, ev in enumerate(events)]
    with EventWriter(tmp_path / "events.parquet") as writer:
        writer.write(deliveries[:10])
        writer.write([])
        writer.write(deliveries[10:])
    rows = pq.read_table(tmp_path / "events.parquet").to_pylist()
    assert len(rows) == len(events)
    for row, sent in zip(rows, deliveries, strict=True):
        assert (row["partition"], row["offset"]) == (sent.partition, sent.offset)
        record = {k: v for k, v in row.items() if k not in ("partition", "offset", "data")}
        record.update(json.loads(row["data"]))
        assert event_from_record(record) == sent.event


def test_export_of_an_empty_ledger_has_every_table_and_no_rows(tmp_path: Path) -> None:
    with EventWriter(tmp_path / "out" / "ledger_events.parquet"):
        pass
    empty = pq.read_table(tmp_path / "out" / "ledger_events.parquet")
    assert empty.num_rows == 0 and empty.schema.names[0] == "event_id"
    db = tmp_path / "empty.duckdb"
    with Store(db) as store:
        BulkReplay(store, TOPIC).finish({0: 0})
    written = export_tables(db, tmp_path / "out")
    assert set(written) == {t.name for t in ALL_TABLES}
    for name, path in written.items():
        table = pq.read_table(path)
        assert table.num_rows == 0, name
        assert table.schema.names == list(next(t for t in ALL_TABLES if t.name == name).names)


def test_export_of_every_table_has_the_rows_of_the_model(tmp_path: Path, live: Path) -> None:
    written = export_tables(live, tmp_path / "out")
    expected = tables(live)
    assert set(written) == set(expected)
    con = duckdb.connect()
    try:
        for name, path in written.items():
            got = con.execute(f"SELECT * FROM read_parquet('{path}') ORDER BY ALL").fetchall()
            assert got == expected[name], name
    finally:
        con.close()
