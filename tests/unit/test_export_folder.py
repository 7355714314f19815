"""``staged_export``'s folder swap, without a broker: what it refuses and what a swap
leaves behind (see also tests/integration/test_export_out_dir.py)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from projections.export import (
    MANIFEST,
    WRITTEN_BY,
    ExportFolderError,
    remove_abandoned_staging,
    staged_export,
)


def _export(out: str | Path, *names: str) -> None:
    with staged_export(out) as folder:
        for name in names:
            (folder / name).write_text(name)


def test_the_current_folder_is_refused_not_swapped_away(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The swap would move the shell's working folder away: it would be left in a
    # removed folder that looks empty, the export beside it under the same name.
    out = tmp_path / "export"
    _export(out, "a.parquet")
    monkeypatch.chdir(out)
    with pytest.raises(ExportFolderError, match="current folder"):
        _export(".", "b.parquet")
    assert Path.cwd().exists()
    assert sorted(p.name for p in out.iterdir()) == ["a.parquet", MANIFEST]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_an_empty_current_folder_is_refused_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    monkeypatch.chdir(out)
    with pytest.raises(ExportFolderError, match="current folder"):
        _export(".", "b.parquet")
    assert Path.cwd().exists() and list(out.iterdir()) == []


def test_a_folder_a_manifest_lists_is_foreign_and_nothing_is_swapped(tmp_path: Path) -> None:
    # An export writes plain files; a folder the manifest names (edited by hand, or
    # made by someone after the export) is not removed half-way through a swap.
    out = tmp_path / "export"
    _export(out, "a.parquet")
    (out / "notes").mkdir()
    (out / "notes" / "mine.txt").write_text("kept")
    manifest = {"written_by": WRITTEN_BY, "files": ["a.parquet", "notes"]}
    (out / MANIFEST).write_text(json.dumps(manifest))

    with pytest.raises(ExportFolderError, match="notes"):
        _export(out, "b.parquet")
    assert (out / "notes" / "mine.txt").read_text() == "kept"
    assert (out / "a.parquet").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_an_interrupted_swap_puts_the_earlier_export_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ctrl-C (or a failed rename) between moving the earlier export aside and moving
    # the new one in: the earlier export is where it was, not in a hidden folder.
    out = tmp_path / "export"
    _export(out, "a.parquet")
    renames: list[tuple[Path, Path]] = []
    real_rename = os.rename

    def rename(src: Any, dst: Any) -> None:
        renames.append((Path(src), Path(dst)))
        if Path(dst) == out and ".export-" in Path(src).name:
            raise KeyboardInterrupt
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        _export(out, "b.parquet")
    assert any(".retired-" in dst.name for _, dst in renames)  # it got that far
    assert sorted(p.name for p in out.iterdir()) == ["a.parquet", MANIFEST]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_an_export_left_aside_by_a_crash_is_named_not_forgotten(tmp_path: Path) -> None:
    # A crash (SIGKILL, power) between the swap's two renames leaves the earlier export
    # only in the hidden folder beside --out. The next export says where it is rather
    # than export beside it as if nothing were there.
    out = tmp_path / "export"
    _export(out, "a.parquet")
    aside = tmp_path / ".export.retired-0badc0de"
    os.rename(out, aside)
    with pytest.raises(ExportFolderError, match=r"\.export\.retired-0badc0de") as info:
        _export(out, "b.parquet")
    assert "interrupted" in str(info.value)
    assert not out.exists()
    assert sorted(p.name for p in aside.iterdir()) == ["a.parquet", MANIFEST]
    # Once the operator has put it back (or removed it), exports go on.
    os.rename(aside, out)
    _export(out, "b.parquet")
    assert sorted(p.name for p in out.iterdir()) == ["b.parquet", MANIFEST]


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped (no zombie keeps it)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    with pytest.raises(ProcessLookupError):
        os.kill(child.pid, 0)
    return child.pid


def _staging(parent: Path, name: str) -> Path:
    folder = parent / name
    folder.mkdir()
    (folder / "ledger_events.parquet").write_text("half written")
    return folder


def test_a_staging_folder_of_a_killed_export_is_removed_by_the_next_export(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A SIGKILL mid-export leaves its hidden staging folder beside --out; the process
    # that made it is gone, so the next export into the same folder removes it.
    out = tmp_path / "export"
    dead = _staging(tmp_path, f".export.export-{_dead_pid()}-0123abcd")
    live = _staging(tmp_path, f".export.export-{os.getpid()}-89abcdef")
    with caplog.at_level(logging.WARNING, logger="projections.export"):
        _export(out, "a.parquet")
    assert not dead.exists()
    assert live.exists() and (live / "ledger_events.parquet").exists()
    assert sorted(p.name for p in out.iterdir()) == ["a.parquet", MANIFEST]
    assert str(dead) in caplog.text and str(live) not in caplog.text


def test_only_this_targets_staging_folders_of_gone_processes_are_removed(
    tmp_path: Path,
) -> None:
    dead = _dead_pid()
    target = tmp_path / "export"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    kept = [
        _staging(tmp_path, f".exports.export-{dead}-0123abcd"),  # another target's
        _staging(tmp_path, f".export.export-{dead}-0123abcd.old"),  # not the exact name
        _staging(tmp_path, f".export.export-{dead}-0123ABCD"),  # not the hex it writes
        _staging(tmp_path, ".export.export-0-0123abcd"),  # pid 0: a process group
        _staging(tmp_path, f".export.export-{2**80}-0123abcd"),  # no such pid at all
    ]
    (tmp_path / f".export.export-{dead}-feedface").write_text("a file, not a folder")
    link = tmp_path / f".export.export-{dead}-cafef00d"
    link.symlink_to(elsewhere, target_is_directory=True)
    (elsewhere / "keep.txt").write_text("kept")
    gone = _staging(tmp_path, f".export.export-{dead}-0badc0de")

    assert remove_abandoned_staging(target) == [gone]
    assert all(folder.exists() for folder in kept)
    assert (tmp_path / f".export.export-{dead}-feedface").is_file()
    assert link.is_symlink() and (elsewhere / "keep.txt").read_text() == "kept"
    assert remove_abandoned_staging(tmp_path / "missing" / "export") == []
