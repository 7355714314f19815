"""The ``runledger`` command line: the parser and the entry point (``runledger.cli:main``).

The subcommands live in :mod:`runledger.commands`, a module per group. Every command
finds the stack through ``--data-dir`` (``stack.json`` written by ``up``) unless
``RUNLEDGER_KAFKA_BOOTSTRAP`` names a cluster.
"""

from __future__ import annotations

import argparse
import logging
import sys

from runledger.commands.context import CliError as CliError
from runledger.commands.events import add_event_commands
from runledger.commands.read_model import add_read_model_commands
from runledger.commands.stack import add_stack_commands
from runledger.commands.token import add_token_commands
from runledger.settings import SettingsError

DESCRIPTION = """\
runledger: an event-sourced ledger of long-running work.

Every state change of a Process is an Avro event on Kafka; a node projects the
events into DuckDB and serves them over HTTP.

Start here:
  runledger up                      run everything locally (own Kafka broker included)
  runledger token create --account acme
                                    print a new API token for account acme
"""


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; each subcommand's ``func`` runs it."""
    parser = argparse.ArgumentParser(
        prog="runledger",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_stack_commands(sub)
    add_token_commands(sub)
    add_event_commands(sub)
    add_read_model_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command ``argv`` names and return its exit status: 2 with a message for
    the user (CliError, SettingsError) or with the help when no command is given, 130
    on Ctrl-C. Malformed arguments exit 2 from argparse itself."""
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
