"""Other read models, opened read-only: their positions, a Parquet copy, a comparison.

Apart from :mod:`projections.database`, which holds a node's own file (one writer
connection, per-thread readers): these functions and :class:`Comparison` open a file
for one look and close it, and DuckDB refuses them while another process writes that
file. ``verify`` and ``export`` use them (``swap`` through ``projections.verify``);
``projections.database`` re-exports them, so earlier imports keep working.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import duckdb

from projections.database_errors import failing
from projections.errors import StoreError

if TYPE_CHECKING:
    from projections.database import Row

POSITIONS_OF_TOPIC = 'SELECT "partition", next_offset FROM positions WHERE topic = ?'


def _literal(path: str | Path) -> str:
    """``path`` as an SQL string literal (ATTACH takes no parameters): quotes doubled."""
    return "'" + str(Path(path)).replace("'", "''") + "'"


def _read_only(path: str | Path) -> duckdb.DuckDBPyConnection:
    """``path`` opened read-only, which DuckDB refuses while a process writes it."""
    try:
        return duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise StoreError(f"cannot open {path} read-only: {exc}") from exc


def read_positions(path: str | Path, topic: str) -> dict[int, int]:
    """The next offset per partition of ``topic`` stored in the read model at ``path``;
    StoreError if it cannot be opened or has no positions table."""
    con = _read_only(path)
    try:
        with failing(f"cannot read the positions of {path}"):
            found = con.execute(POSITIONS_OF_TOPIC, [topic]).fetchall()
        return {int(p): int(o) for p, o in found}
    finally:
        con.close()


def copy_tables(db: str | Path, out_dir: Path) -> dict[str, Path]:
    """``out_dir/<table>.parquet`` for every table of ``db``, written by DuckDB itself
    (``COPY ... TO``); StoreError if ``db`` cannot be opened or read."""
    con = _read_only(db)
    written: dict[str, Path] = {}
    try:
        with failing(f"exporting {db} failed"):
            names = [
                r[0]
                for r in con.execute(
                    "SELECT table_name FROM information_schema.tables ORDER BY table_name"
                ).fetchall()
            ]
            for name in names:
                target = out_dir / f"{name}.parquet"
                literal = str(target).replace("'", "''")
                con.execute(f"COPY \"{name}\" TO '{literal}' (FORMAT parquet)")
                written[name] = target
    finally:
        con.close()
    return written


Side = Literal["lhs", "rhs"]


class Comparison:
    """Two read models attached read-only, as ``lhs`` and ``rhs``, to one in-memory
    connection, until :meth:`close`. StoreError when a file cannot be attached (for
    example, locked by a running node) or read."""

    _FAILED = "comparing the read models failed"

    def __init__(self, left: str | Path, right: str | Path) -> None:
        with failing("cannot open a read model to compare"):
            self._con = duckdb.connect()
            try:
                self._con.execute(f"ATTACH {_literal(left)} AS lhs (READ_ONLY)")
                self._con.execute(f"ATTACH {_literal(right)} AS rhs (READ_ONLY)")
            except BaseException:
                self._con.close()
                raise

    def tables(self, side: Side) -> set[str]:
        with failing(self._FAILED):
            found = self._con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_catalog = ?",
                [side],
            ).fetchall()
        return {r[0] for r in found}

    def checksum(self, side: Side, table: str) -> tuple[int, str]:
        """The row count and the sum of DuckDB's ``hash`` of every whole row (as 16 hex
        digits): equal for equal multisets of rows, whatever their order."""
        with failing(self._FAILED):
            count, total = self._con.execute(
                f'SELECT count(*), coalesce(sum(hash(t)::HUGEINT), 0) FROM {side}."{table}" t'
            ).fetchone() or (0, 0)
        return int(count), f"{int(total) & (2**64 - 1):016x}"

    def columns(self, side: Side, table: str) -> tuple[str, ...]:
        with failing(self._FAILED):
            found = self._con.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_catalog = ? AND table_name = ? ORDER BY ordinal_position",
                [side, table],
            ).fetchall()
        return tuple(r[0] for r in found)

    def differences(self, table: str, limit: int) -> tuple[list[Row], list[Row]]:
        """Up to ``limit`` rows of ``table`` only in ``lhs``, and only in ``rhs``
        (``EXCEPT ALL``: a duplicated row is a difference); StoreError when the two
        tables cannot be compared (their columns differ)."""
        diff = 'SELECT * FROM {a}."{n}" EXCEPT ALL SELECT * FROM {b}."{n}" ORDER BY ALL'
        with failing(f"table {table} cannot be compared"):
            only_l = self._con.execute(
                diff.format(a="lhs", b="rhs", n=table) + f" LIMIT {limit}"
            ).fetchall()
            only_r = self._con.execute(
                diff.format(a="rhs", b="lhs", n=table) + f" LIMIT {limit}"
            ).fetchall()
        return only_l, only_r

    def difference_counts(self, table: str) -> tuple[int, int]:
        """How many rows of ``table`` are only in ``lhs``, and only in ``rhs``
        (``EXCEPT ALL``, as :meth:`differences`, which shows at most ``limit``)."""
        count = 'SELECT count(*) FROM (SELECT * FROM {a}."{n}" EXCEPT ALL SELECT * FROM {b}."{n}")'
        with failing(f"table {table} cannot be compared"):
            (left,) = self._con.execute(count.format(a="lhs", b="rhs", n=table)).fetchone() or (0,)
            (right,) = self._con.execute(count.format(a="rhs", b="lhs", n=table)).fetchone() or (0,)
        return int(left), int(right)

    def close(self) -> None:
        self._con.close()
