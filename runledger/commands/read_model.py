"""The commands that rebuild, check, move and export a node's read model: ``replay``,
``verify``, ``swap`` and ``export``. See docs/operations.md."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from runledger.commands.context import (
    CliError,
    add_data_dir,
    non_negative_int,
    positive_seconds,
    settings_of,
    topics_of,
)
from runledger.settings import Settings


def cmd_replay(args: argparse.Namespace) -> int:
    from runledger.replay import ToolError, run_replay

    target = Path(args.to)
    if target.is_dir():
        raise CliError(f"--to {target} is a folder: name the new .duckdb file")
    if not target.parent.is_dir():
        raise CliError(f"--to {target}: the folder {target.parent} does not exist")
    settings = settings_of(args)
    existed = target.exists()
    try:
        result = run_replay(settings.kafka_bootstrap, topics_of(settings), target, args.force)
    except ToolError as exc:
        raise CliError(str(exc)) from exc
    except KeyboardInterrupt:
        return interrupted(
            "replay", f"{target} was {'left as it was' if existed else 'not written'}"
        )
    print(
        f"replayed {result.events:,} events into {target} in {result.seconds:.1f} s "
        f"({result.states:,} aggregates, {result.duplicates} duplicates dropped, "
        f"{result.dead_letters} dead letters skipped); positions {result.positions}",
        file=sys.stderr,
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from runledger.replay import ToolError, render_verification, run_verify

    settings = settings_of(args)
    try:
        v = run_verify(
            settings.kafka_bootstrap,
            topics_of(settings),
            settings.data_dir,
            copy=args.copy,
            limit=args.limit,
        )
    except ToolError as exc:
        raise CliError(str(exc)) from exc
    except KeyboardInterrupt:
        return interrupted("verify", "nothing was compared")
    render_verification(v)
    return 0 if v.ok else 1


def cmd_swap(args: argparse.Namespace) -> int:
    from runledger.control import NoNode
    from runledger.node import DB_FILE
    from runledger.swap import SwapError, ask_node, swap_offline

    settings = settings_of(args, need_kafka=False)
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
        except KeyboardInterrupt:
            # Only this command stops: the node finishes the swap, or undoes it if it
            # fails (tests/unit/test_control_caller_gone.py).
            return interrupted(
                "swap", "the node goes on with the swap (or undoes it): its log says how it ended"
            )
        except NoNode:
            result = swap_offline(live, source, topics_of(_with_stack_prefix(settings)).events)
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


def _with_stack_prefix(settings: Settings) -> Settings:
    """The settings with the topic prefix of ``DATA_DIR/stack.json`` when the environment
    names no cluster, as for every other tool: the offline swap needs no broker, but it
    must look for the positions of the stack's own events topic."""
    from runledger.stackfile import StackFile

    stack = None if settings.kafka_bootstrap else StackFile.read_optional(settings.data_dir)
    return settings if stack is None else replace(settings, topic_prefix=stack.topic_prefix)


def cmd_export(args: argparse.Namespace) -> int:
    from runledger.export import run_export
    from runledger.replay import ToolError

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {out} is a file: name a folder (it is created if missing)")
    if args.db and not Path(args.db).is_file():
        raise CliError(f"--db {args.db} is not a file")
    settings = settings_of(args)
    try:
        written = run_export(
            settings.kafka_bootstrap,
            topics_of(settings),
            out,
            Path(args.db) if args.db else None,
        )
    except ToolError as exc:
        raise CliError(str(exc)) from exc
    except KeyboardInterrupt:
        return interrupted("export", f"{out} was left as it was")
    for name, path in written.items():
        print(f"{name}\t{path}")
    return 0


def interrupted(tool: str, left: str) -> int:
    """Ctrl-C during a rebuild: exit 130 (as the CLI does for every command) with one
    line saying what was left, below the progress line a terminal shows (which has no
    newline of its own until the end). The tools build beside their target and rename
    at the end, so an interrupted one leaves its target as it was."""
    newline = "\n" if sys.stderr.isatty() else ""
    print(f"{newline}runledger {tool}: interrupted; {left}", file=sys.stderr)
    return 130


def add_read_model_commands(sub: Any) -> None:
    """replay, verify, swap, export, in this order in ``runledger --help``."""
    replay = sub.add_parser(
        "replay",
        help="rebuild every projection from offset 0 into a new DuckDB file",
        description="Read ledger.events from offset 0 to its current end and build a new "
        "read model with the bulk path (fold in memory, append events in large batches, "
        "write final states once). A progress line goes to stderr.",
    )
    replay.add_argument("--to", required=True, metavar="NEW.duckdb", help="the file to build")
    replay.add_argument("--force", action="store_true", help="replace NEW.duckdb if it exists")
    add_data_dir(replay)
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
    verify.add_argument(
        "--limit",
        type=non_negative_int,
        default=20,
        metavar="N",
        help="differing rows shown per table (default 20)",
    )
    add_data_dir(verify)
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
        type=positive_seconds,
        default=600.0,
        metavar="S",
        help="how long the node may take to catch the new file up (default 600)",
    )
    add_data_dir(swap)
    swap.set_defaults(func=cmd_swap)

    export = sub.add_parser(
        "export",
        help="write the events and every projection table as Parquet",
        description="Write OUT/ledger_events.parquet (decoded from the log: envelope "
        "columns, partition, offset, data as JSON) and OUT/<table>.parquet for every table "
        "of a fresh replay (or of --db FILE, opened read-only). OUT holds exactly one "
        "export: it is built in a folder beside OUT and renamed into place at the end, "
        "replacing an earlier export there (only the files listed in its "
        "runledger-export.json); a failed export leaves OUT as it was. A folder holding "
        "files runledger export did not write is refused and left untouched.",
    )
    export.add_argument(
        "--format", choices=["parquet"], default="parquet", help="the file format (parquet)"
    )
    export.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="a new or empty folder, or an earlier export's (replaced whole)",
    )
    export.add_argument("--db", metavar="FILE", help="export this DuckDB file's tables instead")
    add_data_dir(export)
    export.set_defaults(func=cmd_export)
