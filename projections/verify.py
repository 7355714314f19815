"""Compare two read models table by table: a checksum per table and the differing rows.

Both files are attached read-only to one in-memory DuckDB connection
(``database.Comparison``, which runs the SQL); each table's rows are compared as
multisets (``EXCEPT ALL`` both ways), so row order and physical layout do not matter
and a duplicated row is a difference. The checksum is the row count and the sum of
DuckDB's ``hash`` of every whole row (order-independent).
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from projections.database import Comparison, Row, read_positions
from projections.errors import StoreError


@dataclass(frozen=True, slots=True)
class TableCheck:
    """One table in both files; ``only_left``/``only_right`` hold up to ``limit`` rows
    of the ``left_only_count``/``right_only_count`` rows that differ.
    ``columns``/``right_columns``: each side's columns; when they differ (a projection
    whose code changed) the rows are not compared, the table simply differs."""

    name: str
    left_rows: int | None
    right_rows: int | None
    left_checksum: str | None
    right_checksum: str | None
    only_left: tuple[Row, ...] = ()
    only_right: tuple[Row, ...] = ()
    columns: tuple[str, ...] = field(default=())
    right_columns: tuple[str, ...] = field(default=())
    left_only_count: int = 0  # all the rows only in the left file, shown or not
    right_only_count: int = 0

    @property
    def equal(self) -> bool:
        return (
            self.columns == self.right_columns
            and self.left_checksum == self.right_checksum
            and self.left_rows == self.right_rows
            and not self.only_left
            and not self.only_right
        )


def compare(left: str | Path, right: str | Path, *, limit: int = 20) -> list[TableCheck]:
    """Every table of either file, compared. StoreError when a file cannot be opened
    (for example, locked by a running node) or its tables cannot be compared."""
    with closing(Comparison(left, right)) as files:
        names_l, names_r = files.tables("lhs"), files.tables("rhs")
        out: list[TableCheck] = []
        for name in sorted(names_l | names_r):
            if name not in names_l or name not in names_r:
                rows_l, sum_l = files.checksum("lhs", name) if name in names_l else (None, None)
                rows_r, sum_r = files.checksum("rhs", name) if name in names_r else (None, None)
                out.append(TableCheck(name, rows_l, rows_r, sum_l, sum_r))
                continue
            rows_l, sum_l = files.checksum("lhs", name)
            rows_r, sum_r = files.checksum("rhs", name)
            cols, cols_r = files.columns("lhs", name), files.columns("rhs", name)
            only_l: list[Row] = []
            only_r: list[Row] = []
            counts = (0, 0)
            if cols == cols_r and (sum_l != sum_r or rows_l != rows_r):
                only_l, only_r = files.differences(name, limit)
                counts = files.difference_counts(name)
            out.append(
                TableCheck(
                    name,
                    rows_l,
                    rows_r,
                    sum_l,
                    sum_r,
                    tuple(only_l),
                    tuple(only_r),
                    cols,
                    cols_r,
                    *counts,
                )
            )
        return out


def positions(path: str | Path, topic: str) -> dict[int, int]:
    """The positions stored in a read model (the offsets it has applied up to);
    StoreError if it cannot be opened read-only or holds no positions."""
    return read_positions(path, topic)


def stored_topics(path: str | Path) -> set[str]:
    """The topics whose positions a read model stores: one ledger's events topic,
    which tells which ledger the file belongs to. StoreError if it cannot be read."""
    try:
        con = duckdb.connect(str(path), read_only=True)
        try:
            return {r[0] for r in con.execute("SELECT DISTINCT topic FROM positions").fetchall()}
        finally:
            con.close()
    except duckdb.Error as exc:
        raise StoreError(f"cannot read the positions of {path}: {exc}") from exc
