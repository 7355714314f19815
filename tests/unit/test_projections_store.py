"""The DuckDB store and the read API over it, on real DuckDB files (no broker)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from projections import rows
from projections.errors import StoreError
from projections.fold import RawMessage, fold_batch
from projections.queries import Queries
from projections.store import Store
from schemas import default_codec
from streams.domain import account, aggregates, flow, process, site
from streams.domain import commands as c
from streams.domain.events import Event, StepDefinition
from streams.serde import encode_event

T0 = 1_700_000_000_000_000
TOPIC = "test.ledger.events"
TABLES = ("processes", "steps", "events", "tokens", "accounts", "positions")


def decide_all(
    pid: str, bodies: Sequence[c.Body], account_name: str = "acme", t0: int = T0
) -> list[Event]:
    state: process.ProcessState | None = None
    out: list[Event] = []
    for i, body in enumerate(bodies):
        cmd = c.Command(
            f"{pid}-{i}", "process", pid, t0 + i, account_name, "tester", "r", "r", body
        )
        for event in process.decide(state, cmd):
            state = process.evolve(state, event)
            out.append(event)
    return out


def created(pid: str, account_name: str = "acme", t0: int = T0, **kwargs: Any) -> list[Event]:
    return decide_all(
        pid, [c.CreateProcess(kwargs.pop("type", "scan"), **kwargs)], account_name, t0
    )


def token_events(name: str) -> list[Event]:
    state: account.AccountState | None = None
    out: list[Event] = []
    bodies = [c.CreateToken("h1", "ci"), c.CreateToken("h2", "laptop"), c.RevokeToken("h1")]
    for i, body in enumerate(bodies):
        cmd = c.Command(f"t-{i}", "account", name, T0 + i, name, "admin", "r", "r", body)
        for event in account.decide(state, cmd):
            state = account.evolve(state, event)
            out.append(event)
    return out


def as_messages(events: Sequence[Event], first: int = 0) -> list[RawMessage]:
    codec = default_codec()
    return [RawMessage(0, first + i, encode_event(codec, e)) for i, e in enumerate(events)]


def dump(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    return {t: sorted(store.query(f"SELECT * FROM {t}"), key=repr) for t in TABLES}


def steps_lifecycle(pid: str, *more: c.Body) -> list[Event]:
    steps = (StepDefinition("fetch", "Fetch", 1), StepDefinition("parse", "Parse", 2))
    return decide_all(
        pid,
        [
            c.CreateProcess("scan", "site-1", '{"url":"https://example.org"}', steps),
            c.StartStep("fetch"),
            c.ReportProgress(50.0, "half"),
            c.CompleteStep("fetch", "ok"),
            c.StartStep("extra"),
            c.CompleteStep("extra"),
            c.CompleteProcess("page-1", '{"pages":1}'),
            *more,
        ],
    )


def test_rows_and_positions_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "read.duckdb"
    events = steps_lifecycle("p-1") + token_events("acme")
    batch = fold_batch({}, as_messages(events), topic=TOPIC)
    with Store(path) as store:
        assert store.positions(TOPIC) == {}
        assert store.write(batch)
        before = dump(store)

    with Store(path) as store:
        assert dump(store) == before
        assert store.positions(TOPIC) == {0: len(events)}
        assert store.positions("other.topic") == {}
        assert store.load_states(list(batch.states)) == batch.states
        assert store.load_processes(["p-1", "nope"]) == {"p-1": batch.states[("process", "p-1")]}
        loaded = store.load_accounts(["acme"])["acme"]
        assert loaded.seq == 3 and [t.revoked for t in loaded.tokens] == [True, False]
        stored = Queries(store).events_of("p-1")
    assert [e.seq for e in stored] == list(range(1, 9))
    first = stored[0]
    assert first.type == "process.created" and first.occurred_at == T0
    assert first.partition == 0 and first.offset == 0
    assert '"info_json":"{\\"url\\":\\"https://example.org\\"}"' in first.data
    assert '"steps":[{"step_id":"fetch"' in first.data


def test_the_same_batch_twice_gives_the_same_tables(tmp_path: Path) -> None:
    events = steps_lifecycle("p-1")
    batch = fold_batch({}, as_messages(events), topic=TOPIC)
    with Store(tmp_path / "read.duckdb") as store:
        assert store.write(batch)
        once = dump(store)
        assert not store.write(batch)  # its positions are stored: it was applied
        assert dump(store) == once
        # The projector's path: the same messages folded onto the committed states.
        again = fold_batch(store.load_states(list(batch.states)), as_messages(events), topic=TOPIC)
        assert again.duplicates == len(events) and not again.events
        store.write(again)
        assert dump(store) == once


def test_batches_continue_and_steps_are_replaced(tmp_path: Path) -> None:
    events = steps_lifecycle("p-1", c.RestartFromStep("fetch"))
    with Store(tmp_path / "read.duckdb") as store:
        first = fold_batch({}, as_messages(events[:3]), topic=TOPIC)
        store.write(first)
        second = fold_batch(
            {}, as_messages(events[3:], first=3), topic=TOPIC, load=store.load_states
        )
        assert second.loaded == first.states
        store.write(second)
        state = store.load_processes(["p-1"])["p-1"]
        assert state.status == "pending" and state.attempt == 2 and state.seq == len(events)
        steps = store.query("SELECT step_id, status FROM steps ORDER BY step_order")
        assert steps == [("fetch", "pending"), ("parse", "pending"), ("extra", "pending")]
        assert store.positions(TOPIC) == {0: len(events)}


def test_a_failed_write_keeps_nothing(tmp_path: Path) -> None:
    events = created("p-1")
    good = fold_batch({}, as_messages(events), topic=TOPIC)
    broken_state = replace(good.states[("process", "p-1")], account=None)  # type: ignore[arg-type]
    broken = replace(good, states={("process", "p-1"): broken_state})
    with Store(tmp_path / "read.duckdb") as store:
        # The error that says what is wrong, not the aborted transaction's cleanup.
        with pytest.raises(StoreError, match="NOT NULL constraint failed: processes.account"):
            store.write(broken)
        assert all(not rows_ for rows_ in dump(store).values())
        assert store.write(good)
    with pytest.raises(StoreError):
        store.write(good)  # closed


def test_a_second_writer_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "read.duckdb"
    with Store(path):
        import subprocess
        import sys

        code = f"from projections.store import Store; Store({str(path)!r}).open()"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert done.returncode != 0 and "StoreError" in done.stderr


def _write_all(store: Store, events: Sequence[Event]) -> None:
    store.write(fold_batch({}, as_messages(events), topic=TOPIC, load=store.load_states))


def test_queries_are_scoped_by_account(tmp_path: Path) -> None:
    events = (
        created("p-b", t0=T0 + 20, type="scan", site="s1")
        + created("p-a", t0=T0 + 20, type="scan", site="s2")
        + created("p-c", t0=T0 + 10, type="report", site="s1")
        + created("x-1", "other", t0=T0)
        + decide_all(
            "p-d",
            [c.CreateProcess("scan"), c.CompleteProcess(), c.DeleteProcess()],
            t0=T0 + 5,
        )
        + token_events("acme")
    )
    with Store(tmp_path / "read.duckdb") as store:
        _write_all(store, events)
        q = Queries(store)

        assert q.get_process("acme", "p-a") is not None
        assert q.get_process("acme", "x-1") is None  # another account's
        assert q.get_process("other", "x-1") is not None
        assert q.get_process("acme", "p-d") is None  # deleted

        count, items = q.list_processes("acme", limit=10, offset=0)
        assert count == 3 and [p.id for p in items] == ["p-c", "p-a", "p-b"]
        page = q.list_processes("acme", limit=1, offset=1)
        assert page.count == 3 and [p.id for p in page.items] == ["p-a"]
        assert q.list_processes("acme", limit=5, offset=5).items == []
        only = q.list_processes("acme", limit=10, offset=0, type="scan", site="s1")
        assert (only.count, [p.id for p in only.items]) == (1, ["p-b"])
        assert q.list_processes("acme", limit=10, offset=0, status="completed").count == 0
        with pytest.raises(ValueError):
            q.list_processes("acme", limit=-1, offset=0)

        deleted_events = q.list_events("acme", "p-d", limit=10, offset=0)
        assert deleted_events.count == 4  # created, started, completed, deleted
        assert [e.type for e in deleted_events.items][-1] == "process.deleted"
        assert q.list_events("other", "p-d", limit=10, offset=0).count == 0
        second = q.list_events("acme", "p-d", limit=1, offset=1).items
        assert [e.seq for e in second] == [2]

        assert q.token_account("h2") == ("acme", "laptop")
        assert q.token_account("h1") is None  # revoked
        assert q.token_account("nope") is None


def test_events_after_reads_only_the_rows_after_a_seq(tmp_path: Path) -> None:
    events = steps_lifecycle("p-a") + created("x-1", "other", t0=T0 + 9)
    with Store(tmp_path / "read.duckdb") as store:
        _write_all(store, events)
        q = Queries(store)
        everything = q.list_events("acme", "p-a", limit=100, offset=0).items
        assert len(everything) > 4
        seqs = [e.seq for e in everything]

        assert q.events_after("acme", "p-a", "process", 0, 100) == everything
        after_two = q.events_after("acme", "p-a", "process", 2, 2)
        assert [e.seq for e in after_two] == [3, 4]
        assert after_two == everything[2:4]
        assert q.events_after("acme", "p-a", "process", seqs[-1], 100) == []
        assert q.events_after("acme", "p-a", "process", 2, 0) == []
        assert q.events_after("other", "p-a", "process", 0, 100) == []  # scoped by account
        assert [e.account for e in q.events_after("other", "x-1", "process", 0, 9)] == ["other"]
        assert q.events_after("acme", "p-a", "flowrun", 0, 100) == []  # and by type
        with pytest.raises(ValueError, match="must not be negative"):
            q.events_after("acme", "p-a", "process", -1, 10)
        with pytest.raises(ValueError, match="must not be negative"):
            q.events_after("acme", "p-a", "process", 0, -1)


def test_process_rows_round_trip() -> None:
    state = replace(
        process.evolve(None, created("p-1", site="s")[0]),
        steps=(process.StepState("a", "A", 1, time_started=T0),),
        time_started=T0 + 1,
    )
    cols = rows.process_columns([state])
    row = [cols[name][0] for name in cols]
    step_cols = rows.step_columns([(state.id, s) for s in state.steps])
    step_row = [step_cols[name][0] for name in step_cols][1:]
    assert rows.process_from_row(row, (rows.step_from_row(step_row),)) == state


def test_failed_retried_and_cancelled_processes_round_trip(tmp_path: Path) -> None:
    steps = (StepDefinition("fetch", "Fetch", 1),)
    events = decide_all(
        "p-1",
        [
            c.CreateProcess("scan", steps=steps),
            c.StartStep("fetch"),
            c.FailProcess("boom"),
            c.RetryProcess(),
            c.StartStep("fetch"),
            c.DeleteProcess(),  # of a running Process: cancelled, then deleted
        ],
    )
    with Store(tmp_path / "read.duckdb") as store:
        for i, event in enumerate(events):  # one batch per event, each loading the last
            store.write(
                fold_batch({}, as_messages([event], first=i), topic=TOPIC, load=store.load_states)
            )
            state = store.load_processes(["p-1"])["p-1"]
            assert state.seq == event.seq
        assert [e.type for e in events][-2:] == ["process.cancelled", "process.deleted"]
        assert state.deleted and state.status == "cancelled" and state.attempt == 2
        assert store.query("SELECT status FROM steps") == [("cancelled",)]
        assert Queries(store).get_process("acme", "p-1") is None


def definition_events() -> list[Event]:
    """A Site (kept), a Flow (then deleted) and a Case of another account."""
    plan: list[tuple[str, str, str, c.Body]] = [
        ("site", "s-1", "acme", site.CreateSite("https://example.com")),
        (
            "flow",
            "f-1",
            "acme",
            c.parse_body(
                "flow.create",
                {"name": "one", "nodes": [{"id": "1", "data": {"task_type": "wait"}}]},
            ),
        ),
        ("flow", "f-1", "acme", flow.DeleteFlow()),
        (
            "case",
            "k-1",
            "zeta",
            c.parse_body(
                "case.create",
                {
                    "site_id": "s-9",
                    "name": "k",
                    "steps": [{"action": {"type": "navigate", "path": "/"}}],
                },
            ),
        ),
    ]
    states: dict[tuple[str, str], Any] = {}
    out: list[Event] = []
    for i, (kind, aid, acct, body) in enumerate(plan):
        cmd = c.Command(f"d-{i}", kind, aid, T0 + i, acct, "tester", "r", "r", body)
        for event in aggregates.decide(states.get((kind, aid)), cmd):
            states[(kind, aid)] = aggregates.evolve(states.get((kind, aid)), event)
            out.append(event)
    return out


def test_definitions_are_projected_reloaded_and_read_per_account(tmp_path: Path) -> None:
    batch = fold_batch({}, as_messages(definition_events()), topic=TOPIC)
    with Store(tmp_path / "read.duckdb") as store:
        assert store.write(batch)
        assert store.load_states(list(batch.states)) == batch.states
        reads = Queries(store)
        found = reads.get_site("acme", "s-1")
        assert found is not None and found.site_url == "https://example.com"
        assert reads.get_site("zeta", "s-1") is None
        assert reads.get_flow("acme", "f-1") is None, "deleted"
        assert reads.list_flows("acme", limit=10, offset=0).count == 0
        assert reads.list_sites("acme", limit=10, offset=0).count == 1
        assert reads.list_cases("zeta", limit=10, offset=0, site_id="s-9").count == 1
        assert reads.list_cases("zeta", limit=10, offset=0, site_id="s-1").count == 0
        assert reads.list_cases("acme", limit=10, offset=0).count == 0


def test_verify_compares_files_whose_paths_have_quotes(tmp_path: Path) -> None:
    from projections.verify import compare

    folder = tmp_path / "it's here"
    folder.mkdir()
    batch = fold_batch({}, as_messages(created("p-1")), topic=TOPIC)
    for name in ("live.duckdb", "o'ther.duckdb"):
        with Store(folder / name) as store:
            store.write(batch)
    checks = compare(folder / "live.duckdb", folder / "o'ther.duckdb")
    assert checks and all(check.equal for check in checks)


def test_a_process_is_read_from_one_commit_even_when_a_batch_lands_between_its_queries(
    tmp_path: Path,
) -> None:
    """The row and its steps were two autocommit reads: a batch committed between them
    gave a Process no history ever had (status of one commit, steps of the next)."""
    from tests.unit.test_projections_fold import folded, lifecycle, messages

    events = lifecycle("p-1")
    with Store(tmp_path / "read.duckdb") as store:
        first = fold_batch({}, messages(events[:3]), topic=TOPIC)
        store.write(first)
        rest = fold_batch(dict(first.states), messages(events[3:], first=3), topic=TOPIC)
        real, calls = store.query, []

        def query(sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
            found = real(sql, params)
            calls.append(sql)
            if len(calls) == 1:
                store.write(rest)  # the projector commits between the two reads
            return found

        store.query = query  # type: ignore[method-assign]
        got = Queries(store).get_process("acme", "p-1")
        assert len(calls) == 2
        assert got == folded(events[:3])  # the first commit's Process, steps and all
        listed = Queries(store).list_processes("acme", limit=10, offset=0).items
        assert listed == [folded(events)]  # a later read sees the later commit
