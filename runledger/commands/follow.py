"""What ``tail`` and ``dlq`` share as commands: reading ``--from``, and running a reader
of a topic until it ends, a broker error or a closed pipe (see runledger/tail.py)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any

from runledger.commands.context import CliError


def start_of(text: str) -> Any:
    """``--from`` as runledger.tail.parse_start reads it; CliError when it cannot."""
    from runledger.tail import parse_start

    try:
        return parse_start(text)
    except ValueError as exc:
        raise CliError(f"--from takes beginning, end or an ISO 8601 time: {exc}") from exc


def run_reader(reader: Coroutine[Any, Any, object]) -> int:
    """Run ``reader`` to its end: 0, also when the reader of our output closed the pipe
    (``runledger tail | head -3``: it has what it wanted, which is how a pipeline ends a
    follower, so a success, also under ``set -o pipefail``, like --max; quietly: nothing
    is left to flush into the closed pipe). A broker or topic error is a CliError."""
    from runledger.tail import detach
    from streams.consumer import ConsumerError
    from streams.topics import TopicError

    try:
        asyncio.run(reader)
    except (ConsumerError, TopicError) as exc:
        raise CliError(str(exc)) from exc
    except BrokenPipeError:
        detach(sys.stdout)
    return 0
