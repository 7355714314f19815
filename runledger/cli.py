"""The ``runledger`` command line: the parser and the entry point (``runledger.cli:main``).

The subcommands live in :mod:`runledger.commands`, a module per group. Every command
finds the stack through ``--data-dir`` (``stack.json`` written by ``up``) unless
``RUNLEDGER_KAFKA_BOOTSTRAP`` names a cluster.
"""

from __future__ import annotations

import argparse
import os
import sys

from runledger import logs
from runledger.commands.context import CliError as CliError
from runledger.commands.context import explain
from runledger.commands.dlq import add_dlq_command
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

EPILOG = """\
Every command takes --data-dir DIR (default .runledger/); `runledger COMMAND --help`
explains its options. The environment overrides the defaults:
  RUNLEDGER_KAFKA_BOOTSTRAP   host:port[,host:port...] of a Kafka cluster (default: the
                              one in DIR/stack.json; `up` starts its own)
  RUNLEDGER_TOPIC_PREFIX      put before every topic name (default none)
  RUNLEDGER_DATA_DIR          the default of --data-dir
  RUNLEDGER_ARTIFACTS_DIR     where runners store and nodes serve artifacts (default
                              DIR/artifacts; one folder for several nodes)
  RUNLEDGER_HOST, RUNLEDGER_PORT
                              the defaults of --host and --port (127.0.0.1, 8000)
  RUNLEDGER_METRICS_PORT      the default of --metrics-port (decider, orchestrator,
                              runner: Prometheus /metrics; default off)
  RUNLEDGER_PARTITIONS        partitions of new topics (default 4)
  RUNLEDGER_LOG_LEVEL         debug, info (default), warning or error; -v is debug
Times are ISO 8601 (2026-03-01T12:00:00Z; no zone: UTC), durations in seconds.
Exit status: 0 done, 1 the answer is no (unknown id, a difference, no such token to
revoke), 2 a usage or environment error (one line on stderr; -v adds the traceback),
130 Ctrl-C.
See docs/operations.md.
"""


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; each subcommand's ``func`` runs it."""
    parser = argparse.ArgumentParser(
        prog="runledger",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log at DEBUG (up: its services too) and show tracebacks",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_stack_commands(sub)
    add_token_commands(sub)
    add_event_commands(sub)
    add_dlq_command(sub)
    add_read_model_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command ``argv`` names and return its exit status: 2 with a message for
    the user (CliError, SettingsError, or an error of the surroundings such as a broker
    that does not answer) or with the help when no command is given, 130 on Ctrl-C.
    Malformed arguments exit 2 from argparse itself."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    problem = _not_utf8(argv)
    if problem:
        print(f"runledger: {problem}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        level = logs.level_of(os.environ, args.verbose)
    except SettingsError as exc:
        print(f"runledger: {exc}", file=sys.stderr)
        return 2
    # httpx's INFO line (every request's full URL) is noise in what ``up`` prints and
    # would put a Slack webhook's secret URL in runner.log: runledger.logs quiets it.
    logs.configure(level, tool=args.command in TOOLS)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    if args.command in TOOLS and sys.stdout is None:
        # ``>&-``: what the command prints (a new token, the events) would go nowhere.
        print(
            "runledger: standard output is closed: redirect it (> FILE, > /dev/null)",
            file=sys.stderr,
        )
        return 2
    try:
        return int(args.func(args))
    except (CliError, SettingsError) as exc:
        print(f"runledger: {explain(args, exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # ``runledger tail | head``: the reader has what it wanted. Like any Unix filter,
        # stop quietly with SIGPIPE's status, and keep Python's exit-time flush of
        # stdout from failing on the closed pipe too.
        _detach_stdout()
        return 141
    except Exception as exc:
        if args.verbose or not isinstance(exc, _surroundings_errors()):
            raise
        print(f"runledger: {explain(args, exc)}", file=sys.stderr)
        return 2


def _not_utf8(argv: list[str]) -> str | None:
    """Why ``argv`` cannot be used, when an argument is not UTF-8 (Python hands such
    bytes on as lone surrogates): ids and names must be UTF-8 text in the ledger, and
    DuckDB and Arrow refuse such paths in a traceback."""
    for position, arg in enumerate(argv, 1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            try:
                raw = os.fsencode(arg)  # the bytes the shell passed
            except UnicodeEncodeError:  # a surrogate no byte turns into (in-process calls)
                raw = arg.encode("utf-8", "backslashreplace")
            shown = raw.decode("utf-8", "backslashreplace")
            return f"argument {position} ({shown}) is not UTF-8: ids, names and paths must be"
    return None


def _detach_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no file descriptor (captured output): nothing to flush
        pass


# The commands that do one thing and exit: their user wants one line about a broker
# that cannot be reached, not aiokafka's log of every attempt (``-v`` shows it).
TOOLS = frozenset({"token", "audit", "as-of", "tail", "dlq", "replay", "verify", "swap", "export"})


def _surroundings_errors() -> tuple[type[BaseException], ...]:
    """The errors of the layers below that describe the surroundings, not a bug: a
    broker that does not answer, a missing topic, an unreadable file. They reach the
    user as one line (``-v`` shows the traceback). Imported here, when one happened,
    so that ``--help`` stays quick."""
    from aiokafka.errors import KafkaError

    from projections.errors import StoreError
    from runledger.broker.errors import BrokerError
    from streams.consumer import ConsumerError
    from streams.publisher import PublishError
    from streams.topics import TopicError

    return (KafkaError, StoreError, BrokerError, ConsumerError, PublishError, TopicError, OSError)
