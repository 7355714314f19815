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
