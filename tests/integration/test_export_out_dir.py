"""``runledger export --out DIR``: DIR holds exactly one export. A new export replaces
an earlier one whole (no stale file of it stays), a failed one leaves the earlier one as
it was, and a folder holding files the tool did not write is refused, untouched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from projections.export import MANIFEST
from tests.integration.conftest import Cli

pytestmark = pytest.mark.integration


def _new_process(stack: Any) -> None:
    client = stack.authenticated("acme")
    r = client.post("/process", json={"type": "export.test"}, params={"wait": "true"})
    assert r.status_code == 201, r.text
    r = client.post(f"/process/{r.json()['id']}/start", params={"wait": "true"})
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def ledger(stack: Any) -> None:
    """Something in the log to export: a process created and started."""
    _new_process(stack)


def _export(cli: Cli, out: Path, *extra: str) -> dict[str, Path]:
    code, stdout, err = cli("export", "--format", "parquet", "--out", str(out), *extra)
    assert code == 0, err
    return {name: Path(path) for name, path in (line.split("\t") for line in stdout.splitlines())}


def _listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def _siblings(folder: Path) -> set[str]:
    return {p.name for p in folder.parent.iterdir()}


def test_a_new_export_replaces_the_earlier_one_whole(
    cli: Cli, ledger: None, tmp_path: Path
) -> None:
    model = tmp_path / "model.duckdb"
    code, _, err = cli("replay", "--to", str(model))
    assert code == 0, err
    con = duckdb.connect(str(model))
    con.execute("CREATE TABLE retired AS SELECT 1 AS x")  # a table the next export lacks
    con.close()
    out = tmp_path / "export"

    first = _export(cli, out, "--db", str(model))
    assert (out / "retired.parquet").is_file()
    assert set(_listing(out)) == {p.name for p in first.values()} | {MANIFEST}

    second = _export(cli, out)
    assert "retired" not in second
    assert not (out / "retired.parquet").exists()
    assert set(_listing(out)) == {p.name for p in second.values()} | {MANIFEST}
    assert all(p.parent == out for p in second.values())
    assert _siblings(out) == {"model.duckdb", "export"}


def test_an_empty_folder_takes_an_export(cli: Cli, ledger: None, tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    written = _export(cli, out)
    assert "ledger_events" in written
    assert set(_listing(out)) == {p.name for p in written.values()} | {MANIFEST}


def test_a_folder_with_other_files_is_refused_untouched(
    cli: Cli, ledger: None, tmp_path: Path
) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("the operator's own file\n")
    (out / "processes.parquet").write_bytes(b"not written by runledger")
    before = _listing(out)

    code, stdout, err = cli("export", "--format", "parquet", "--out", str(out))
    assert code == 2
    assert stdout == ""
    assert "notes.txt" in err and "processes.parquet" in err
    assert len(err.strip().splitlines()) == 1, err
    assert _listing(out) == before
    assert _siblings(out) == {"mine"}


def test_a_failed_export_leaves_the_earlier_one_as_it_was(
    cli: Cli, stack: Any, ledger: None, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    _export(cli, out)
    before = _listing(out)
    _new_process(stack)  # the log grows: an export now would write other events
    broken = tmp_path / "broken.duckdb"
    broken.write_bytes(b"this is not a DuckDB file")

    code, stdout, err = cli("export", "--format", "parquet", "--out", str(out), "--db", str(broken))
    assert code == 2, err
    assert stdout == ""
    assert _listing(out) == before
    assert _siblings(out) == {"export", "broken.duckdb"}
