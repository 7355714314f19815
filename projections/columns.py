"""The shape every row builder returns: one list per column, in the table's order.

Column-oriented because the store inserts a batch as one Arrow table per table. The
builders live by noun in ``rows`` (processes, accounts, definitions), ``event_rows``
and ``run_rows``; this module holds what they share.
"""

from __future__ import annotations

import json
from typing import Any

from projections import tables

Columns = dict[str, list[Any]]

# JSON as the tables keep it: compact, non-ASCII as is (payloads, nested run states).
compact_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def columns_of(table: tables.Table, rows: list[tuple[Any, ...]]) -> Columns:
    """``rows`` (tuples in ``table``'s column order) as the columns of ``table``."""
    names = table.names
    if not rows:
        return {name: [] for name in names}
    return {name: list(values) for name, values in zip(names, zip(*rows, strict=True), strict=True)}
