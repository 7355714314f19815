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
    if settings.kafka_bootstrap:
        args.kafka_source = "RUNLEDGER_KAFKA_BOOTSTRAP"  # for explain's message
    elif need_kafka:
        try:
            stack = StackFile.read(settings.data_dir)
        except StackFileError as exc:
            raise CliError(str(exc)) from exc
        settings = replace(
            settings, kafka_bootstrap=stack.kafka_bootstrap, topic_prefix=stack.topic_prefix
        )
        args.stack_source = (settings.data_dir, stack)  # for stopped_stack's message
        args.kafka_source = str(settings.data_dir / "stack.json")
    return settings


def explain(args: argparse.Namespace, exc: BaseException) -> str:
    """The line the user reads for ``exc``: :func:`stopped_stack`'s when it applies;
    else, for a broker that does not answer, the error's own words followed by where
    the address came from (``(set by RUNLEDGER_KAFKA_BOOTSTRAP)`` or ``(set by
    DIR/stack.json)``), since that is what to check; else the error's own words."""
    stopped = stopped_stack(args, exc)
    if stopped is not None:
        return stopped
    source = getattr(args, "kafka_source", None)
    if source is not None and _unreachable(exc):
        return f"{exc} (set by {source})"
    return str(exc)


def stopped_stack(args: argparse.Namespace, exc: BaseException) -> str | None:
    """What to tell the user when the broker that ``DATA_DIR/stack.json`` names did not
    answer and the ``runledger up`` that wrote the file no longer runs: the usual case of
    a tool run after Ctrl-C stopped the stack, which aiokafka words as "Unable to
    bootstrap from [('127.0.0.1', 39443, <AddressFamily.AF_INET: 2>)]". None otherwise
    (a broker of RUNLEDGER_KAFKA_BOOTSTRAP, a stack whose ``up`` runs, another error)."""
    source = getattr(args, "stack_source", None)
    if source is None or not _unreachable(exc):
        return None
    data_dir, stack = source
    if stack.running():
        return None
    pid = f", pid {stack.pid}," if stack.pid > 0 else ""
    return (
        f"the stack in {data_dir} is not running (its `runledger up`{pid} has stopped) and "
        f"its broker {stack.kafka_bootstrap} does not answer: start it with "
        f"`runledger up --data-dir {data_dir}`, or set RUNLEDGER_KAFKA_BOOTSTRAP"
    )


def _unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` is, or was raised from, aiokafka's "cannot reach the broker"."""
    from aiokafka.errors import KafkaConnectionError

    seen: BaseException | None = exc
    for _ in range(10):  # a chain is short; a cycle must not hang the error path
        if seen is None:
            return False
        if isinstance(seen, KafkaConnectionError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


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
