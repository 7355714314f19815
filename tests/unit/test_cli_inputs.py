"""Bad inputs an operator gives ``runledger`` without a broker in sight: each is one
line on stderr naming what is wrong and exit 2, never a traceback, and nothing is
issued or written on the way. (The same with a running stack:
tests/integration/test_cli_inputs.py.)"""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import pytest

from runledger.settings import Settings, SettingsError
from runledger.stackfile import StackFile, StackFileError
from tests.cli_support import Cli, one_line, refused_line


@pytest.fixture
def run(bare: Cli) -> Cli:
    return bare


# -- arguments that are not UTF-8 ----------------------------------------------------------

NOT_UTF8 = os.fsdecode(b"\xff\xfe")  # what Python makes of such bytes in sys.argv


@pytest.mark.parametrize(
    "argv",
    [
        ["audit", NOT_UTF8],
        ["as-of", NOT_UTF8, "--at", "2026-01-01T00:00:00Z"],
        ["replay", "--to", "{tmp}/" + NOT_UTF8 + ".duckdb"],
        ["export", "--out", "{tmp}/" + NOT_UTF8],
        ["token", "create", "--account", "acme", "--name", NOT_UTF8],
    ],
    ids=lambda argv: argv[0],
)
def test_an_argument_that_is_not_utf8_is_refused_by_name(
    run: Cli, dead: Path, tmp_path: Path, argv: list[str]
) -> None:
    line = refused_line(run, argv, dead, tmp_path)
    assert "UTF-8" in line and "\\xff\\xfe" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dead"]  # nothing written


# -- stack.json and RUNLEDGER_KAFKA_BOOTSTRAP ------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"api_url": "a", "kafka_bootstrap": 5, "topic_prefix": "", "token": "t"}', "text"),
        ('{"api_url": "a", "kafka_bootstrap": "h:1", "topic_prefix": null, "token": "t"}', "text"),
        (
            '{"api_url": "a", "kafka_bootstrap": "h:1", "topic_prefix": "", "token": "t", '
            '"pid": "12"}',
            "whole number",
        ),
        ("[1, 2]", "not a JSON object"),
        ('{"api_url": "a", "token": "t"}', "kafka_bootstrap"),
        ('{"api_url": "a", "kafka_bootstrap": "", "topic_prefix": "", "token": "t"}', "empty"),
        (
            '{"api_url": "a", "kafka_bootstrap": "h:abc", "topic_prefix": "", "token": "t"}',
            "port",
        ),
        (
            '{"api_url": "a", "kafka_bootstrap": "h:99999", "topic_prefix": "", "token": "t"}',
            "port",
        ),
        (
            '{"api_url": "a", "kafka_bootstrap": "h:1", "topic_prefix": "a b", "token": "t"}',
            "topic_prefix",
        ),
    ],
)
def test_a_damaged_stack_file_is_named_with_what_to_do(
    run: Cli, tmp_path: Path, content: str, message: str
) -> None:
    (tmp_path / "stack.json").write_text(content)
    code, out, err = run("audit", "some-id", "--data-dir", str(tmp_path))
    assert code == 2 and out == ""
    line = one_line(err)
    assert "stack.json" in line and message in line, line
    assert "runledger up" in line, line  # what to do: start the stack again


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("127.0.0.1:abc", "port"),
        ("127.0.0.1:99999", "port"),
        ("127.0.0.1:0", "port"),
        ("http://127.0.0.1:9092", "host:port"),
        ("127.0.0.1:9092,,127.0.0.2:9092", "empty"),
        (",", "empty"),
        (":9092", "host"),
        ("[::1:9092", "host:port"),
    ],
)
def test_a_malformed_kafka_bootstrap_is_refused_by_name(
    run: Cli, monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("RUNLEDGER_KAFKA_BOOTSTRAP", value)
    code, out, err = run("audit", "some-id")
    assert code == 2 and out == ""
    line = one_line(err)
    assert "RUNLEDGER_KAFKA_BOOTSTRAP" in line and message in line, line


@pytest.mark.parametrize(
    "value", ["127.0.0.1:19092", "kafka-1:9092, kafka-2:9092", "kafka", "[::1]:9092", "::1"]
)
def test_the_bootstrap_forms_kafka_clients_take_are_kept(value: str) -> None:
    settings = Settings.from_env({"RUNLEDGER_KAFKA_BOOTSTRAP": value})
    assert settings.kafka_bootstrap == value


def test_a_stack_file_round_trips_and_refuses_a_bad_one(tmp_path: Path) -> None:
    written = StackFile("http://127.0.0.1:8000", "127.0.0.1:9092", "p.", "tok", 42)
    written.write(tmp_path)
    assert StackFile.read(tmp_path) == written
    (tmp_path / "stack.json").write_text('{"api_url": 1}')
    with pytest.raises(StackFileError):
        StackFile.read(tmp_path)
    with pytest.raises(SettingsError):
        Settings.from_env({"RUNLEDGER_KAFKA_BOOTSTRAP": "h:x"})


# -- paths -----------------------------------------------------------------------------------


def test_swap_from_a_folder_says_it_is_a_folder(run: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "rebuilt"
    folder.mkdir()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    code, out, err = run("swap", "--from", str(folder), "--data-dir", str(data_dir))
    assert code == 2 and out == ""
    assert f"{folder} is a folder" in one_line(err)
    assert folder.is_dir() and not (data_dir / "node.duckdb").exists()


# -- standard streams ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["tail", "--from", "beginning", "--max", "1"],
        ["verify", "--copy"],
        ["token", "create", "--account", "acme"],
        ["audit", "some-id"],
    ],
    ids=lambda argv: argv[0],
)
def test_a_closed_stdout_is_refused_before_any_work(
    run: Cli, dead: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    """``runledger token create ... >&-``: Python's sys.stdout is None; a token issued
    then would be printed nowhere, and tail and verify would die in a traceback."""
    monkeypatch.setattr(sys, "stdout", None)
    code, _, err = run(*argv, "--data-dir", str(dead))
    assert code == 2
    assert "standard output is closed" in one_line(err)


def test_token_revoke_with_a_closed_stdin_says_so(
    run: Cli, dead: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", None)
    code, out, err = run("token", "revoke", "--account", "acme", "--data-dir", str(dead))
    assert code == 2 and out == ""
    assert "standard input" in one_line(err)


@pytest.mark.parametrize("errors", ["strict", "surrogateescape"])
def test_token_revoke_of_bytes_that_are_not_utf8_says_so(
    run: Cli, dead: Path, monkeypatch: pytest.MonkeyPatch, errors: str
) -> None:
    """Python decodes standard input strictly, or with surrogateescape under a C locale:
    either way the bytes cannot be a token runledger issued."""
    stdin = io.TextIOWrapper(io.BytesIO(b"\xff\xfe\n"), encoding="utf-8", errors=errors)
    monkeypatch.setattr(sys, "stdin", stdin)
    code, out, err = run("token", "revoke", "--account", "acme", "--data-dir", str(dead))
    assert code == 2 and out == ""
    assert "not UTF-8" in one_line(err)


# -- messages that say what is accepted ------------------------------------------------------


def test_tail_from_names_every_accepted_form(run: Cli, dead: Path) -> None:
    code, _, err = run("tail", "--from", "BEGINNING", "--data-dir", str(dead))
    assert code == 2
    line = one_line(err)
    assert "beginning" in line and "end" in line and "ISO 8601" in line, line


def test_top_level_help_names_the_environment(run: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        run("--help")
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for name in ("RUNLEDGER_KAFKA_BOOTSTRAP", "RUNLEDGER_TOPIC_PREFIX", "RUNLEDGER_DATA_DIR"):
        assert name in out, name
    assert "docs/operations.md" in out


def test_stack_file_json_is_what_up_writes(tmp_path: Path) -> None:
    """The stack file's keys are the ones read back (a guard for the checks above)."""
    StackFile("u", "h:1", "", "t").write(tmp_path)
    assert set(json.loads((tmp_path / "stack.json").read_text())) == {
        "api_url",
        "kafka_bootstrap",
        "topic_prefix",
        "token",
        "pid",
        "own_broker",
        "metrics",
    }


@pytest.mark.parametrize(
    "argv",
    [["replay", "--to", "/proc/new.duckdb"], ["export", "--out", "/proc/exported"]],
    ids=lambda argv: argv[0],
)
def test_an_unwritable_target_folder_is_refused_before_any_work(
    run: Cli, dead: Path, tmp_path: Path, argv: list[str]
) -> None:
    # /proc takes no new files, even from root; the broker of ``dead`` is not asked.
    line = refused_line(run, argv, dead, tmp_path)
    assert f"{argv[1]} {argv[2]}: cannot write in /proc" in line, line
    assert ".partial" not in line and "127.0.0.1" not in line
