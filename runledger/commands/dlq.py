"""``runledger dlq``: the dead letters of ``ledger.dlq``, listed or summed up. See
docs/operations.md, "Dead letters"."""

from __future__ import annotations

import argparse
from typing import Any

from runledger.commands.context import (
    CliError,
    add_data_dir,
    positive_int,
    positive_seconds,
    settings_of,
    topics_of,
)
from runledger.commands.follow import run_reader, start_of

DESCRIPTION = """\
Print what is in ledger.dlq: one JSON line per dead letter (read_committed, every
partition), from --from to the end the topic had when the command began; --follow
goes on like tail. Each line has the letter's time (UTC), partition and offset in
ledger.dlq, reason and error, the source topic/partition/offset it came from, every
header, the key, the value's size and, when the codec reads it, its schema, type and
aggregate (else decode_error).

A dead letter is a message a consumer could not decode or apply: the projector of
every node (source ledger.events) and the decider (source ledger.commands) put it
aside with the reason and go on, so nothing stops, but what it carried is missing
from the read model or was never decided. What to do, by reason:
  unknown_fingerprint  the event's writer schema is newer than this node's schemas/:
                       upgrade the node, then `runledger verify`, `replay --to
                       NEW.duckdb` and `swap --from NEW.duckdb`
  sequence_gap         an event after a missing one (often after an unknown_fingerprint
                       of the same aggregate): the aggregate is frozen in the read
                       model; fix the cause of its first letter, then replay and swap
  undecodable          bytes that are no event (or no command): a foreign producer
                       on the topic
  rejected             evolve refused the event: a bug; report it with the line
  unusable_body        (from the decider) a command whose body did not decode; its
                       sender got an `invalid` rejection
  decide_failed        (from the decider) deciding the command raised: a bug
A message dead-lettered by several nodes appears once per node: --summary counts
letters and distinct source messages.
"""

EPILOG = """\
Exit status: 0 done (also when the reader closes the pipe), 2 a usage error or a
broker or topic that cannot be read (one line on stderr), 130 Ctrl-C.
Examples:
  runledger dlq --summary
  runledger dlq --reason unknown_fingerprint --source ledger.events | jq .decoded
  runledger dlq --from 2026-03-01T00:00:00Z --follow
"""


def cmd_dlq(args: argparse.Namespace) -> int:
    from runledger.dlq import dlq
    from runledger.dlq_letters import LetterFilter, Summary, render_summary
    from schemas import default_codec

    start = start_of(args.start)
    if args.summary and args.follow:
        raise CliError("--summary counts what is there now: it cannot --follow")
    settings = settings_of(args)
    keep = LetterFilter(frozenset(args.reason or ()), tuple(args.source or ()))
    summary = Summary() if args.summary else None

    async def listing() -> None:
        await dlq(
            settings.kafka_bootstrap,
            topics_of(settings).dlq,
            default_codec(),
            start=start,
            keep=keep,
            follow=args.follow,
            summary=summary,
            max_letters=args.max,
            idle_timeout_s=args.idle_timeout,
        )
        if summary is not None:
            print(render_summary(summary), flush=True)

    return run_reader(listing())


def add_dlq_command(sub: Any) -> None:
    """``dlq``, after the commands that read ledger.events."""
    parser = sub.add_parser(
        "dlq",
        help="list the dead letters (messages put aside as undecodable or unappliable)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--from",
        dest="start",
        default="beginning",
        metavar="WHERE",
        help="beginning (default), end or an ISO 8601 time (no zone: UTC)",
    )
    parser.add_argument(
        "--reason",
        action="append",
        metavar="R",
        help="only this reason (unknown_fingerprint, sequence_gap, unusable_body, ...; any "
        "word a writer uses); repeatable",
    )
    parser.add_argument(
        "--source",
        action="append",
        metavar="TOPIC",
        help="only letters from this topic, or a topic ending so (ledger.events); repeatable",
    )
    parser.add_argument("--max", type=positive_int, metavar="N", help="stop after N letters")
    parser.add_argument(
        "--idle-timeout",
        type=positive_seconds,
        metavar="S",
        help="stop after S seconds without a new record",
    )
    parser.add_argument(
        "--follow",
        action="store_true",
        help="keep reading new dead letters, like tail (until Ctrl-C, --max, --idle-timeout)",
    )
    parser.add_argument(
        "--summary",
        action="store_true",
        help="print a table instead: letters and distinct source messages per source "
        "topic and reason, first and last time",
    )
    add_data_dir(parser)
    parser.set_defaults(func=cmd_dlq)
