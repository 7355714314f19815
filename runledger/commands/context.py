"""What every subcommand runs with: the settings its arguments select, the topics they
name, the ``--data-dir`` option, and the error that reaches the user as a message.

Every command finds the stack through ``--data-dir`` (``stack.json`` written by
``up``) unless ``RUNLEDGER_KAFKA_BOOTSTRAP`` names a cluster.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from runledger.settings import Settings
from runledger.stackfile import StackFile, StackFileError


class CliError(Exception):
    """A message for the user; the command exits with status 2."""


def settings_of(args: argparse.Namespace, *, need_kafka: bool = True) -> Settings:
    """The settings from the environment and ``args``; with ``need_kafka``, the broker
    and topic prefix from ``DATA_DIR/stack.json`` when the environment names none.

    Raises CliError when there is neither, SettingsError for a malformed setting.
    """
    settings = Settings.from_env(
        data_dir=Path(args.data_dir) if getattr(args, "data_dir", None) else None,
        port=getattr(args, "port", None),
        host=getattr(args, "host", None),
    )
    if settings.data_dir.exists() and not settings.data_dir.is_dir():
        raise CliError(f"--data-dir {settings.data_dir} is a file, not the stack's folder")
    if need_kafka and not settings.kafka_bootstrap:
        try:
            stack = StackFile.read(settings.data_dir)
        except StackFileError as exc:
            raise CliError(str(exc)) from exc
        settings = replace(
            settings, kafka_bootstrap=stack.kafka_bootstrap, topic_prefix=stack.topic_prefix
        )
    return settings


def topics_of(settings: Settings) -> Any:
    """The ledger's topic names under the settings' prefix (imported when a command runs,
    like everything a command needs, so that ``--help`` stays quick)."""
    from streams.topics import Topics

    return Topics(settings.topic_prefix)


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    """The ``--data-dir`` option, which every subcommand takes."""
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="the stack's folder (stack.json, broker log, DuckDB file); default .runledger/",
    )


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    return _at_least(int, text, 1, "a whole number of at least 1")


def non_negative_int(text: str) -> int:
    """An argparse type: a whole number of at least 0."""
    return _at_least(int, text, 0, "a whole number of at least 0")


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 1 to 65535."""
    value = _at_least(int, text, 1, "a port number (1 to 65535)")
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1 to 65535)")
    return int(value)


def positive_seconds(text: str) -> float:
    """An argparse type: a number of seconds above 0."""
    value = _at_least(float, text, 0.0, "a number of seconds above 0")
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


def _at_least(kind: Any, text: str, least: Any, what: str) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if not value >= least:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
    return value
