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


def cmd_orchestrator(args: argparse.Namespace) -> int:
    from runledger.runner import run_orchestrator

    _run(run_orchestrator(_settings(args)))
    return 0


def cmd_runner(args: argparse.Namespace) -> int:
    from runledger.runner import RunnerOptions, run_runner

    kinds = [k.strip() for k in (args.kinds or "").split(",") if k.strip()]
    _run(run_runner(_settings(args), RunnerOptions.from_env(kinds=kinds)))
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


def _topics(settings: Settings) -> Any:
    from streams.topics import Topics

    return Topics(settings.topic_prefix)


def cmd_audit(args: argparse.Namespace) -> int:
    import json

    from runledger import audit
    from schemas import default_codec
    from streams.consumer import ConsumerError

    settings = _settings(args)
    types = [args.type] if args.type else None
    try:
        h = asyncio.run(
            audit.load(settings.kafka_bootstrap, _topics(settings), default_codec(), args.id, types)
        )
    except audit.AuditError as exc:
        print(f"runledger audit: {exc}", file=sys.stderr)
        return 1
    except ConsumerError as exc:
        raise CliError(str(exc)) from exc
    if args.json:
        for entry in h.entries:
            doc = {"aggregate_type": h.aggregate_type, "aggregate_id": h.aggregate_id}
            print(json.dumps({**doc, **audit.entry_document(entry)}, ensure_ascii=False))
    else:
        print(audit.render_table(h))
    return 0


def cmd_as_of(args: argparse.Namespace) -> int:
    import json

    from runledger import audit
    from schemas import default_codec
    from streams.consumer import ConsumerError

    try:
        at = audit.parse_time(args.at)
    except ValueError as exc:
        raise CliError(f"--at: {exc}") from exc
    settings = _settings(args)
    types = [args.type] if args.type else None
    try:
        h = asyncio.run(
            audit.load(settings.kafka_bootstrap, _topics(settings), default_codec(), args.id, types)
        )
        state = audit.state_as_of(h.events, at)
    except audit.AuditError as exc:
        print(f"runledger as-of: {exc}", file=sys.stderr)
        return 1
    except ConsumerError as exc:
        raise CliError(str(exc)) from exc
    doc = {"aggregate_type": h.aggregate_type, **audit.state_document(state, at)}
    print(json.dumps(doc, ensure_ascii=False) if args.json else audit.render_state(doc))
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    from runledger.tail import Filter, parse_start, tail
    from streams.consumer import ConsumerError

    try:
        start = parse_start(args.start)
    except ValueError as exc:
        raise CliError(f"--from: {exc}") from exc
    settings = _settings(args)
    keep = Filter(frozenset(args.type or ()), frozenset(args.account or ()))
    try:
        asyncio.run(
            tail(
                settings.kafka_bootstrap,
                _topics(settings).events,
                start=start,
                keep=keep,
                max_events=args.max,
                idle_timeout_s=args.idle_timeout,
            )
        )
    except ConsumerError as exc:
        raise CliError(str(exc)) from exc
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from runledger.replay import ToolError, run_replay

    settings = _settings(args)
    target = Path(args.to)
    try:
        result = run_replay(settings.kafka_bootstrap, _topics(settings), target, args.force)
    except ToolError as exc:
        raise CliError(str(exc)) from exc
    print(
        f"replayed {result.events:,} events into {target} in {result.seconds:.1f} s "
        f"({result.states:,} aggregates, {result.duplicates} duplicates dropped, "
        f"{result.dead_letters} dead letters skipped); positions {result.positions}",
        file=sys.stderr,
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from runledger.replay import ToolError, render_verification, run_verify

    settings = _settings(args)
    try:
        v = run_verify(
            settings.kafka_bootstrap,
            _topics(settings),
            settings.data_dir,
            copy=args.copy,
            limit=args.limit,
        )
    except ToolError as exc:
        raise CliError(str(exc)) from exc
    render_verification(v)
    return 0 if v.ok else 1


def cmd_swap(args: argparse.Namespace) -> int:
    from runledger.control import NoNode
    from runledger.node import DB_FILE
    from runledger.swap import SwapError, ask_node, swap_offline

    settings = _settings(args, need_kafka=False)
    source = Path(args.source).resolve()
    live = settings.data_dir / DB_FILE
    try:
        try:
            result = ask_node(
                settings.data_dir,
                source,
                args.timeout,
                on_progress=lambda text: print(f"swap: {text}", file=sys.stderr),
            )
            running = True
        except NoNode:
            result = swap_offline(live, source, _topics(settings).events)
            running = False
    except SwapError as exc:
        raise CliError(str(exc)) from exc
    old = f"; the old one is {result.backup}" if result.backup else ""
    print(f"{result.live} is now the rebuilt file{old}")
    if running:
        print(
            f"the running node serves from it since positions {result.positions} "
            f"({result.seconds:.1f} s)",
            file=sys.stderr,
        )
    else:
        print(
            "no node was running: start it; it resumes from the file's positions", file=sys.stderr
        )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from runledger.replay import ToolError, run_export

    settings = _settings(args)
    try:
        written = run_export(
            settings.kafka_bootstrap,
            _topics(settings),
            Path(args.out),
            Path(args.db) if args.db else None,
        )
    except ToolError as exc:
        raise CliError(str(exc)) from exc
    for name, path in written.items():
        print(f"{name}\t{path}")
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

    orchestrator = sub.add_parser(
        "orchestrator",
        help="run the orchestrator: moves FlowRuns along, hands jobs to runners",
        description="Follow ledger.events; start, skip and complete FlowRun nodes and "
        "publish the jobs of started nodes to ledger.jobs.",
    )
    _data_dir(orchestrator)
    orchestrator.set_defaults(func=cmd_orchestrator)

    runner = sub.add_parser(
        "runner",
        help="run a runner: executes jobs from ledger.jobs in Chromium",
        description="Run jobs of the given kinds (consumer groups shared with other "
        "runners) and report every step as commands. RUNLEDGER_ALLOW_PRIVATE_TARGETS "
        "lets runners reach loopback and private addresses.",
    )
    _data_dir(runner)
    runner.add_argument(
        "--kinds",
        default="",
        help="comma-separated job kinds (scan,case,webhook,slack,email,wait,generate); default all",
    )
    runner.set_defaults(func=cmd_runner)

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

    _add_log_tools(sub)
    return parser


def _add_log_tools(sub: Any) -> None:
    """audit, as-of, tail, replay, verify, swap, export (docs/operations.md)."""
    audit = sub.add_parser(
        "audit",
        help="the history of one aggregate: who, when, which command, why rejected",
        description="Read the commands' outcomes and the events of one aggregate from the "
        "log (only its partition) and print one line per command: when, actor, account, "
        "command, result, the events it produced or the reason it was rejected. Exit 1 "
        "for an unknown id.",
    )
    audit.add_argument("id", help="the aggregate id (a process id, an account name, ...)")
    audit.add_argument("--type", help="the aggregate type (default: try process, account, ...)")
    audit.add_argument("--json", action="store_true", help="one JSON object per command")
    _data_dir(audit)
    audit.set_defaults(func=cmd_audit)

    as_of = sub.add_parser(
        "as-of",
        help="the state of one aggregate at a past time",
        description="Fold the aggregate's events with occurred_at <= --at with the same "
        "evolve as the projector and print the state. Exit 1 for an unknown id or a time "
        "before the aggregate existed; 2 for a malformed time.",
    )
    as_of.add_argument("id", help="the aggregate id")
    as_of.add_argument(
        "--at",
        required=True,
        metavar="TIME",
        help="ISO 8601 time, e.g. 2026-03-01T12:00:00Z (no zone: UTC)",
    )
    as_of.add_argument("--type", help="the aggregate type (default: try each)")
    as_of.add_argument("--json", action="store_true", help="one JSON object")
    _data_dir(as_of)
    as_of.set_defaults(func=cmd_as_of)

    tail = sub.add_parser(
        "tail",
        help="print decoded events as JSON lines, live",
        description="Follow ledger.events (read_committed, every partition) and print each "
        "event as one JSON line (envelope, data, partition, offset) until Ctrl-C.",
    )
    tail.add_argument(
        "--type",
        action="append",
        metavar="TYPE",
        help="an event type (process.progress) or aggregate type (process); repeatable",
    )
    tail.add_argument("--account", action="append", help="only this account; repeatable")
    tail.add_argument(
        "--from",
        dest="start",
        default="end",
        metavar="WHERE",
        help="beginning, end (default) or an ISO time (via offsets_for_times)",
    )
    tail.add_argument("--max", type=int, metavar="N", help="stop after N events")
    tail.add_argument(
        "--idle-timeout", type=float, metavar="S", help="stop after S seconds without a new event"
    )
    _data_dir(tail)
    tail.set_defaults(func=cmd_tail)

    replay = sub.add_parser(
        "replay",
        help="rebuild every projection from offset 0 into a new DuckDB file",
        description="Read ledger.events from offset 0 to its current end and build a new "
        "read model with the bulk path (fold in memory, append events in large batches, "
        "write final states once). A progress line goes to stderr.",
    )
    replay.add_argument("--to", required=True, metavar="NEW.duckdb", help="the file to build")
    replay.add_argument("--force", action="store_true", help="replace NEW.duckdb if it exists")
    _data_dir(replay)
    replay.set_defaults(func=cmd_replay)

    verify = sub.add_parser(
        "verify",
        help="compare the node's read model with a rebuild from the log; exit 1 on a difference",
        description="Rebuild into a scratch file up to the positions DATA_DIR/node.duckdb has "
        "applied and compare every table: row count, checksum, differing rows. The node must "
        "be stopped (DuckDB's single writer), or pass --copy to compare a copy of the file.",
    )
    verify.add_argument(
        "--copy",
        action="store_true",
        help="compare a copy of node.duckdb (works while the node runs)",
    )
    verify.add_argument("--limit", type=int, default=20, help="differing rows shown per table")
    _data_dir(verify)
    verify.set_defaults(func=cmd_verify)

    swap = sub.add_parser(
        "swap",
        help="move the node to a rebuilt read model; readers see no downtime",
        description="With a node running on DATA_DIR: it opens NEW.duckdb, catches it up "
        "from its stored positions while the old file serves, switches every reader to it "
        "in one step, then keeps the old file as DATA_DIR/node.duckdb.<time>.bak and "
        "renames NEW to node.duckdb. With no node running: the same checks and renames. "
        "Exit 2, with the node untouched, when NEW is not a read model of this ledger.",
    )
    swap.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="NEW.duckdb",
        help="the rebuilt file (from runledger replay), on the same filesystem",
    )
    swap.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        metavar="S",
        help="how long the node may take to catch the new file up (default 600)",
    )
    _data_dir(swap)
    swap.set_defaults(func=cmd_swap)

    export = sub.add_parser(
        "export",
        help="write the events and every projection table as Parquet",
        description="Write OUT/ledger_events.parquet (decoded from the log: envelope "
        "columns, partition, offset, data as JSON) and OUT/<table>.parquet for every table "
        "of a fresh replay (or of --db FILE, opened read-only).",
    )
    export.add_argument("--format", choices=["parquet"], default="parquet")
    export.add_argument("--out", required=True, metavar="DIR")
    export.add_argument("--db", metavar="FILE", help="export this DuckDB file's tables instead")
    _data_dir(export)
    export.set_defaults(func=cmd_export)


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
