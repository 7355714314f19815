"""What Site, Flow and Case share: definitions are created once and deleted once.

Each definition aggregate has a flat frozen state with ``id``, ``account``, ``seq``
and ``deleted``; ``decide`` accepts a create on no state and a delete on a live state
of the caller's account. The helpers here keep the three modules to their own fields.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from streams.domain import commands as c
from streams.domain.commands import MAX_JSON, MAX_JSON_DEPTH, InvalidCommand, _deeper_than, _utf8
from streams.domain.rejection import ALREADY_EXISTS, NOT_FOUND, Rejected


class DefinitionState(Protocol):
    @property
    def account(self) -> str: ...
    @property
    def seq(self) -> int: ...
    @property
    def deleted(self) -> bool: ...


def require_new(aggregate: str, state: DefinitionState | None, cmd: c.Command) -> None:
    """Rejected (already_exists) when the id is taken, even by a deleted definition."""
    if state is not None:
        raise Rejected(ALREADY_EXISTS, f"{aggregate} {cmd.aggregate_id} already exists")


def require_live(aggregate: str, state: DefinitionState | None, cmd: c.Command) -> Any:
    """``state`` when it exists, is not deleted and is the caller's; Rejected otherwise."""
    if state is None or state.deleted or state.account != cmd.account:
        raise Rejected(NOT_FOUND, f"{aggregate} {cmd.aggregate_id} not found")
    return state


def canonical_json(field: str, value: Any) -> str:
    """``value`` as canonical JSON text (sorted keys, UTF-8); InvalidCommand naming
    ``field`` when it is too deep, too large, not plain JSON or not valid Unicode."""
    if _deeper_than(value, MAX_JSON_DEPTH):
        raise InvalidCommand(field, f"{field} is nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        text = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (ValueError, TypeError, RecursionError) as exc:
        raise InvalidCommand(field, f"{field} is not plain JSON: {exc}") from exc
    if not _utf8(text):
        raise InvalidCommand(field, f"{field} is not valid Unicode text (lone surrogate)")
    if len(text) > MAX_JSON:
        raise InvalidCommand(field, f"{field} is larger than {MAX_JSON} bytes")
    return text


def decoded(field: str, value: Any) -> Any:
    """A JSON field as received: the API sends documents, a decoded command may carry
    the canonical text; InvalidCommand when that text is not JSON."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except (ValueError, RecursionError) as exc:
            raise InvalidCommand(field, f"{field} is not valid JSON") from exc
    return value
