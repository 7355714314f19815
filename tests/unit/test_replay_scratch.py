"""The workers' scratch folder is gone after a replay ends, also when a worker still
writes into it while it is removed (Ctrl-C reaches the workers too; CI once found
``….partial.spill`` left beside the target)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from projections import replay_parallel
from projections.replay_parallel import remove_scratch


def test_a_file_written_while_the_folder_is_removed_does_not_keep_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "rebuilt.duckdb.partial.spill"
    scratch.mkdir()
    (scratch / "worker-0.sqlite").write_bytes(b"x")
    real = shutil.rmtree
    calls = 0

    def racing_rmtree(path: Any, ignore_errors: bool = False) -> None:
        nonlocal calls
        calls += 1
        real(path, ignore_errors=ignore_errors)
        if calls == 1:  # a late worker writes its spill file again, after the removal
            Path(path).mkdir()
            (Path(path) / "worker-1.sqlite-journal").write_bytes(b"y")

    monkeypatch.setattr(replay_parallel.shutil, "rmtree", racing_rmtree)
    remove_scratch(scratch)
    assert not scratch.exists() and calls == 2


def test_a_missing_folder_is_fine(tmp_path: Path) -> None:
    remove_scratch(tmp_path / "never-made.spill")
