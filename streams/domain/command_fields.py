"""Command fields: the limits on a command's JSON fields and the checks that read them.

Every body parser (:func:`streams.domain.commands.parse_body` and the aggregates' own)
reads its fields through these, so a field is refused the same way whichever command
carries it: :class:`InvalidCommand` naming the field and saying what is wrong.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from streams.domain.events import StepDefinition

MAX_TEXT = 10_000
MAX_ID = 200
MAX_STEPS = 500
MAX_JSON = 256_000
# Deeper documents parse but cannot be rendered back by the recursive json encoder
# everywhere (the API answered 500 after the command was already accepted).
MAX_JSON_DEPTH = 100
AVRO_INT_MAX = 2**31 - 1  # step order is an Avro ``int``: other languages read 32 bits

LOG_LEVELS = ("debug", "info", "warning", "error")


class InvalidCommand(ValueError):
    """A command's field is missing or unusable; ``field`` names it."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _utf8(value: str) -> bool:
    """Whether Avro (UTF-8) can carry ``value``: JSON allows lone surrogates like "\\ud800"."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text(data: Mapping[str, Any], key: str, *, required: bool, limit: int = MAX_TEXT) -> Any:
    value = data.get(key)
    if value is None:
        if required:
            raise InvalidCommand(key, f"{key} is required")
        return None
    if not isinstance(value, str):
        raise InvalidCommand(key, f"{key} must be a string")
    if not _utf8(value):
        raise InvalidCommand(key, f"{key} is not valid Unicode text (lone surrogate)")
    if required and not value.strip():
        raise InvalidCommand(key, f"{key} must not be empty")
    if len(value) > limit:
        raise InvalidCommand(key, f"{key} is longer than {limit} characters")
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests objects/arrays more than ``limit`` levels (no recursion)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


def _json_text(data: Mapping[str, Any], key: str, *, default: str | None) -> str | None:
    """A JSON object field, kept as canonical JSON text (sorted keys)."""
    value = data.get(key)
    if value is None:
        return default
    if isinstance(value, str):  # already encoded (a decoded command payload)
        try:
            value = json.loads(value)
        except (ValueError, RecursionError) as exc:
            raise InvalidCommand(key, f"{key} is not valid JSON") from exc
    if not isinstance(value, dict):
        raise InvalidCommand(key, f"{key} must be a JSON object")
    return canonical(value, key)


def canonical(value: Any, field: str) -> str:
    """``value`` as canonical JSON text (sorted keys, ASCII, no spaces); InvalidCommand
    naming ``field`` when it is nested too deep, too large, not plain JSON or not valid
    Unicode (a lone surrogate)."""
    if _deeper_than(value, MAX_JSON_DEPTH):
        raise InvalidCommand(field, f"{field} is nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (ValueError, TypeError, RecursionError) as exc:  # NaN, Infinity, too deep
        raise InvalidCommand(field, f"{field} is not plain JSON: {exc}") from exc
    if len(text) > MAX_JSON:
        raise InvalidCommand(field, f"{field} is larger than {MAX_JSON} bytes")
    # The ASCII text escapes a lone surrogate ("\\ud800"), so it encodes; the same
    # document read back does not, and every response showing it failed (500).
    if "\\ud" in text and not _utf8(json.dumps(value, ensure_ascii=False)):
        raise InvalidCommand(field, f"{field} is not valid Unicode text (lone surrogate)")
    return text


def _steps(data: Mapping[str, Any]) -> tuple[StepDefinition, ...]:
    raw = data.get("steps")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InvalidCommand("steps", "steps must be a list")
    if len(raw) > MAX_STEPS:
        raise InvalidCommand("steps", f"at most {MAX_STEPS} steps")
    steps: list[StepDefinition] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        where = f"steps[{i}]"
        if not isinstance(item, dict):
            raise InvalidCommand(where, f"{where} must be an object")
        step_id = item.get("id", item.get("step_id"))
        if (
            not isinstance(step_id, str)
            or not step_id.strip()
            or len(step_id) > MAX_ID
            or not _utf8(step_id)
        ):
            raise InvalidCommand(f"{where}.id", f"{where}.id must be a non-empty string")
        if "/" in step_id or step_id in (".", ".."):
            # A step is addressed as /process/{id}/steps/{step_id}/...: such an id
            # could never be started, completed, restarted or read over HTTP.
            raise InvalidCommand(
                f"{where}.id", f"{where}.id must not contain '/' nor be '.' or '..'"
            )
        if step_id in seen:
            raise InvalidCommand(f"{where}.id", f"step id {step_id!r} appears twice")
        seen.add(step_id)
        name = item.get("name", step_id)
        if not isinstance(name, str) or len(name) > MAX_TEXT or not _utf8(name):
            raise InvalidCommand(f"{where}.name", f"{where}.name must be a string")
        enabled = item.get("enabled", True)
        if not isinstance(enabled, bool):
            raise InvalidCommand(f"{where}.enabled", f"{where}.enabled must be true or false")
        order = item.get("order", i + 1)
        if not isinstance(order, int) or isinstance(order, bool) or abs(order) > AVRO_INT_MAX:
            raise InvalidCommand(
                f"{where}.order", f"{where}.order must be a whole number within ±{AVRO_INT_MAX}"
            )
        steps.append(StepDefinition(step_id=step_id, name=name, order=order, enabled=enabled))
    return tuple(sorted(steps, key=lambda s: (s.order, s.step_id)))


def _progress(data: Mapping[str, Any]) -> float:
    value = data.get("progress")
    if value is None:
        raise InvalidCommand("progress", "progress is required")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidCommand("progress", "progress must be a number")
    # Range first: math.isfinite converts to float, which overflows on a huge int.
    if not 0 <= value <= 100 or not math.isfinite(value):
        raise InvalidCommand("progress", "progress must be between 0 and 100")
    return float(value) + 0.0  # -0.0 + 0.0 is 0.0: no "progress": -0.0 in reads
