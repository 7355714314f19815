"""Commands: requests to change one aggregate, and the validation of their bodies.

``parse_body`` is the one place a command's fields are checked, used by the API
(to answer 422 before anything is published) and by the decider (which trusts no
producer).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from streams.domain.events import StepDefinition

MAX_TEXT = 10_000
MAX_ID = 200
MAX_STEPS = 500
MAX_JSON = 256_000
# Deeper documents parse but cannot be rendered back by the recursive json encoder
# everywhere (the API answered 500 after the command was already accepted).
MAX_JSON_DEPTH = 100
AVRO_INT_MAX = 2**31 - 1  # step order is an Avro ``int``: other languages read 32 bits


class InvalidCommand(ValueError):
    """A command's field is missing or unusable; ``field`` names it."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Body:
    NAME: ClassVar[str] = ""


@dataclass(frozen=True, slots=True)
class CreateProcess(Body):
    NAME: ClassVar[str] = "process.create"
    process_type: str
    site: str | None = None
    info_json: str = "{}"
    steps: tuple[StepDefinition, ...] = ()


@dataclass(frozen=True, slots=True)
class StartProcess(Body):
    NAME: ClassVar[str] = "process.start"


@dataclass(frozen=True, slots=True)
class ReportProgress(Body):
    NAME: ClassVar[str] = "process.progress"
    progress: float
    message: str | None = None


@dataclass(frozen=True, slots=True)
class StartStep(Body):
    NAME: ClassVar[str] = "process.step_start"
    step_id: str


@dataclass(frozen=True, slots=True)
class CompleteStep(Body):
    NAME: ClassVar[str] = "process.step_complete"
    step_id: str
    message: str | None = None


@dataclass(frozen=True, slots=True)
class FailStep(Body):
    NAME: ClassVar[str] = "process.step_fail"
    step_id: str
    exception: str


@dataclass(frozen=True, slots=True)
class AppendLog(Body):
    NAME: ClassVar[str] = "process.log"
    message: str
    level: str = "info"


@dataclass(frozen=True, slots=True)
class RequestReview(Body):
    NAME: ClassVar[str] = "process.waiting_review"
    result_summary_json: str | None = None


@dataclass(frozen=True, slots=True)
class Approve(Body):
    NAME: ClassVar[str] = "process.approve"


@dataclass(frozen=True, slots=True)
class CompleteProcess(Body):
    NAME: ClassVar[str] = "process.complete"
    object_id: str | None = None
    result_summary_json: str | None = None


@dataclass(frozen=True, slots=True)
class FailProcess(Body):
    NAME: ClassVar[str] = "process.fail"
    exception: str


@dataclass(frozen=True, slots=True)
class CancelProcess(Body):
    NAME: ClassVar[str] = "process.cancel"
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class RetryProcess(Body):
    NAME: ClassVar[str] = "process.retry"


@dataclass(frozen=True, slots=True)
class RestartFromStep(Body):
    NAME: ClassVar[str] = "process.restart"
    step_id: str


@dataclass(frozen=True, slots=True)
class DeleteProcess(Body):
    NAME: ClassVar[str] = "process.delete"


@dataclass(frozen=True, slots=True)
class CreateToken(Body):
    NAME: ClassVar[str] = "account.token_create"
    token_hash: str
    name: str


@dataclass(frozen=True, slots=True)
class RevokeToken(Body):
    NAME: ClassVar[str] = "account.token_revoke"
    token_hash: str


@dataclass(frozen=True, slots=True)
class Command:
    """A request to change one aggregate. ``issued_at`` is microseconds, UTC.

    ``issued_at`` becomes the ``occurred_at`` of the events it causes, so deciding is
    a pure function of the command and the state.
    """

    command_id: str
    aggregate_type: str
    aggregate_id: str
    issued_at: int
    account: str
    actor: str
    correlation_id: str
    causation_id: str
    body: Body
    reply_to: str | None = None

    @property
    def name(self) -> str:
        return self.body.NAME


# -- validation -----------------------------------------------------------------------

LOG_LEVELS = ("debug", "info", "warning", "error")


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
    naming ``field`` when it is nested too deep, too large or not plain JSON."""
    if _deeper_than(value, MAX_JSON_DEPTH):
        raise InvalidCommand(field, f"{field} is nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (ValueError, TypeError, RecursionError) as exc:  # NaN, Infinity, too deep
        raise InvalidCommand(field, f"{field} is not plain JSON: {exc}") from exc
    if len(text) > MAX_JSON:
        raise InvalidCommand(field, f"{field} is larger than {MAX_JSON} bytes")
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
    return float(value)


def parse_body(name: str, data: Mapping[str, Any]) -> Body:
    """The typed body of command ``name`` from its JSON fields.

    Raises InvalidCommand naming the first unusable field, or an unknown command name.
    """
    if name == CreateProcess.NAME:
        return CreateProcess(
            process_type=_text(data, "type", required=True, limit=MAX_ID),
            site=_text(data, "site", required=False, limit=MAX_ID),
            info_json=_json_text(data, "info", default="{}") or "{}",
            steps=_steps(data),
        )
    if name == ReportProgress.NAME:
        return ReportProgress(_progress(data), _text(data, "message", required=False))
    if name in (StartStep.NAME, RestartFromStep.NAME):
        step_id = _text(data, "step_id", required=True, limit=MAX_ID)
        return StartStep(step_id) if name == StartStep.NAME else RestartFromStep(step_id)
    if name == CompleteStep.NAME:
        return CompleteStep(
            _text(data, "step_id", required=True, limit=MAX_ID),
            _text(data, "message", required=False),
        )
    if name == FailStep.NAME:
        return FailStep(
            _text(data, "step_id", required=True, limit=MAX_ID),
            _text(data, "exception", required=True),
        )
    if name == AppendLog.NAME:
        level = data.get("level", "info")
        if level not in LOG_LEVELS:
            raise InvalidCommand("level", f"level must be one of {', '.join(LOG_LEVELS)}")
        return AppendLog(_text(data, "message", required=True), level)
    if name == RequestReview.NAME:
        return RequestReview(_json_text(data, "result_summary", default=None))
    if name == CompleteProcess.NAME:
        return CompleteProcess(
            _text(data, "object_id", required=False, limit=MAX_ID),
            _json_text(data, "result_summary", default=None),
        )
    if name == FailProcess.NAME:
        return FailProcess(_text(data, "exception", required=True))
    if name == CancelProcess.NAME:
        return CancelProcess(_text(data, "reason", required=False))
    if name == CreateToken.NAME:
        return CreateToken(
            _text(data, "token_hash", required=True, limit=MAX_ID),
            _text(data, "name", required=False, limit=MAX_ID) or "token",
        )
    if name == RevokeToken.NAME:
        return RevokeToken(_text(data, "token_hash", required=True, limit=MAX_ID))
    simple = {cls.NAME: cls for cls in (StartProcess, Approve, RetryProcess, DeleteProcess)}
    if name in simple:
        return simple[name]()
    parser = _definition_parsers().get(name)
    if parser is not None:
        return parser(data)
    raise InvalidCommand(None, f"unknown command {name!r}")


_DEFINITION_PARSERS: dict[str, Callable[[Mapping[str, Any]], Body]] = {}


def _definition_parsers() -> dict[str, Callable[[Mapping[str, Any]], Body]]:
    """The body parsers of the definition aggregates (Site, Flow, Case) and of the
    runs (FlowRun, CaseRun).

    Imported on first use: those modules build on this one (Body, InvalidCommand).
    """
    if not _DEFINITION_PARSERS:
        from streams.domain import case, caserun, flow, flowrun, site

        for module in (site, flow, case):
            _DEFINITION_PARSERS.update(module.BODY_PARSERS)
        for bodies, parse in (
            (flowrun.BODIES, flowrun.parse_flowrun_body),
            (caserun.BODIES, caserun.parse_caserun_body),
        ):
            for body in bodies:
                _DEFINITION_PARSERS[body.NAME] = functools.partial(parse, body.NAME)
    return _DEFINITION_PARSERS


def body_to_payload(body: Body) -> dict[str, Any]:
    """The JSON fields of a body, the inverse of :func:`parse_body`."""
    out: dict[str, Any] = {}
    for key in body.__dataclass_fields__:
        value = getattr(body, key)
        if key == "process_type":
            out["type"] = value
        elif key == "steps":
            out["steps"] = [
                {"id": s.step_id, "name": s.name, "order": s.order, "enabled": s.enabled}
                for s in value
            ]
        elif key.endswith("_json"):
            out[key[: -len("_json")]] = None if value is None else json.loads(value)
        else:
            out[key] = value
    return out
