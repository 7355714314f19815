"""Compare two read models table by table: a checksum per table and the differing rows.

Both files are attached read-only to one in-memory DuckDB connection; each table's
rows are compared as multisets (``EXCEPT ALL`` both ways), so row order and physical
layout do not matter and a duplicated row is a difference. The checksum is the row
count and the sum of DuckDB's ``hash`` of every whole row (order-independent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from projections.errors import StoreError

Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class TableCheck:
    """One table in both files; ``only_left``/``only_right`` hold up to ``limit`` rows."""

    name: str
    left_rows: int | None
    right_rows: int | None
    left_checksum: str | None
    right_checksum: str | None
    only_left: tuple[Row, ...] = ()
    only_right: tuple[Row, ...] = ()
    columns: tuple[str, ...] = field(default=())

    @property
    def equal(self) -> bool:
        return (
            self.left_checksum == self.right_checksum
            and self.left_rows == self.right_rows
            and not self.only_left
            and not self.only_right
        )


def _tables(con: duckdb.DuckDBPyConnection, catalog: str) -> set[str]:
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = ?", [catalog]
    ).fetchall()
    return {r[0] for r in rows}


def _checksum(con: duckdb.DuckDBPyConnection, ref: str) -> tuple[int, str]:
    count, total = con.execute(
        f"SELECT count(*), coalesce(sum(hash(t)::HUGEINT), 0) FROM {ref} t"
    ).fetchone() or (0, 0)
    return int(count), f"{int(total) & (2**64 - 1):016x}"


def compare(left: str | Path, right: str | Path, *, limit: int = 20) -> list[TableCheck]:
    """Every table of either file, compared. StoreError when a file cannot be opened
    (for example, locked by a running node)."""
    con = duckdb.connect()
    try:
        try:
            con.execute(f"ATTACH '{Path(left)}' AS lhs (READ_ONLY)")
            con.execute(f"ATTACH '{Path(right)}' AS rhs (READ_ONLY)")
        except duckdb.Error as exc:
            raise StoreError(f"cannot open a read model to compare: {exc}") from exc
        names_l, names_r = _tables(con, "lhs"), _tables(con, "rhs")
        out: list[TableCheck] = []
        for name in sorted(names_l | names_r):
            if name not in names_l or name not in names_r:
                rows_l, sum_l = _checksum(con, f'lhs."{name}"') if name in names_l else (None, None)
                rows_r, sum_r = _checksum(con, f'rhs."{name}"') if name in names_r else (None, None)
                out.append(TableCheck(name, rows_l, rows_r, sum_l, sum_r))
                continue
            rows_l, sum_l = _checksum(con, f'lhs."{name}"')
            rows_r, sum_r = _checksum(con, f'rhs."{name}"')
            cols = tuple(
                r[0]
                for r in con.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_catalog = 'lhs' AND table_name = ? ORDER BY ordinal_position",
                    [name],
                ).fetchall()
            )
            only_l: list[Row] = []
            only_r: list[Row] = []
            if sum_l != sum_r or rows_l != rows_r:
                diff = 'SELECT * FROM {a}."{n}" EXCEPT ALL SELECT * FROM {b}."{n}" ORDER BY ALL'
                try:
                    only_l = con.execute(
                        diff.format(a="lhs", b="rhs", n=name) + f" LIMIT {limit}"
                    ).fetchall()
                    only_r = con.execute(
                        diff.format(a="rhs", b="lhs", n=name) + f" LIMIT {limit}"
                    ).fetchall()
                except duckdb.Error as exc:  # e.g. the columns differ
                    raise StoreError(f"table {name} cannot be compared: {exc}") from exc
            out.append(
                TableCheck(name, rows_l, rows_r, sum_l, sum_r, tuple(only_l), tuple(only_r), cols)
            )
        return out
    finally:
        con.close()


def positions(path: str | Path, topic: str) -> dict[int, int]:
    """The positions stored in a read model (the offsets it has applied up to)."""
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise StoreError(f"cannot open {path} read-only: {exc}") from exc
    try:
        found = con.execute(
            'SELECT "partition", next_offset FROM positions WHERE topic = ?', [topic]
        ).fetchall()
        return {int(p): int(o) for p, o in found}
    finally:
        con.close()
