"""The ``runledger`` command line.

Every command finds the stack through ``--data-dir`` (``stack.json`` written by
``up``) unless ``RUNLEDGER_KAFKA_BOOTSTRAP`` names a cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any

from runledger.settings import Settings, SettingsError
from runledger.stackfile import StackFile, StackFileError

DESCRIPTION = """\
runledger: an event-sourced ledger of long-running work.

Every state change of a Process is an Avro event on Kafka; a node projects the
events into DuckDB and serves them over HTTP.

Start here:
  runledger up                      run everything locally (own Kafka broker included)
  runledger token create --account acme
                                    print a new API token for account acme
"""


class CliError(Exception):
    """A message for the user; the command exits with status 2."""


def _settings(args: argparse.Namespace, *, need_kafka: bool = True) -> Settings:
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


def cmd_up(args: argparse.Namespace) -> int:
    from runledger.up import run_up

    return run_up(_settings(args, need_kafka=False))


def _run(main: Coroutine[Any, Any, None]) -> None:
    """Run a service on uvloop: the node spends about a quarter less CPU per request."""
    import uvloop

    uvloop.run(main)


def cmd_node(args: argparse.Namespace) -> int:
    from runledger.node import run_node

    _run(run_node(_settings(args)))
    return 0


def cmd_decider(args: argparse.Namespace) -> int:
    from runledger.services import run_decider

    _run(run_decider(_settings(args)))
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    from runledger.tokens import TokenError, issue_token

    settings = _settings(args)
    try:
        token = asyncio.run(issue_token(settings, args.account, args.name or args.account))
    except TokenError as exc:
        raise CliError(str(exc)) from exc
    print(token)
    print(
        f"token for account {args.account!r}: shown once; the ledger keeps only its hash",
        file=sys.stderr,
    )
    return 0


def _data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="the stack's folder (stack.json, broker log, DuckDB file); default .runledger/",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runledger",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    up = sub.add_parser(
        "up",
        help="run broker, decider and node locally until Ctrl-C",
        description="Start a local Kafka broker (unless RUNLEDGER_KAFKA_BOOTSTRAP is set), "
        "create the topics, start the decider and a node, print the API URL and a token for "
        "account 'default', and write DIR/stack.json. Ctrl-C stops everything; running it "
        "again on the same DIR resumes with all data.",
    )
    _data_dir(up)
    up.add_argument("--port", type=int, help="API port (default 8000)")
    up.add_argument("--host", help="API address (default 127.0.0.1)")
    up.set_defaults(func=cmd_up)

    node = sub.add_parser(
        "node",
        help="run a node: projector + HTTP API over one DuckDB file",
        description="Project ledger.events into DATA_DIR/node.duckdb and serve the HTTP API.",
    )
    _data_dir(node)
    node.add_argument("--port", type=int, help="API port (default 8000)")
    node.add_argument("--host", help="API address (default 127.0.0.1)")
    node.set_defaults(func=cmd_node)

    decider = sub.add_parser(
        "decider",
        help="run the decider: the only writer of ledger.events",
        description="Decide commands from ledger.commands into events (one active decider "
        "per deployment: a new one fences the old).",
    )
    _data_dir(decider)
    decider.set_defaults(func=cmd_decider)

    token = sub.add_parser("token", help="manage API tokens", description="Manage API tokens.")
    token_sub = token.add_subparsers(dest="token_command", metavar="ACTION")
    create = token_sub.add_parser(
        "create",
        help="create a token for an account and print it once",
        description="Create an API token for ACCOUNT. It is printed once; the ledger keeps "
        "only its sha256, recorded as an event so a replay restores it.",
    )
    create.add_argument("--account", required=True, help="the account the token acts for")
    create.add_argument("--name", help="a label for the token (default: the account name)")
    _data_dir(create)
    create.set_defaults(func=cmd_token_create)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except (CliError, SettingsError) as exc:
        print(f"runledger: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
