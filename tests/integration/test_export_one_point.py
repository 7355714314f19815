"""``runledger export`` while commands flow: ``ledger_events.parquet`` and the tables
stand at one point of the log. The export reads the events first and builds the tables
after; commands sent in between (here: by the test, at that very moment) must be in
neither, or an analysis joining the two finds events without states and states
without events. With ``--db``, the events are those the file has applied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

import runledger.export
from tests.integration.conftest import Cli

pytestmark = pytest.mark.integration


def _new_processes(stack: Any, count: int) -> None:
    client = stack.authenticated("acme")
    for _ in range(count):
        r = client.post("/process", json={"type": "export.point"}, params={"wait": "true"})
        assert r.status_code == 201, r.text


def _rows(sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _event_ids(parquet: Path) -> set[str]:
    return {r[0] for r in _rows(f"SELECT event_id FROM '{parquet}'")}


@pytest.fixture
def commands_between_the_halves(stack: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands land in the log right after the export has read its events."""
    read_events = runledger.export._export_events

    async def then_more(*args: Any) -> int:
        count = await read_events(*args)
        _new_processes(stack, 3)
        return count

    monkeypatch.setattr(runledger.export, "_export_events", then_more)


def test_the_events_and_the_tables_of_an_export_are_the_same_events(
    cli: Cli, stack: Any, tmp_path: Path, commands_between_the_halves: None
) -> None:
    _new_processes(stack, 2)
    code, _, err = cli("export", "--format", "parquet", "--out", str(tmp_path / "out"))
    assert code == 0, err
    logged = _event_ids(tmp_path / "out" / "ledger_events.parquet")
    assert logged  # the two processes made before, at least
    assert _event_ids(tmp_path / "out" / "events.parquet") == logged
    ends = _rows(
        "SELECT partition, max(\"offset\") FROM '{}' GROUP BY ALL".format(
            tmp_path / "out" / "ledger_events.parquet"
        )
    )
    stored = dict(_rows(f"SELECT partition, next_offset FROM '{tmp_path}/out/positions.parquet'"))
    assert all(last < stored[partition] for partition, last in ends)


def test_an_export_of_a_db_has_the_events_that_file_applied(
    cli: Cli, stack: Any, tmp_path: Path
) -> None:
    _new_processes(stack, 2)
    model = tmp_path / "model.duckdb"
    code, _, err = cli("replay", "--to", str(model))
    assert code == 0, err
    _new_processes(stack, 3)  # in the log, not in the file
    code, _, err = cli("export", "--out", str(tmp_path / "out"), "--db", str(model))
    assert code == 0, err
    con = duckdb.connect(str(model), read_only=True)
    applied = {r[0] for r in con.execute("SELECT event_id FROM events").fetchall()}
    con.close()
    assert _event_ids(tmp_path / "out" / "ledger_events.parquet") == applied
