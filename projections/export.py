"""Parquet exports: every table of a read model, and events decoded from the log.

Tables are written by DuckDB itself (``COPY ... TO (FORMAT parquet)``, in
``database.copy_tables``) from a file opened read-only. Events are flattened to one
row each: the envelope columns, where the event was read (partition, offset) and
``data``, the payload as a JSON object.

An export folder holds exactly one export: :func:`staged_export` builds it in a new
folder beside it and renames that into place, so a stale file of an earlier export
never mixes with a new one, and a failed export leaves the earlier one as it was. A
manifest (``MANIFEST``) lists the files an export wrote; those, and only those, are
what a later export may remove. A folder holding anything else is refused. A staging
folder left by an export that was killed (SIGKILL, power loss) is removed by the next
export into the same folder, once the process that made it is gone.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from projections.database import copy_tables
from projections.errors import ProjectionError
from streams.consumer import Delivery, event_document
from streams.domain.events import ENVELOPE_FIELDS

MANIFEST = "runledger-export.json"
WRITTEN_BY = "runledger export"

log = logging.getLogger(__name__)


class ExportFolderError(ProjectionError):
    """The folder holds files an export did not write: choose a new or empty folder."""


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


# -- the export folder ---------------------------------------------------------------------


@contextlib.contextmanager
def staged_export(out: str | Path) -> Iterator[Path]:
    """A new, empty folder beside ``out`` to write one export into. On a normal exit it
    becomes ``out``, with a manifest of its files; an earlier export there is removed
    (only the files its manifest lists). On an error it is removed and ``out`` is left
    as it was. ExportFolderError, before anything is written, when ``out`` holds files
    no export wrote; OSError when the folder beside it cannot be made or renamed."""
    target = Path(out).resolve()
    _not_around_cwd(target)
    _none_left_aside(target)
    earlier_export(target)
    remove_abandoned_staging(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".{target.name}.export-{os.getpid()}-{secrets.token_hex(4)}")
    staged.mkdir()
    try:
        yield staged
        files = sorted(p.name for p in staged.iterdir())
        manifest = {"written_by": WRITTEN_BY, "files": files}
        (staged / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        _swap_in(staged, target)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)  # a folder this call made, all of it ours
        raise


def remove_abandoned_staging(target: Path) -> list[Path]:
    """Remove the staging folders of exports into ``target`` whose process is gone, and
    return them. An export removes its own staging folder on any error it lives to see;
    one killed outright (SIGKILL, OOM killer, power loss) leaves it beside ``target``
    for good, a hidden copy of a half-written export.

    Only folders named exactly as :func:`staged_export` names them for ``target``
    (``.<name>.export-<pid>-<8 hex>``) are candidates, and only when no process ``pid``
    exists: a live pid may be an export running now (or, after pid reuse, an unrelated
    process; the folder is then kept until that pid is gone too). Pids are checked in
    this pid namespace: exporters in other containers sharing the folder are not seen.
    A folder that cannot be removed is logged and left; it does not stop the export."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.export-([0-9]+)-[0-9a-f]{{8}}")
    try:
        entries = sorted(target.parent.iterdir())
    except FileNotFoundError:
        return []
    removed = []
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or entry.is_symlink() or not entry.is_dir():
            continue
        pid = int(match.group(1))
        if _process_exists(pid):
            continue
        try:
            shutil.rmtree(entry)
        except OSError as exc:
            log.warning("could not remove %s, left by export process %d: %s", entry, pid, exc)
            continue
        log.warning("removed %s, left by export process %d, which is gone", entry, pid)
        removed.append(entry)
    return removed


def _process_exists(pid: int) -> bool:
    """Whether a process ``pid`` exists (signal 0 is checked, not sent). Anything but
    a clear "no such process" counts as existing: a pid of another user's process
    (PermissionError), and pids no export has (0 and below would address process
    groups; too large for the kernel)."""
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):
        return True
    return True


def _not_around_cwd(target: Path) -> None:
    """ExportFolderError when ``target`` is the working folder or holds it: the swap
    would move it away, leaving the shell that ran the export in a removed folder
    that looks empty (``--out .``)."""
    cwd = Path.cwd().resolve()
    if target == cwd or target in cwd.parents:
        raise ExportFolderError(
            f"cannot export into {target}: it is the current folder or holds it, and an "
            "export replaces its folder whole; run it from elsewhere (cd ..; --out NAME)"
        )


def _none_left_aside(target: Path) -> None:
    """ExportFolderError naming the folder an interrupted swap moved an earlier export
    to (a crash between its two renames): only the operator knows whether it is still
    wanted, so nothing goes on until it is moved back or removed."""
    aside = sorted(target.parent.glob(f".{glob.escape(target.name)}.retired-*"))
    if aside:
        raise ExportFolderError(
            f"an earlier export into {target} was interrupted: the export it replaced is in "
            f"{aside[0]}; move it back to {target.name} (or remove it), then export again"
        )


def earlier_export(folder: Path) -> list[str]:
    """The files of the export in ``folder`` (its manifest last); none for a missing or
    empty folder. ExportFolderError when it holds anything its manifest does not list."""
    if not folder.exists():
        return []
    if not folder.is_dir():
        raise ExportFolderError(f"{folder} is a file: name a folder for the export")
    files, foreign = _contents(folder)
    if foreign:
        raise _refusal(folder, foreign)
    return files


def _contents(folder: Path) -> tuple[list[str], list[str]]:
    """(the files of an earlier export, manifest last; every other name), of ``folder``."""
    present = {p.name for p in folder.iterdir()}
    listed = _manifest_files(folder) if MANIFEST in present else set()
    # An export writes plain files: a listed name that is a folder is not one of them
    # (removing it would fail half-way through the swap).
    listed = {n for n in listed if (folder / n).is_symlink() or not (folder / n).is_dir()}
    foreign = sorted(present - listed - {MANIFEST})
    files = sorted(present & listed) + ([MANIFEST] if MANIFEST in present else [])
    return files, foreign


def _refusal(folder: Path, foreign: list[str]) -> ExportFolderError:
    shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
    return ExportFolderError(
        f"cannot export into {folder}: it holds files runledger export did not write "
        f"({shown}); name a new or empty folder, or an earlier export's"
    )


def _manifest_files(folder: Path) -> set[str]:
    """The plain file names an earlier export's manifest lists; none when it is not one
    (so every file counts as foreign and nothing is removed)."""
    try:
        doc = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return set()
    if not isinstance(doc, dict) or doc.get("written_by") != WRITTEN_BY:
        return set()
    names = doc.get("files")
    if not isinstance(names, list):
        return set()
    return {n for n in names if isinstance(n, str) and n == Path(n).name and n not in ("", "..")}


def _swap_in(staged: Path, target: Path) -> None:
    """``staged`` becomes ``target``. An empty ``target`` is replaced in one rename; an
    earlier export is moved aside first, checked again there (a file may have been added
    since the export began; then it is moved back and the new export dropped), and its
    files removed once the new one is in place."""
    if not target.exists():
        os.rename(staged, target)
        return
    shutil.copymode(target, staged)  # keep the folder's permissions
    if not any(target.iterdir()):
        os.replace(staged, target)  # rename(2) replaces an empty folder
        return
    retired = target.with_name(f".{target.name}.retired-{staged.name.rsplit('-', 1)[-1]}")
    os.rename(target, retired)
    try:
        files, foreign = _contents(retired)
        if foreign:
            raise _refusal(target, foreign)
        os.rename(staged, target)
    except BaseException:  # a refusal, Ctrl-C, a failed rename: the earlier export returns
        if not target.exists():
            os.rename(retired, target)
        raise
    for name in files:
        (retired / name).unlink(missing_ok=True)
    retired.rmdir()
