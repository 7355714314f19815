"""``runledger export``: the events of the log and every table of a read model as Parquet.

The events come decoded from the log; the tables from a fresh replay
(:func:`runledger.replay.rebuild`) or from ``--db``. Both stand at one point of the
log (the ends when the export starts, or the positions ``--db`` has applied), so
``ledger_events`` and the tables hold the same events while commands flow. The files
are built beside ``--out`` and renamed into place: ``--out`` holds one export
(:func:`projections.export.staged_export`).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from projections.errors import StoreError
from projections.export import EventWriter, ExportFolderError, export_tables, staged_export
from projections.replay_parallel import check_range, topic_ends
from projections.verify import positions, stored_topics
from runledger.progress import ProgressLine
from runledger.replay import ToolError, rebuild, require_log, require_writable_folder
from schemas import default_codec
from streams.consumer import ConsumerError, Delivery, read_to_end
from streams.serde import decode_event
from streams.topics import Topics

EVENTS_FILE = "ledger_events.parquet"


async def _export_events(
    bootstrap: str, topics: Topics, target: Path, until: dict[int, int]
) -> int:
    codec = default_codec()
    skipped = 0
    with EventWriter(target) as writer:
        batches = read_to_end(bootstrap, topics.events, until=until, client_id="runledger-export")
        async for batch in batches:
            rows = []
            for r in batch:
                try:
                    if r.value is None:
                        raise ValueError("no value")
                    rows.append(
                        Delivery(r.partition, r.offset, r.timestamp, decode_event(codec, r.value))
                    )
                except Exception:  # the projector dead-letters these too
                    skipped += 1
            writer.write(rows)
        count = writer.rows
    if skipped:
        print(f"runledger export: skipped {skipped} undecodable messages", file=sys.stderr)
    return count


def _export_point(bootstrap: str, topics: Topics, db: Path | None) -> dict[int, int]:
    """Where the export stands in the log: the positions ``db`` has applied, else the
    ends. StoreError when ``db`` is a read model of another ledger (positions of
    another topic, or past the log's end: reading up to them would never end)."""
    ends = asyncio.run(topic_ends(bootstrap, topics.events))
    if db is None:
        return ends
    applied = positions(db, topics.events)
    others = stored_topics(db) - {topics.events} if not applied else set()
    if others:
        raise StoreError(
            f"{db} is a read model of {', '.join(sorted(others))}, not of {topics.events}: "
            "check RUNLEDGER_TOPIC_PREFIX"
        )
    return check_range({}, ends, applied)


def run_export(bootstrap: str, topics: Topics, out: Path, db: Path | None) -> dict[str, Path]:
    """Export the events and every table (of ``db``, else of a fresh replay) into
    ``out``, which afterwards holds this export only (see projections.export). ToolError
    when the log, ``db`` or ``out`` cannot serve; ``out`` is then as it was.

    Both halves stand at one point of the log, so that ``ledger_events`` and the tables
    hold the same events while commands flow: the ends of the log when the export
    starts (the replay goes up to them too), or the positions ``db`` has applied."""
    require_writable_folder(out, "export --out")
    require_log(bootstrap, topics, "export")
    try:
        until = _export_point(bootstrap, topics, db)
        with staged_export(out) as folder:
            asyncio.run(_export_events(bootstrap, topics, folder / EVENTS_FILE, until))
            if db is not None:
                tables = export_tables(db, folder)
            else:
                with tempfile.TemporaryDirectory(prefix="runledger-export-") as scratch:
                    fresh = Path(scratch) / "replayed.duckdb"
                    rebuild(bootstrap, topics, fresh, until=until, on_progress=ProgressLine())
                    tables = export_tables(fresh, folder)
    except (StoreError, ExportFolderError, ConsumerError) as exc:
        raise ToolError(str(exc)) from exc
    written = {"ledger_events": EVENTS_FILE, **{n: p.name for n, p in tables.items()}}
    return {name: out / file for name, file in written.items()}
