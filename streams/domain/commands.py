"""Commands: requests to change one aggregate, their bodies, and reading a body.

``parse_body`` is the one place a command's fields are checked, used by the API
(to answer 422 before anything is published) and by the decider (which trusts no
producer). The checks of single fields, and their limits, live in
:mod:`streams.domain.command_fields`; they are re-exported here, so callers keep
writing ``commands.InvalidCommand`` or ``commands.MAX_ID``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from streams.domain.command_fields import (  # noqa: F401 (re-exported: callers write commands.<name>)
    AVRO_INT_MAX,
    LOG_LEVELS,
    MAX_ID,
    MAX_JSON,
    MAX_JSON_DEPTH,
    MAX_STEPS,
    MAX_TEXT,
    InvalidCommand,
    _deeper_than,
    _json_text,
    _progress,
    _steps,
    _text,
    _utf8,
    canonical,
)
from streams.domain.events import StepDefinition


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


# -- reading a body -------------------------------------------------------------------


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
