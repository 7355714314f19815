"""The operator tools against a real broker, decider, node and DuckDB files:
audit, as-of, tail, replay (bulk path == live Projector), verify, export and swap.

The tests share one stack and run in any order: those that stop the node (verify and
swap need DuckDB's single writer out of the way) start it again, and each reads what
it checks itself rather than from another test.
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow.parquet as pq
import pytest

from projections.projector import Projector
from projections.store import Store
from runledger.node import DB_FILE
from streams.topics import Topics
from tests.integration.conftest import Cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(stack: Any) -> httpx.Client:
    return stack.authenticated("acme")


def post(client: httpx.Client, path: str, body: Any = None, expect: int = 200) -> Any:
    r = client.post(path, json=body, params={"wait": "true"})
    assert r.status_code == expect, r.text
    return r.json()


@pytest.fixture(scope="module")
def pid(client: httpx.Client) -> str:
    """A process: created, started, progress 20 → 60, completed, then a late report."""
    p = post(client, "/process", {"type": "tools.test", "steps": [{"id": "s1"}]}, 201)["id"]
    post(client, f"/process/{p}/start")
    for value in (20, 40, 60):
        post(client, f"/process/{p}/progress", {"progress": value, "message": f"at {value}"})
        time.sleep(0.01)  # distinct occurred_at per report
    post(client, f"/process/{p}/complete", {"object_id": "obj-1"})
    post(client, f"/process/{p}/progress", {"progress": 99}, 409)
    for _ in range(5):  # some other traffic, another account too
        q = post(client, "/process", {"type": "tools.other"}, 201)["id"]
        post(client, f"/process/{q}/progress", {"progress": 5})
    return p


@contextmanager
def node_stopped(stack: Any) -> Iterator[None]:
    """The module's node stopped (as verify and swap want it), then started again, so
    the tests after this one find it serving whatever their order."""
    stack.kill("node", signal.SIGTERM)
    try:
        yield
    finally:
        stack.start("node")


def _audit_json(cli: Cli, pid: str) -> list[dict[str, Any]]:
    code, out, _ = cli("audit", pid, "--json")
    assert code == 0, out
    return [json.loads(line) for line in out.splitlines()]


def test_audit_shows_who_when_which_command_and_the_rejection(cli: Cli, pid: str) -> None:
    code, out, _ = cli("audit", pid)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith(f"process {pid}: 7 commands, 6 events")
    assert "WHEN (UTC)" in lines[1] and "REASON" in lines[1]
    body = "\n".join(lines[2:])
    for text in ("process.create", "#1 process.created", "#6 process.completed", "rejected"):
        assert text in body
    assert "invalid_state" in lines[-1] and "completed" in lines[-1]

    docs = _audit_json(cli, pid)
    assert [d["command"] for d in docs] == [
        "process.create",
        "process.start",
        *["process.progress"] * 3,
        "process.complete",
        "process.progress",
    ]
    assert {d["account"] for d in docs} == {"acme"} and all(d["actor"] for d in docs)
    assert docs[-1]["result"] == "rejected" and docs[-1]["reason_code"] == "invalid_state"
    assert [ev["data"]["progress"] for d in docs[2:5] for ev in d["events"]] == [20, 40, 60]


def test_audit_reads_events_and_outcomes_together_and_reports_its_progress(
    stack: Any, pid: str
) -> None:
    """Both topics' partitions count in one progress, which ends at 100 % of both."""
    from runledger import audit
    from schemas import default_codec
    from streams.progress import Progress

    seen: list[tuple[int, int, bool]] = []

    def on_progress(p: Progress, final: bool) -> None:
        seen.append((p.read, p.total, final))

    topics = Topics(stack.prefix)
    h = asyncio.run(
        audit.load(
            stack.bootstrap, topics, default_codec(), pid, ["process"], on_progress=on_progress
        )
    )
    assert len(h.events) == 6 and len(h.entries) == 7  # the rejected report's outcome too
    read, total, final = seen[-1]
    assert final and read == total
    # At least this process's 6 events and 7 outcomes, from two topics: the outcomes'
    # partition is counted apart from the events' (same partition number).
    assert total >= 13
    assert all(not f for _, _, f in seen[:-1]) and len(seen) >= 3


def test_audit_of_an_unknown_id_exits_1(cli: Cli) -> None:
    code, out, err = cli("audit", str(uuid.uuid4()))
    assert code == 1 and out == ""
    assert "no process, account" in err


def test_as_of_folds_the_events_up_to_a_time(cli: Cli, pid: str) -> None:
    docs = _audit_json(cli, pid)
    at_40 = docs[3]["events"][0]["occurred_at"]
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at_40 // 10**6))
    iso += f".{at_40 % 10**6:06d}Z"
    code, out, _ = cli("as-of", pid, "--at", iso, "--json")
    assert code == 0, out
    state = json.loads(out)
    assert state["progress"] == 40 and state["status"] == "running" and state["seq"] == 4
    code, out, _ = cli("as-of", pid, "--at", "2099-01-01T00:00:00Z")
    assert code == 0 and "completed" in out and "obj-1" in out

    code, _, err = cli("as-of", pid, "--at", "2001-01-01T00:00:00Z")
    assert code == 1 and "did not exist" in err
    code, _, err = cli("as-of", pid, "--at", "last tuesday")
    assert code == 2 and "ISO 8601" in err


def test_tail_prints_decoded_events_with_filters(cli: Cli, pid: str) -> None:
    code, out, _ = cli(
        "tail", "--from", "beginning", "--type", "process.progress", "--account", "acme",
        "--idle-timeout", "2",
    )  # fmt: skip
    assert code == 0
    docs = [json.loads(line) for line in out.splitlines()]
    assert len(docs) == 8 and {d["type"] for d in docs} == {"process.progress"}
    mine = [d["data"]["progress"] for d in docs if d["aggregate_id"] == pid]
    assert mine == [20, 40, 60]
    assert all({"partition", "offset", "event_id", "seq"} <= set(d) for d in docs)

    code, out, _ = cli("tail", "--from", "beginning", "--type", "process", "--max", "3")
    assert code == 0 and len(out.splitlines()) == 3

    code, out, _ = cli("tail", "--from", "2099-01-01T00:00:00Z", "--idle-timeout", "1")
    assert code == 0 and out == ""


def test_tail_starts_at_the_end_and_follows_new_events_live(cli: Cli, stack: Any) -> None:
    kind = f"tools.live.{uuid.uuid4().hex[:6]}"
    made: list[str] = []
    stop = threading.Event()

    def writer() -> None:  # keeps the ledger moving until tail has printed enough
        poster = stack.client("acme")
        while not stop.is_set() and len(made) < 300:
            made.append(post(poster, "/process", {"type": kind}, 201)["id"])
            time.sleep(0.05)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        code, out, _ = cli(
            "tail", "--type", "process.created", "--max", "3", "--idle-timeout", "20"
        )
    finally:
        stop.set()
        thread.join(30)
    assert code == 0
    docs = [json.loads(line) for line in out.splitlines()]
    assert len(docs) == 3  # printed live: the writer only adds events
    # From the end (the default): nothing that happened before tail started.
    assert all(d["data"]["process_type"] == kind for d in docs)
    assert {d["aggregate_id"] for d in docs} <= set(made)


def _tables(path: Path) -> dict[str, list[tuple[object, ...]]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        names = [
            r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        ]
        return {n: con.execute(f'SELECT * FROM "{n}" ORDER BY ALL').fetchall() for n in names}
    finally:
        con.close()


async def _live_rebuild(stack: Any, path: Path) -> None:
    """The live path: a Projector from offset 0 into ``path`` (as tests/integration/test_crash)."""
    store = Store(path).open()
    projector = Projector(store, bootstrap=stack.bootstrap, topics=Topics(stack.prefix))
    task = asyncio.create_task(projector.run())
    try:
        deadline = time.monotonic() + 60
        while not projector.applied:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        assert await projector.catch_up(60)
    finally:
        await projector.stop()
        await task
        store.close()


def test_replay_equals_the_live_projector(cli: Cli, stack: Any, tmp_path: Path, pid: str) -> None:
    live = tmp_path / "projector.duckdb"
    asyncio.run(_live_rebuild(stack, live))
    bulk = tmp_path / "bulk.duckdb"
    code, _, err = cli("replay", "--to", str(bulk))
    assert code == 0, err
    assert "100%" in err and "ev/s" in err and "replayed" in err
    expected, got = _tables(live), _tables(bulk)
    assert set(got) == set(expected)
    assert any(r[1] == pid for r in got["events"])
    for name in expected:
        assert got[name] == expected[name], f"table {name} differs"
    code, _, err = cli("replay", "--to", str(bulk))
    assert code == 2 and "exists" in err


def test_verify_passes_on_the_untouched_model_and_catches_a_changed_row(
    cli: Cli, stack: Any, pid: str
) -> None:
    code, _, err = cli("verify")  # the node holds the file: one line, no DuckDB pid or URL
    live = stack.data_dir / DB_FILE
    assert code == 2 and err.strip() == (
        f"runledger: the node holds {live}: stop it first, or pass --copy to verify a copy"
    ), err
    code, out, _ = cli("verify", "--copy")
    assert code == 0, out

    with node_stopped(stack):
        code, out, _ = cli("verify")
        assert code == 0, out
        assert "processes" in out and out.rstrip().endswith("the read model equals the log")

        db = str(stack.data_dir / DB_FILE)
        with duckdb.connect(db) as con:
            found = con.execute("SELECT progress FROM processes WHERE id = ?", [pid]).fetchone()
            assert found is not None
            con.execute("UPDATE processes SET progress = 12.5 WHERE id = ?", [pid])
        try:
            code, out, _ = cli("verify")
            assert code == 1
            assert "DIFFERS" in out and "live only:" in out and "12.5" in out
            differing = [line.split()[0] for line in out.splitlines() if "DIFFERS" in line]
            assert differing == ["processes"]
        finally:  # the row as the log says, for the tests after this one
            with duckdb.connect(db) as con:
                con.execute("UPDATE processes SET progress = ? WHERE id = ?", [found[0], pid])


def test_export_writes_events_and_every_table(cli: Cli, stack: Any, tmp_path: Path) -> None:
    out_dir = tmp_path / "export"
    code, out, err = cli("export", "--format", "parquet", "--out", str(out_dir))
    assert code == 0, err
    events = pq.read_table(out_dir / "ledger_events.parquet")
    replayed = tmp_path / "replayed.duckdb"
    code, _, err = cli("replay", "--to", str(replayed))
    assert code == 0, err
    tables = _tables(replayed)
    assert events.num_rows >= len(tables["events"]) > 0
    assert {"event_id", "type", "occurred_at", "data", "partition", "offset"} <= set(
        events.column_names
    )
    for name, rows in tables.items():
        assert pq.read_table(out_dir / f"{name}.parquet").num_rows == len(rows), name


def test_swap_puts_a_rebuilt_file_in_place(
    cli: Cli, stack: Any, client: httpx.Client, pid: str
) -> None:
    code, _, err = cli("swap", "--from", str(stack.data_dir / "missing.duckdb"))
    assert code == 2 and "does not exist" in err
    fresh = stack.data_dir / "fresh.duckdb"
    with node_stopped(stack):
        code, _, err = cli("replay", "--to", str(fresh))
        assert code == 0, err
        code, out, err = cli("swap", "--from", str(fresh))
        assert code == 0, err
        backups = list(stack.data_dir.glob(f"{DB_FILE}.*.bak"))
        assert len(backups) == 1 and not fresh.exists()
        code, out, _ = cli("verify")
        assert code == 0, out
    p = client.get(f"/process/{pid}", params={"wait": "true"})
    assert p.status_code == 200, p.text
    assert p.json()["status"] == "completed" and p.json()["object_id"] == "obj-1"
