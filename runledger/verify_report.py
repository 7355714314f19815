"""What ``runledger verify`` found, and how it is shown: :class:`Verification`, rendered.

Apart from :mod:`runledger.replay`, which does the work (a rebuild up to the live
model's positions, then the comparison): this module only turns its result into the
table and the differing rows an operator reads, plain values in and text out, with no
broker or file involved. ``runledger.replay`` re-exports these names.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TextIO

from projections.verify import TableCheck


@dataclass(frozen=True, slots=True)
class Verification:
    checks: list[TableCheck]
    compared: Path
    positions: dict[int, int]

    @property
    def ok(self) -> bool:
        return all(c.equal for c in self.checks)


def render_verification(v: Verification, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    width = max((len(c.name) for c in v.checks), default=5)
    out.write(f"{v.compared} against a rebuild up to {v.positions}\n")
    out.write(f"{'TABLE'.ljust(width)}  {'ROWS':>9} {'REBUILT':>9}  {'CHECKSUM':16}  RESULT\n")
    for c in v.checks:
        rows_l = "-" if c.left_rows is None else str(c.left_rows)
        rows_r = "-" if c.right_rows is None else str(c.right_rows)
        out.write(
            f"{c.name.ljust(width)}  {rows_l:>9} {rows_r:>9}  {c.left_checksum or '-':16}  "
            f"{'ok' if c.equal else 'DIFFERS (rebuilt ' + str(c.right_checksum) + ')'}\n"
        )
    for c in v.checks:
        if c.equal:
            continue
        if c.columns != c.right_columns:
            out.write(f"\n{c.name}: the columns differ\n")
            out.write(f"  live:    ({', '.join(c.columns)})\n")
            out.write(f"  rebuilt: ({', '.join(c.right_columns)})\n")
        elif c.columns:
            out.write(f"\n{c.name}: ({', '.join(c.columns)})\n")
            out.write(f"  {differing(c)}\n")
        for row in c.only_left:
            out.write(f"  live only:    {render_row(row)}\n")
        for row in c.only_right:
            out.write(f"  rebuilt only: {render_row(row)}\n")
    out.write("verify: " + ("the read model equals the log\n" if v.ok else "DIFFERENCES\n"))


def differing(c: TableCheck) -> str:
    """How many rows differ, and how many of them are shown: a table that differs in
    thousands of rows shows ``--limit`` of each side, and says so."""
    text = (
        f"{c.left_only_count:,} {'row' if c.left_only_count == 1 else 'rows'} only in the "
        f"live file, {c.right_only_count:,} only in the rebuild"
    )
    shown = len(c.only_left) + len(c.only_right)
    if shown < c.left_only_count + c.right_only_count:
        return f"{text}; the first {len(c.only_left):,} and {len(c.only_right):,} (--limit):"
    return text + ":"


def render_row(row: tuple[object, ...]) -> str:
    """A differing row as ``(value, ...)``: times in UTC ISO 8601 (the tables' TIMESTAMPs
    hold UTC), everything else as Python writes it (strings quoted, None)."""
    cells = [
        repr(v.isoformat(timespec="microseconds") + ("Z" if v.tzinfo is None else ""))
        if isinstance(v, datetime)
        else repr(v)
        for v in row
    ]
    return "(" + ", ".join(cells) + ")"
