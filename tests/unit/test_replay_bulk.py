"""The bulk replay path against the live path, on real DuckDB files, without a broker.

The same messages (processes through their lifecycles, failures, retries, restarts
that replace steps, tokens, a duplicate and an undecodable message, on two partitions)
go once through the live path (``fold_batch`` + ``Store.write`` per small batch, states
loaded back from the store as the projector does after a restart) and once through
``BulkReplay``; every table must be equal row for row, and ``verify.compare`` must say so.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pytest

from projections.fold import RawMessage, fold_batch
from projections.replay import BulkReplay, Progress, replay
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


def live_path(path: Path, messages: Sequence[RawMessage], batch: int = 7) -> None:
    with Store(path) as store:
        by_partition = sorted(messages, key=lambda m: (m.partition, m.offset))
        for start in range(0, len(by_partition), batch):
            chunk = by_partition[start : start + batch]
            store.write(fold_batch({}, chunk, topic=TOPIC, load=store.load_states))


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


def test_bulk_replay_gives_the_live_paths_tables(
    tmp_path: Path, messages: list[RawMessage]
) -> None:
    live = tmp_path / "live.duckdb"
    live_path(live, messages)
    bulk = tmp_path / "bulk.duckdb"
    with Store(bulk) as store:
        replay_ = BulkReplay(store, TOPIC, chunk_events=50)  # several event chunks
        # Arrival order mixes partitions, as a consumer's batches do.
        for start in range(0, len(messages), 33):
            replay_.add(messages[start : start + 33])
        replay_.finish()
    assert replay_.duplicates == 1
    assert replay_.dead_letters == 1

    expected, got = tables(live), tables(bulk)
    assert set(expected) == set(got)
    assert len(got["events"]) == len(history())
    assert got["processes"] and got["steps"] and got["tokens"] and got["positions"]
    for name in expected:
        assert got[name] == expected[name], f"table {name} differs"
    assert all(check.equal for check in compare(live, bulk))


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
