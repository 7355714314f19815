"""Ctrl-C while DuckDB runs a statement of ``Database.open`` reaches the tools as
KeyboardInterrupt (their "interrupted" line and exit 130), not as DuckDB's
``RuntimeError: Query interrupted`` with a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from projections import database
from projections.database import Database


class _Interrupted:
    """A connection whose statements are interrupted, as DuckDB reports a SIGINT."""

    def execute(self, statement: str) -> None:
        raise RuntimeError("Query interrupted")


def test_an_interrupted_open_is_a_keyboard_interrupt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database.duckdb, "connect", lambda path: _Interrupted())
    db = Database(tmp_path / "x.duckdb", checkpoint_mib=16)
    with pytest.raises(KeyboardInterrupt):
        db.open(["CREATE TABLE t (i INTEGER)"])


def test_another_runtime_error_is_not_taken_for_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class _Broken:
        def execute(self, statement: str) -> None:
            raise RuntimeError("something else")

    monkeypatch.setattr(database.duckdb, "connect", lambda path: _Broken())
    with pytest.raises(RuntimeError, match="something else"):
        Database(tmp_path / "x.duckdb", checkpoint_mib=16).open(["SELECT 1"])
