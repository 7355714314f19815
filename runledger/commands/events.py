"""The commands that read ``ledger.events`` and print what they find: ``audit`` (one
aggregate's history), ``as-of`` (its state at a past time) and ``tail`` (events live).
See docs/operations.md."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING, Any

from runledger.commands.context import (
    CliError,
    add_data_dir,
    positive_int,
    positive_seconds,
    settings_of,
    topics_of,
)
from runledger.commands.follow import run_reader, start_of

if TYPE_CHECKING:
    from runledger.audit import History


def _history(args: argparse.Namespace) -> History:
    """The history of aggregate ``args.id`` read from the log: audit.AuditError for an
    unknown id, CliError when the log cannot be read."""
    from runledger import audit
    from runledger.progress import QuietFirst
    from schemas import default_codec
    from streams.consumer import ConsumerError
    from streams.domain.aggregates import EVOLVERS
    from streams.topics import TopicError

    if not args.id:  # else "no process ... with id ''": an answer to a question not asked
        raise CliError("the id must not be empty: give the aggregate's id (a process id, ...)")
    if args.type and args.type not in EVOLVERS:
        known = ", ".join(EVOLVERS)
        raise CliError(f"--type: unknown aggregate type {args.type!r}; known: {known}")
    settings = settings_of(args)
    types = [args.type] if args.type else None
    try:
        return asyncio.run(
            audit.load(
                settings.kafka_bootstrap,
                topics_of(settings),
                default_codec(),
                args.id,
                types,
                on_progress=QuietFirst(),
            )
        )
    except (ConsumerError, TopicError) as exc:
        raise CliError(str(exc)) from exc


def cmd_audit(args: argparse.Namespace) -> int:
    import json

    from runledger import audit

    try:
        h = _history(args)
    except audit.AuditError as exc:
        print(f"runledger audit: {exc}", file=sys.stderr)
        return 1
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

    try:
        at = audit.parse_time(args.at)
    except ValueError as exc:
        raise CliError(f"--at: {exc}") from exc
    try:
        h = _history(args)
        state = audit.state_as_of(h.events, at)
    except audit.AuditError as exc:
        print(f"runledger as-of: {exc}", file=sys.stderr)
        return 1
    doc = {"aggregate_type": h.aggregate_type, **audit.state_document(state, at)}
    print(json.dumps(doc, ensure_ascii=False) if args.json else audit.render_state(doc))
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    from runledger.tail import Filter, check_types, tail

    start = start_of(args.start)
    try:
        check_types(args.type or ())
    except ValueError as exc:
        raise CliError(f"--type: {exc}") from exc
    settings = settings_of(args)
    keep = Filter(frozenset(args.type or ()), frozenset(args.account or ()))
    return run_reader(
        tail(
            settings.kafka_bootstrap,
            topics_of(settings).events,
            start=start,
            keep=keep,
            max_events=args.max,
            idle_timeout_s=args.idle_timeout,
        )
    )


def add_event_commands(sub: Any) -> None:
    """audit, as-of, tail, in this order in ``runledger --help``."""
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
    add_data_dir(audit)
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
    add_data_dir(as_of)
    as_of.set_defaults(func=cmd_as_of)

    tail = sub.add_parser(
        "tail",
        help="print decoded events as JSON lines, live",
        description="Follow ledger.events (read_committed, every partition) and print each "
        "event as one JSON line (envelope, data, partition, offset) until Ctrl-C, --max, "
        "--idle-timeout or the reader closing the pipe (exit 0). See docs/consumers.md.",
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
        help="beginning, end (default) or an ISO 8601 time (no zone: UTC): the first "
        "event each partition received at or after it (via offsets_for_times)",
    )
    tail.add_argument("--max", type=positive_int, metavar="N", help="stop after N events")
    tail.add_argument(
        "--idle-timeout",
        type=positive_seconds,
        metavar="S",
        help="stop after S seconds without a new event",
    )
    add_data_dir(tail)
    tail.set_defaults(func=cmd_tail)
