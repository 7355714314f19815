"""How a Process changes with each of its events: ``evolve``, and nothing else.

Pure: the state after an event depends on the state and the event only (no clock, no
ids, no I/O), so the decider, the projector, replay and as-of all fold the same way.
``evolve`` is on the projector's hot path: it copies the state once per event, without
``dataclasses.replace``'s per-field loop. ``decide`` in :mod:`streams.domain.process`
only emits events that fold here.
"""

from __future__ import annotations

from dataclasses import fields
from operator import attrgetter
from typing import Any

from streams.domain import events as e
from streams.domain.process_state import (
    CANCELLED,
    COMPLETED,
    FAILED,
    PENDING,
    RUNNING,
    WAITING_REVIEW,
    ProcessState,
    StepState,
    next_order,
)

_NAMES = tuple(f.name for f in fields(ProcessState))
_ALL_FIELDS = attrgetter(*_NAMES)
_INDEX = {name: i for i, name in enumerate(_NAMES)}
_STEP_NAMES = tuple(f.name for f in fields(StepState))
_ALL_STEP_FIELDS = attrgetter(*_STEP_NAMES)
_STEP_INDEX = {name: i for i, name in enumerate(_STEP_NAMES)}


def _step_copy(step: StepState, changes: dict[str, Any]) -> StepState:
    """``dataclasses.replace`` of a step without its per-field loop (see ``_copy``)."""
    values = list(_ALL_STEP_FIELDS(step))
    for name, value in changes.items():
        values[_STEP_INDEX[name]] = value
    return StepState(*values)


def _with_step(state: ProcessState, step_id: str, **changes: object) -> tuple[StepState, ...]:
    steps = list(state.steps)
    for i, step in enumerate(steps):
        if step.step_id == step_id:
            steps[i] = _step_copy(step, changes)
            return tuple(steps)
    steps.append(_step_copy(StepState(step_id, step_id, next_order(state)), changes))
    return tuple(steps)


def _steps_where(steps: tuple[StepState, ...], current: str, **changes: object) -> tuple:
    # ``current``, not ``status``: callers pass ``status=`` among the changes.
    return tuple(_step_copy(s, changes) if s.status == current else s for s in steps)


def _reset(step: StepState) -> StepState:
    return StepState(step.step_id, step.name, step.order, step.enabled)


def evolve(state: ProcessState | None, event: e.Event) -> ProcessState:
    """The Process after ``event``. Pure: no clock, no ids, no I/O.

    Raises ValueError for an event that cannot follow ``state`` (an event of another
    aggregate, or anything but ``created`` first); the decider never emits one.
    """
    data = event.data
    t = event.occurred_at
    if state is None:
        if not isinstance(data, e.ProcessCreated):
            raise ValueError(f"{event.type} cannot be the first event of a process")
        return ProcessState(
            id=event.aggregate_id,
            account=event.account,
            type=data.process_type,
            created_by=event.actor,
            site=data.site,
            info_json=data.info_json,
            time_created=t,
            seq=event.seq,
            time_updated=t,
            steps=tuple(StepState(s.step_id, s.name, s.order, s.enabled) for s in data.steps),
        )
    changes = _changes(state, data, t)
    changes["seq"] = event.seq
    changes["time_updated"] = t
    return _copy(state, changes)


def _copy(state: ProcessState, changes: dict[str, Any]) -> ProcessState:
    """``dataclasses.replace`` without its per-field Python loop: the projector's hot path."""
    values = list(_ALL_FIELDS(state))
    for name, value in changes.items():
        values[_INDEX[name]] = value
    return ProcessState(*values)


def _changes(s: ProcessState, data: e.Payload, t: int) -> dict[str, Any]:  # noqa: C901
    """The fields ``data`` changes, so ``evolve`` copies the state once per event."""
    if isinstance(data, e.ProgressReported):
        if data.message is None:
            return dict(progress=data.progress)
        return dict(progress=data.progress, message=data.message)
    if isinstance(data, e.StepStarted):
        steps = _with_step(
            s, data.step_id, status=RUNNING, time_started=t, time_completed=None, exception=None
        )
        return dict(steps=steps)
    if isinstance(data, e.StepCompleted):
        steps = _with_step(
            s, data.step_id, status=COMPLETED, time_completed=t, message=data.message
        )
        return dict(steps=steps)
    if isinstance(data, e.StepFailed):
        steps = _with_step(
            s, data.step_id, status=FAILED, time_completed=t, exception=data.exception
        )
        return dict(steps=steps)
    if isinstance(data, e.LogAppended):
        return dict(message=data.message)
    if isinstance(data, e.ProcessStarted):
        return dict(status=RUNNING, time_started=s.time_started or t)
    if isinstance(data, e.ReviewRequested):
        summary = data.result_summary_json or s.result_summary_json
        return dict(status=WAITING_REVIEW, result_summary_json=summary)
    if isinstance(data, e.ProcessCompleted):
        # As failed and cancelled do: no ended Process keeps a step running.
        steps = _steps_where(s.steps, RUNNING, status=COMPLETED, time_completed=t)
        return dict(
            steps=steps,
            status=COMPLETED,
            success=True,
            progress=100.0,
            object_id=data.object_id or s.object_id,
            result_summary_json=data.result_summary_json or s.result_summary_json,
            time_completed=t,
        )
    if isinstance(data, e.ProcessFailed):
        steps = _steps_where(s.steps, RUNNING, status=FAILED, time_completed=t)
        return dict(
            status=FAILED, success=False, exception=data.exception, time_completed=t, steps=steps
        )
    if isinstance(data, e.ProcessCancelled):
        steps = _steps_where(s.steps, RUNNING, status=CANCELLED, time_completed=t)
        return dict(status=CANCELLED, success=False, time_completed=t, steps=steps)
    if isinstance(data, e.ProcessRetried):
        return dict(
            status=PENDING,
            attempt=data.attempt,
            progress=0.0,
            success=False,
            exception=None,
            object_id=None,
            result_summary_json=None,
            time_started=None,
            time_completed=None,
            steps=tuple(_reset(step) for step in s.steps),
        )
    if isinstance(data, e.ProcessRestarted):
        from_step = s.step(data.step_id)
        cut = from_step.order if from_step is not None else 0
        return dict(
            status=PENDING,
            attempt=data.attempt,
            success=False,
            exception=None,
            time_completed=None,
            steps=tuple(_reset(step) if step.order >= cut else step for step in s.steps),
        )
    if isinstance(data, e.ProcessDeleted):
        return dict(deleted=True)
    if isinstance(data, e.ProcessCreated):
        raise ValueError(f"process {s.id} is created twice")
    raise ValueError(f"{data.TYPE} is not a process event")
