"""Parquet exports: every table of a read model, and events decoded from the log.

Tables are written by DuckDB itself (``COPY ... TO (FORMAT parquet)``, in
``database.copy_tables``) from a file opened read-only. Events are flattened to one
row each: the envelope columns, where the event was read (partition, offset) and
``data``, the payload as a JSON object.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from projections.database import copy_tables
from streams.consumer import Delivery, event_document
from streams.domain.events import ENVELOPE_FIELDS

EVENT_SCHEMA = pa.schema(
    [
        *(
            pa.field(n, pa.int64() if n in ("seq", "occurred_at") else pa.string())
            for n in ENVELOPE_FIELDS
        ),
        pa.field("partition", pa.int32()),
        pa.field("offset", pa.int64()),
        pa.field("data", pa.string()),
    ]
)


def export_tables(db: str | Path, out: str | Path) -> dict[str, Path]:
    """``OUT/<table>.parquet`` for every table of ``db``; StoreError if it cannot be read."""
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    return copy_tables(db, out_dir)


class EventWriter:
    """Appends decoded events to one Parquet file in row groups; use as a context manager."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(str(self.path), EVENT_SCHEMA)
        self.rows = 0

    def write(self, deliveries: Iterable[Delivery]) -> None:
        cols: dict[str, list[object]] = {f.name: [] for f in EVENT_SCHEMA}
        for d in deliveries:
            doc = event_document(d.event)
            for name in ENVELOPE_FIELDS:
                cols[name].append(doc[name])
            cols["partition"].append(d.partition)
            cols["offset"].append(d.offset)
            cols["data"].append(json.dumps(doc["data"], separators=(",", ":"), ensure_ascii=False))
        if cols["offset"]:
            self._writer.write_table(pa.Table.from_pydict(cols, schema=EVENT_SCHEMA))
            self.rows += len(cols["offset"])

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
