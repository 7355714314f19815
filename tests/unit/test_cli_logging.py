"""What ``runledger`` logs: httpx's request lines (full URLs at INFO) are kept out unless
``-v``, so ``up`` prints its three lines and a Slack webhook's secret URL never reaches a
runner's log."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from runledger.cli import main


@pytest.fixture
def httpx_logger() -> Iterator[logging.Logger]:
    """httpx's logger as a fresh process has it, under a root at INFO (``basicConfig``
    leaves the root alone when pytest's handlers are already there)."""
    logger, root = logging.getLogger("httpx"), logging.getLogger()
    levels = logger.level, root.level
    logger.setLevel(logging.NOTSET)
    root.setLevel(logging.INFO)
    yield logger
    logger.setLevel(levels[0])
    root.setLevel(levels[1])


def test_httpx_request_lines_are_not_logged(
    httpx_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([]) == 2  # no command: the help, after logging is set up
    assert not httpx_logger.isEnabledFor(logging.INFO)
    assert httpx_logger.isEnabledFor(logging.WARNING)


def test_verbose_shows_httpx_request_lines(
    httpx_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-v"]) == 2
    assert httpx_logger.isEnabledFor(logging.INFO)
