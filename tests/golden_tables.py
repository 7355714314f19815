"""Every table of a read model as JSON: what ``scripts/record_golden.py`` records in
``tests/golden/*.expected.json`` and what ``tests/unit/test_golden.py`` compares with."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import uuid
from pathlib import Path
from typing import Any

import duckdb


def encode_value(value: Any) -> Any:
    """A DuckDB value as JSON (tagged where JSON has no such type)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else {"float": repr(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"bytes": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, list | tuple):
        return [encode_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode_value(v) for k, v in value.items()}
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return {type(value).__name__: value.isoformat()}
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return {type(value).__name__: str(value)}
    raise TypeError(f"no JSON form for {type(value).__name__}: {value!r}")


def dump_tables(path: Path) -> dict[str, Any]:
    """Every table of the DuckDB file: columns and JSON-encoded rows, sorted."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        names = sorted(
            r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        )
        out: dict[str, Any] = {}
        for n in names:
            cur = con.execute(f'SELECT * FROM "{n}"')
            columns = [d[0] for d in cur.description]
            rows = [encode_value(list(r)) for r in cur.fetchall()]
            rows.sort(key=lambda r: json.dumps(r, sort_keys=True))
            out[n] = {"columns": columns, "rows": rows}
        return out
    finally:
        con.close()
