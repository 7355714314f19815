"""What ``runledger verify`` prints for a table that differs in many rows: a bounded
list (``--limit`` of each side) and how many rows differ in all, so an operator tells
a stray row from a table rebuilt differently. Two small DuckDB files, no broker."""

from __future__ import annotations

import io
from pathlib import Path

import duckdb

from projections.verify import compare
from runledger.verify_report import Verification, render_verification


def _model(path: Path, changed: int) -> None:
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE processes (id VARCHAR, progress DOUBLE)")
    con.execute("INSERT INTO processes SELECT 'p-' || i, 100.0 FROM range(3000) r(i)")
    con.execute(
        f"UPDATE processes SET progress = 13.0 WHERE id IN "
        f"(SELECT id FROM processes ORDER BY id LIMIT {changed})"
    )
    con.close()


def test_thousands_of_differing_rows_show_a_bounded_list_and_their_count(tmp_path: Path) -> None:
    _model(tmp_path / "live.duckdb", changed=2500)
    _model(tmp_path / "rebuilt.duckdb", changed=0)
    checks = compare(tmp_path / "live.duckdb", tmp_path / "rebuilt.duckdb", limit=5)
    out = io.StringIO()
    render_verification(Verification(checks, tmp_path / "live.duckdb", {0: 1}), out)
    text = out.getvalue()

    assert (
        "2,500 rows only in the live file, 2,500 only in the rebuild; the first 5 and 5 (--limit):"
        in text
    )
    assert text.count("live only:") == 5 and text.count("rebuilt only:") == 5
    assert len(text.splitlines()) < 20
    assert text.rstrip().endswith("DIFFERENCES")


def test_a_few_differing_rows_are_all_shown_with_their_count(tmp_path: Path) -> None:
    _model(tmp_path / "live.duckdb", changed=1)
    _model(tmp_path / "rebuilt.duckdb", changed=0)
    checks = compare(tmp_path / "live.duckdb", tmp_path / "rebuilt.duckdb", limit=20)
    out = io.StringIO()
    render_verification(Verification(checks, tmp_path / "live.duckdb", {0: 1}), out)
    assert "  1 row only in the live file, 1 only in the rebuild:\n" in out.getvalue()
    assert out.getvalue().count("live only:") == 1
