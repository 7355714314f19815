"""``runledger`` called in the test process, for the CLI tests of tests/unit and
tests/integration alike (their fixtures are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from runledger.cli import main

# (argument, ...) -> (exit code, stdout, stderr)
Cli = Callable[..., tuple[int, str, str]]


def in_process(capsys: pytest.CaptureFixture[str]) -> Cli:
    """``runledger`` called in this process: (exit code, stdout, stderr) of each call."""

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def one_line(err: str) -> str:
    """The one line a refused command wrote on stderr (it must be one, from runledger)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("runledger"), err
    return lines[0]


def refused_line(cli: Cli, argv: list[str], data_dir: Path, tmp: Path) -> str:
    """Run ``argv`` (``{tmp}`` stands for ``tmp``) on ``data_dir``; it must exit 2 with
    nothing on stdout. Its one line on stderr."""
    argv = [a.replace("{tmp}", str(tmp)) for a in argv]
    code, out, err = cli(*argv, "--data-dir", str(data_dir))
    assert code == 2 and out == "", (code, out, err)
    return one_line(err)
