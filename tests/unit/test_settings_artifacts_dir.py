"""RUNLEDGER_ARTIFACTS_DIR: one artifacts folder for several nodes and runners
(docs/operations.md, "Several nodes"); unset or blank, ``DATA_DIR/artifacts``, which
follows ``--data-dir``."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import pytest

from runledger.commands.context import settings_of
from runledger.runner import Runner, RunnerOptions
from runledger.settings import Settings, SettingsError
from tests.cli_support import Cli, one_line


def test_unset_or_blank_it_is_the_data_dirs_artifacts_folder() -> None:
    assert Settings().artifacts_dir == Path(".runledger/artifacts")
    assert Settings.from_env({}).artifacts_dir == Path(".runledger/artifacts")
    blank = {"RUNLEDGER_DATA_DIR": "/srv/rl", "RUNLEDGER_ARTIFACTS_DIR": "  "}
    assert Settings.from_env(blank).artifacts_dir == Path("/srv/rl/artifacts")


def test_the_default_follows_the_data_dir_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RUNLEDGER_ARTIFACTS_DIR", raising=False)
    monkeypatch.setenv("RUNLEDGER_DATA_DIR", str(tmp_path / "from-env"))
    args = argparse.Namespace(data_dir=str(tmp_path / "from-flag"))
    assert settings_of(args, need_kafka=False).artifacts_dir == tmp_path / "from-flag/artifacts"


def test_a_value_wins_over_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = tmp_path / "shared"  # need not exist yet: the first artifact makes it
    monkeypatch.setenv("RUNLEDGER_ARTIFACTS_DIR", str(shared))
    args = argparse.Namespace(data_dir=str(tmp_path / "node-a"))
    assert settings_of(args, need_kafka=False).artifacts_dir == shared


def test_a_file_is_refused_naming_the_variable(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    with pytest.raises(SettingsError, match="RUNLEDGER_ARTIFACTS_DIR .*a-file is a file"):
        Settings.from_env({"RUNLEDGER_ARTIFACTS_DIR": str(tmp_path / "a-file")})


def test_a_node_given_a_file_exits_2_with_one_line(
    bare: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("RUNLEDGER_ARTIFACTS_DIR", str(tmp_path / "a-file"))
    code, out, err = bare("node", "--data-dir", str(tmp_path / "data"))
    assert (code, out) == (2, "")
    assert "RUNLEDGER_ARTIFACTS_DIR" in one_line(err)
    assert not (tmp_path / "data").exists()  # refused before the node made anything


def test_a_runner_stores_artifacts_in_it(tmp_path: Path) -> None:
    env = {"RUNLEDGER_DATA_DIR": str(tmp_path / "data"), "RUNLEDGER_ARTIFACTS_DIR": str(tmp_path)}

    async def store_root() -> Path:
        # In the loop: the runner's Kafka producer is made (not connected) with it.
        runner = Runner(Settings.from_env(env), RunnerOptions(kinds=()))
        await runner.publisher.stop()  # never started; closes what aiokafka made
        return runner.ctx.store.root

    assert asyncio.run(store_root()) == tmp_path
