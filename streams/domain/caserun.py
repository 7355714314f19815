"""The CaseRun aggregate: ``decide``, ``evolve`` and reading command bodies.

Run statuses: queued → working → passed | failed | cancelled. Each step has an action
and, unless the Case gave none, an assertion; each part goes queued → working → passed
| failed, strictly in order (step 0's action, step 0's assertion, step 1's action, …).
The first failed part fails the run; passing the last part passes it. Re-reporting a
fact already recorded is rejected (``invalid_state``), so a runner that replays a case
after a crash records each part once. Deleted runs answer every command with
``not_found``.

The state and the steps live in :mod:`streams.domain.caserun_state`, the payloads and
bodies in :mod:`streams.domain.caserun_messages`; both are re-exported here, so callers
keep writing ``caserun.CaseRunState`` or ``caserun.CaseStepPassed``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from streams.domain import commands as c
from streams.domain import envelope
from streams.domain import events as e
from streams.domain.caserun_messages import (  # noqa: F401 (re-exported: callers write caserun.<name>)
    BODIES,
    PAYLOADS,
    CancelCaseRun,
    CaseRunCancelled,
    CaseRunCompleted,
    CaseRunCreated,
    CaseRunDeleted,
    CaseStepFail,
    CaseStepFailed,
    CaseStepPass,
    CaseStepPassed,
    CaseStepStart,
    CaseStepStarted,
    CreateCaseRun,
    DeleteCaseRun,
)
from streams.domain.caserun_state import (  # noqa: F401 (re-exported: callers write caserun.<name>)
    ACTION,
    AGGREGATE,
    ASSERTION,
    CANCELLED,
    FAILED,
    MAX_CASE_STEPS,
    PART_STATUSES,
    PARTS,
    PASSED,
    QUEUED,
    RUN_ACTIVE,
    RUN_STATUSES,
    RUN_TERMINAL,
    WORKING,
    CaseRunState,
    CaseStepState,
    PartState,
    read_steps,
)
from streams.domain.commands import Body, InvalidCommand
from streams.domain.events import Payload
from streams.domain.rejection import ALREADY_EXISTS, INVALID, INVALID_STATE, NOT_FOUND, Rejected

_HASH = re.compile(r"[0-9a-f]{16,128}")


# -- evolve ---------------------------------------------------------------------------


def _with_part(s: CaseRunState, index: int, part: str, **changes: Any) -> tuple[CaseStepState, ...]:
    steps = list(s.steps)
    step = steps[index]
    current = step.part(part)
    if current is None:
        raise ValueError(f"step {index} of caserun {s.id} has no {part}")
    moved = replace(current, **changes)
    steps[index] = replace(step, action=moved) if part == ACTION else replace(step, assertion=moved)
    return tuple(steps)


def evolve(state: CaseRunState | None, event: e.Event) -> CaseRunState:
    """The CaseRun after ``event``. Pure: no clock, no ids, no I/O.

    Raises ValueError for an event that cannot follow ``state``; decide never emits one.
    """
    data = event.data
    t = event.occurred_at
    if state is None:
        if not isinstance(data, CaseRunCreated):
            raise ValueError(f"{event.type} cannot be the first event of a caserun")
        try:
            steps = read_steps(json.loads(data.steps_json))
        except InvalidCommand as exc:
            raise ValueError(f"caserun.created carries unusable steps: {exc}") from exc
        return CaseRunState(
            id=event.aggregate_id,
            account=event.account,
            created_by=event.actor,
            site_id=data.site_id,
            case_id=data.case_id,
            title=data.title,
            steps_json=data.steps_json,
            time_created=t,
            steps=steps,
            flowrun_id=data.flowrun_id,
            node_id=data.node_id,
            seq=event.seq,
            time_updated=t,
        )
    return replace(state, seq=event.seq, time_updated=t, **_changes(state, data, t))


def _changes(s: CaseRunState, data: Payload, t: int) -> dict[str, Any]:
    if isinstance(data, CaseStepStarted):
        steps = _with_part(s, data.index, data.part, status=WORKING, time_started=t)
        started = s.time_started if s.time_started is not None else t
        return dict(status=WORKING, time_started=started, steps=steps)
    if isinstance(data, CaseStepPassed):
        return dict(steps=_with_part(s, data.index, data.part, status=PASSED, time_completed=t))
    if isinstance(data, CaseStepFailed):
        failed = _with_part(
            s, data.index, data.part, status=FAILED, time_completed=t, exception=data.exception
        )
        shot = replace(failed[data.index], screenshot=data.screenshot)
        steps = (*failed[: data.index], shot, *failed[data.index + 1 :])
        return dict(steps=steps, exception=data.exception)
    if isinstance(data, CaseRunCompleted):
        return dict(status=data.status, time_completed=t)
    if isinstance(data, CaseRunCancelled):
        steps = s.steps
        for index, part, state in s.parts():
            if state.status == WORKING:
                steps = _with_part(
                    replace(s, steps=steps),
                    index,
                    part,
                    status=FAILED,
                    time_completed=t,
                    exception="cancelled",
                )
        return dict(status=CANCELLED, time_completed=t, steps=steps)
    if isinstance(data, CaseRunDeleted):
        return dict(deleted=True)
    if isinstance(data, CaseRunCreated):
        raise ValueError(f"caserun {s.id} is created twice")
    raise ValueError(f"{data.TYPE} is not a caserun event")


# -- decide ---------------------------------------------------------------------------


def _events(state: CaseRunState | None, cmd: c.Command, *payloads: Payload) -> list[e.Event]:
    return envelope.events(AGGREGATE, state.seq if state is not None else 0, cmd, *payloads)


def _require(state: CaseRunState, doing: str) -> None:
    if state.status not in RUN_ACTIVE:
        raise Rejected(INVALID_STATE, f"cannot {doing} caserun {state.id}: it is {state.status}")


def _part(state: CaseRunState, index: int, part: str) -> PartState:
    if not 0 <= index < len(state.steps):
        raise Rejected(NOT_FOUND, f"caserun {state.id} has no step {index}", "index")
    found = state.steps[index].part(part)
    if found is None:
        raise Rejected(NOT_FOUND, f"step {index} of caserun {state.id} has no {part}", "part")
    return found


def decide(state: CaseRunState | None, cmd: c.Command) -> list[e.Event]:  # noqa: C901
    """The events command ``cmd`` causes on ``state`` (None: no such CaseRun yet).

    Raises Rejected with a code and a sentence when the command does not fit.
    """
    body = cmd.body
    if isinstance(body, CreateCaseRun):
        if state is not None:
            raise Rejected(ALREADY_EXISTS, f"caserun {cmd.aggregate_id} already exists")
        created = CaseRunCreated(
            body.site_id,
            body.case_id,
            body.steps_json,
            body.title,
            body.flowrun_id,
            body.node_id,
            body.site_url,
        )
        return _events(None, cmd, created)
    if state is None or state.deleted or state.account != cmd.account:
        raise Rejected(NOT_FOUND, f"caserun {cmd.aggregate_id} not found")
    if isinstance(body, DeleteCaseRun):
        if state.status in RUN_ACTIVE:
            return _events(state, cmd, CaseRunCancelled("deleted"), CaseRunDeleted())
        return _events(state, cmd, CaseRunDeleted())
    if isinstance(body, CancelCaseRun):
        _require(state, "cancel")
        return _events(state, cmd, CaseRunCancelled(body.reason))
    if isinstance(body, CaseStepStart | CaseStepPass | CaseStepFail):
        _require(state, "report a step of")
        part = _part(state, body.index, body.part)
        where = f"{body.part} of step {body.index}"
        if isinstance(body, CaseStepStart):
            current = state.current()
            if current is None or current[:2] != (body.index, body.part) or part.status != QUEUED:
                raise Rejected(INVALID_STATE, f"cannot start the {where}: it is {part.status}")
            return _events(state, cmd, CaseStepStarted(body.index, body.part))
        if part.status != WORKING:
            raise Rejected(INVALID_STATE, f"cannot report the {where}: it is {part.status}")
        if isinstance(body, CaseStepFail):
            failed = CaseStepFailed(body.index, body.part, body.exception, body.screenshot)
            return _events(state, cmd, failed, CaseRunCompleted(FAILED))
        passed = CaseStepPassed(body.index, body.part)
        last = state.parts()[-1][:2] == (body.index, body.part)
        return _events(state, cmd, passed, *((CaseRunCompleted(PASSED),) if last else ()))
    raise Rejected(INVALID, f"{cmd.name} is not a caserun command")


# -- validation -----------------------------------------------------------------------


def _index(data: Mapping[str, Any]) -> int:
    value = data.get("index")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_CASE_STEPS:
        raise InvalidCommand(
            "index", f"index must be a whole number from 0 to {MAX_CASE_STEPS - 1}"
        )
    return value


def _part_name(data: Mapping[str, Any]) -> str:
    value = data.get("part")
    if value not in PARTS:
        raise InvalidCommand("part", "part must be action or assertion")
    return str(value)


def parse_caserun_body(name: str, data: Mapping[str, Any]) -> Body:
    """The typed body of CaseRun command ``name`` from its JSON fields.

    Raises InvalidCommand naming the first unusable field, or an unknown command name.
    """
    if name == CreateCaseRun.NAME:
        raw = data.get("steps")
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except (ValueError, RecursionError) as exc:
                raise InvalidCommand("steps", "steps is not valid JSON") from exc
        read_steps(raw)
        return CreateCaseRun(
            site_id=c._text(data, "site_id", required=True, limit=c.MAX_ID),
            case_id=c._text(data, "case_id", required=True, limit=c.MAX_ID),
            steps_json=c.canonical(raw, "steps"),
            title=c._text(data, "title", required=False) or "",
            flowrun_id=c._text(data, "flowrun_id", required=False, limit=c.MAX_ID),
            node_id=c._text(data, "node_id", required=False, limit=c.MAX_ID),
            site_url=c._text(data, "site_url", required=False) or "",
        )
    if name in (CaseStepStart.NAME, CaseStepPass.NAME):
        cls = CaseStepStart if name == CaseStepStart.NAME else CaseStepPass
        return cls(_index(data), _part_name(data))
    if name == CaseStepFail.NAME:
        screenshot = c._text(data, "screenshot", required=False, limit=c.MAX_ID)
        if screenshot is not None and not _HASH.fullmatch(screenshot):
            raise InvalidCommand("screenshot", "screenshot must be an artifact hash (hex)")
        return CaseStepFail(
            _index(data), _part_name(data), c._text(data, "exception", required=True), screenshot
        )
    if name == CancelCaseRun.NAME:
        return CancelCaseRun(c._text(data, "reason", required=False))
    if name == DeleteCaseRun.NAME:
        return DeleteCaseRun()
    raise InvalidCommand(None, f"unknown command {name!r}")
