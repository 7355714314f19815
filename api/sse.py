"""Server-Sent Events: the wire format and the ids that let a client resume.

A single aggregate's stream uses the event's position, ``PARTITION:OFFSET``, as the id.
The account-wide stream spans partitions, whose offsets do not compare with each
other, so its id is a cursor: the last offset delivered (or skipped) per partition,
``0:41,1:17,2:-1``; the position of the event itself is in ``data.event.position``.
"""

from __future__ import annotations

import json
from typing import Any

from api.errors import ApiError

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
MEDIA_TYPE = "text/event-stream"
HEARTBEAT = b": heartbeat\n\n"
DROPPED = b": dropped: the client did not keep up; reconnect with Last-Event-ID\n\n"

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_ascii_dumps = json.JSONEncoder(separators=(",", ":")).encode


def body(event: str, data: Any) -> bytes:
    """The ``event:`` and ``data:`` lines of a message, UTF-8; ``data`` as JSON on one
    line. Apart from :func:`with_id` so that a body rendered once can go to many
    streams, each with its own id. A lone surrogate recorded in the ledger, which UTF-8
    cannot encode, is sent as its JSON escape (see api/responses.py)."""
    try:
        return f"event: {event}\ndata: {_dumps(data)}\n\n".encode()
    except UnicodeEncodeError:
        return f"event: {event}\ndata: {_ascii_dumps(data)}\n\n".encode()


def with_id(id_: str, body: bytes) -> bytes:
    """``body`` preceded by its ``id:`` line."""
    return b"id: " + id_.encode() + b"\n" + body


def message(event: str, data: Any, id_: str | None = None) -> bytes:
    """One SSE message; ``data`` as JSON on one line."""
    text = body(event, data)
    return text if id_ is None else with_id(id_, text)


def cursor_only(cursor: dict[int, int]) -> bytes:
    """A message with only an ``id:`` line: it sets the client's Last-Event-ID to
    ``cursor`` and dispatches no event (the SSE parsing rules)."""
    return f"id: {cursor_text(cursor)}\n\n".encode()


def position_text(partition: int, offset: int) -> str:
    return f"{partition}:{offset}"


def parse_position(text: str) -> tuple[int, int]:
    """``PARTITION:OFFSET``; ApiError 400 for anything else."""
    try:
        partition, offset = text.strip().split(":")
        found = int(partition), int(offset)
    except ValueError:
        raise ApiError(
            400, "invalid_last_event_id", f"Last-Event-ID {text!r} is not PARTITION:OFFSET"
        ) from None
    if found[0] < 0 or found[1] < 0:
        raise ApiError(400, "invalid_last_event_id", f"Last-Event-ID {text!r} is negative")
    return found


def cursor_text(cursor: dict[int, int]) -> str:
    return ",".join(f"{p}:{o}" for p, o in sorted(cursor.items()))


def parse_cursor(text: str) -> dict[int, int]:
    """``0:41,1:17``; ApiError 400 for anything else."""
    cursor: dict[int, int] = {}
    for part in text.split(","):
        try:
            partition, offset = part.strip().split(":")
            cursor[int(partition)] = int(offset)
        except ValueError:
            raise ApiError(
                400,
                "invalid_last_event_id",
                f"Last-Event-ID {text!r} is not a list of PARTITION:OFFSET",
            ) from None
    return cursor
