"""The Case aggregate: a browser test of a Site, as a list of steps.

A step is ``{"action": {...}, "assertion": {...}}`` as in the reference Case:
``action.type`` is ``navigate`` (``path`` or ``value``: a path on the site or an
http(s) URL), ``click`` (``element``), ``change`` (``element`` and the ``value`` to
fill in), ``keyDown`` (``key``, a name Playwright can press: ``Enter``, ``a``,
``Control+A``; see :mod:`streams.domain.key_names`) or ``wait`` (``value`` milliseconds);
``assertion.type`` is ``exists`` or ``visible`` (``element``), or ``match``
(``element``, the expected ``value`` and ``operator``: ``equals`` (default),
``contains`` or ``regex``, a Python regular expression searched in the element's
text). An empty or missing type means no action / no assertion; a step has at least
one. An ``element`` is ``{"selector": css, "xpath": xpath}`` with at least one set.

That the Case's Site exists is checked by the API against the read model: ``decide``
sees one aggregate only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar
from urllib.parse import urlsplit

from streams.domain import commands as c
from streams.domain import events as e
from streams.domain.commands import MAX_ID, MAX_TEXT, InvalidCommand
from streams.domain.definition import canonical_json, decoded, require_live, require_new
from streams.domain.envelope import event
from streams.domain.key_names import unknown_key_part, unknown_key_sentence
from streams.domain.rejection import INVALID, Rejected
from streams.domain.site import http_url

AGGREGATE = "case"

ACTIONS = ("navigate", "click", "change", "keyDown", "wait")
ASSERTIONS = ("exists", "match", "visible")
MATCH_OPERATORS = ("equals", "contains", "regex")
CASE_TYPES = ("recorded", "generated")
MAX_CASE_STEPS = 200
MAX_WAIT_MS = 300_000


@dataclass(frozen=True, slots=True)
class CreateCase(c.Body):
    NAME: ClassVar[str] = "case.create"
    site_id: str
    name: str
    steps_json: str
    case_type: str = "recorded"


@dataclass(frozen=True, slots=True)
class DeleteCase(c.Body):
    NAME: ClassVar[str] = "case.delete"


# -- validation -------------------------------------------------------------------------


def _string(part: dict[str, Any], key: str, where: str, *, required: bool) -> str:
    value = part.get(key)
    if value is None:
        value = ""
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise InvalidCommand(f"{where}.{key}", f"{where}.{key} must be a string")
    if required and not value.strip():
        raise InvalidCommand(f"{where}.{key}", f"{where}.{key} is required")
    return value


def _element(part: dict[str, Any], where: str) -> None:
    element = part.get("element")
    field = f"{where}.element"
    if not isinstance(element, dict):
        raise InvalidCommand(field, f"{field} must be an object with a selector or an xpath")
    selector = _string(element, "selector", field, required=False)
    xpath = _string(element, "xpath", field, required=False)
    if not selector.strip() and not xpath.strip():
        raise InvalidCommand(field, f"{field} needs a selector or an xpath")


def _navigate_target(action: dict[str, Any], where: str) -> None:
    target = _string(action, "path", where, required=False) or _string(
        action, "value", where, required=False
    )
    if not target.strip():
        raise InvalidCommand(f"{where}.path", f"{where}.path (or value) is required to navigate")
    try:  # "file:/etc/passwd" has a scheme but no "//"; the runner would refuse it
        scheme = urlsplit(target).scheme
    except ValueError as exc:
        raise InvalidCommand(f"{where}.path", f"{where}.path is not a valid URL: {exc}") from exc
    if "://" in target or scheme:
        http_url(target, f"{where}.path")


def _key(action: dict[str, Any], where: str) -> None:
    """A key Playwright can press (``Enter``, ``a``, ``Control+A``): an unknown name is
    otherwise only found when a runner presses it. A space is a key, so no strip."""
    field = f"{where}.key"
    key = _string(action, "key", where, required=False)
    if not key:
        raise InvalidCommand(field, f"{field} is required, e.g. Enter")
    part = unknown_key_part(key)
    if part is not None:
        raise InvalidCommand(field, f"{field} {unknown_key_sentence(key, part)}")


def _wait_ms(action: dict[str, Any], where: str) -> None:
    value = action.get("value")
    try:
        ms = float(value) if isinstance(value, str | int | float) else -1.0
    except (ValueError, OverflowError):  # float() of a huge int overflows
        ms = -1.0
    if isinstance(value, bool) or not 0 <= ms <= MAX_WAIT_MS:
        raise InvalidCommand(
            f"{where}.value", f"{where}.value must be milliseconds from 0 to {MAX_WAIT_MS}"
        )


def _check_action(action: dict[str, Any], where: str) -> bool:
    kind = action.get("type") or ""
    if kind == "":
        return False
    if kind not in ACTIONS:
        raise InvalidCommand(f"{where}.type", f"{where}.type must be one of {', '.join(ACTIONS)}")
    if kind == "navigate":
        _navigate_target(action, where)
    elif kind == "click":
        _element(action, where)
    elif kind == "change":
        _element(action, where)
        _string(action, "value", where, required=False)
    elif kind == "keyDown":
        _key(action, where)
    else:
        _wait_ms(action, where)
    return True


def _check_assertion(assertion: dict[str, Any], where: str) -> bool:
    kind = assertion.get("type") or ""
    if kind == "":
        return False
    if kind not in ASSERTIONS:
        raise InvalidCommand(
            f"{where}.type", f"{where}.type must be one of {', '.join(ASSERTIONS)}"
        )
    _element(assertion, where)
    if kind == "match":
        value = _string(assertion, "value", where, required=False)
        operator = assertion.get("operator", "equals")
        if operator not in MATCH_OPERATORS:
            raise InvalidCommand(
                f"{where}.operator", f"{where}.operator must be one of {', '.join(MATCH_OPERATORS)}"
            )
        if operator == "regex":
            try:
                re.compile(value)
            except (re.error, RecursionError, OverflowError) as exc:
                raise InvalidCommand(
                    f"{where}.value", f"{where}.value is not a valid regular expression: {exc}"
                ) from exc
    return True


def _check_steps(raw: Any) -> list[Any]:
    if not isinstance(raw, list):
        raise InvalidCommand("steps", "steps must be a list")
    if not raw:
        raise InvalidCommand("steps", "a case needs at least one step")
    if len(raw) > MAX_CASE_STEPS:
        raise InvalidCommand("steps", f"at most {MAX_CASE_STEPS} steps")
    for i, step in enumerate(raw):
        where = f"steps[{i}]"
        if not isinstance(step, dict):
            raise InvalidCommand(where, f"{where} must be an object")
        parts = []
        for key, check in (("action", _check_action), ("assertion", _check_assertion)):
            part = step.get(key)
            if part is None:
                continue
            if not isinstance(part, dict):
                raise InvalidCommand(f"{where}.{key}", f"{where}.{key} must be an object")
            parts.append(check(part, f"{where}.{key}"))
        if not any(parts):
            raise InvalidCommand(where, f"{where} needs an action or an assertion")
    return raw


def parse_create(data: Mapping[str, Any]) -> CreateCase:
    """A CreateCase from ``{site_id, name, steps, type?}``; InvalidCommand naming the
    first unusable field by its path (``steps[3].assertion.value``)."""
    site_id = c._text(data, "site_id", required=True, limit=MAX_ID)
    name = c._text(data, "name", required=True, limit=MAX_ID)
    case_type = data.get("type", data.get("case_type", "recorded"))
    if case_type not in CASE_TYPES:
        raise InvalidCommand("type", f"type must be one of {', '.join(CASE_TYPES)}")
    steps = _check_steps(decoded("steps", data.get("steps")))
    return CreateCase(site_id, name, canonical_json("steps", steps), case_type)


BODY_PARSERS: dict[str, Callable[[Mapping[str, Any]], c.Body]] = {
    CreateCase.NAME: parse_create,
    DeleteCase.NAME: lambda data: DeleteCase(),
}


# -- state --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CaseState:
    """A Case after its events; ``steps_json`` is canonical JSON text of the steps."""

    id: str
    account: str
    site_id: str
    name: str
    case_type: str
    steps_json: str
    created_by: str
    time_created: int
    seq: int = 0
    deleted: bool = False
    time_deleted: int | None = None


def evolve(state: CaseState | None, ev: e.Event) -> CaseState:
    """The Case after ``ev``; ValueError for an event that cannot follow ``state``."""
    data = ev.data
    if state is None:
        if not isinstance(data, e.CaseCreated):
            raise ValueError(f"{ev.type} cannot be the first event of a case")
        return CaseState(
            ev.aggregate_id,
            ev.account,
            data.site_id,
            data.name,
            data.case_type,
            data.steps_json,
            ev.actor,
            ev.occurred_at,
            ev.seq,
        )
    if isinstance(data, e.CaseDeleted):
        return replace(state, seq=ev.seq, deleted=True, time_deleted=ev.occurred_at)
    raise ValueError(f"{ev.type} cannot follow seq {state.seq} of case {state.id}")


def decide(state: CaseState | None, cmd: c.Command) -> list[e.Event]:
    """The events of a case command; Rejected when it does not fit ``state``."""
    body = cmd.body
    if isinstance(body, CreateCase):
        require_new(AGGREGATE, state, cmd)
        created = e.CaseCreated(body.site_id, body.name, body.steps_json, body.case_type)
        return [event(AGGREGATE, 1, cmd, created)]
    if isinstance(body, DeleteCase):
        live: CaseState = require_live(AGGREGATE, state, cmd)
        return [event(AGGREGATE, live.seq + 1, cmd, e.CaseDeleted())]
    raise Rejected(INVALID, f"{cmd.name} is not a case command")
