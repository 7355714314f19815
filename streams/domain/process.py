"""The Process aggregate: its state, ``decide`` and ``evolve``.

Statuses: pending → running → (waiting_review →) completed | failed | cancelled.
A terminal Process moves again only through retry (from failed) or a restart from
a step. Deleted Processes answer every command with ``not_found``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any

from streams.domain import commands as c
from streams.domain import envelope
from streams.domain import events as e
from streams.domain.rejection import ALREADY_EXISTS, INVALID, INVALID_STATE, NOT_FOUND, Rejected

AGGREGATE = "process"

PENDING = "pending"
RUNNING = "running"
WAITING_REVIEW = "waiting_review"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
STATUSES = (PENDING, RUNNING, WAITING_REVIEW, COMPLETED, FAILED, CANCELLED)
TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED})
ACTIVE = frozenset({PENDING, RUNNING, WAITING_REVIEW})

STEP_STATUSES = (PENDING, RUNNING, COMPLETED, FAILED, CANCELLED)


@dataclass(frozen=True, slots=True)
class StepState:
    step_id: str
    name: str
    order: int
    enabled: bool = True
    status: str = PENDING
    time_started: int | None = None
    time_completed: int | None = None
    message: str | None = None
    exception: str | None = None


@dataclass(frozen=True, slots=True)
class ProcessState:
    """A Process after its events up to ``seq``; times are microseconds, UTC."""

    id: str
    account: str
    type: str
    created_by: str
    site: str | None
    info_json: str
    time_created: int
    seq: int = 0
    status: str = PENDING
    progress: float = 0.0
    success: bool = False
    exception: str | None = None
    object_id: str | None = None
    result_summary_json: str | None = None
    message: str | None = None
    attempt: int = 1
    time_started: int | None = None
    time_completed: int | None = None
    time_updated: int = 0
    deleted: bool = False
    steps: tuple[StepState, ...] = ()

    def step(self, step_id: str) -> StepState | None:
        for step in self.steps:
            if step.step_id == step_id:
                return step
        return None


_NAMES = tuple(f.name for f in fields(ProcessState))
_ALL_FIELDS = attrgetter(*_NAMES)
_INDEX = {name: i for i, name in enumerate(_NAMES)}
_STEP_NAMES = tuple(f.name for f in fields(StepState))
_ALL_STEP_FIELDS = attrgetter(*_STEP_NAMES)
_STEP_INDEX = {name: i for i, name in enumerate(_STEP_NAMES)}


# -- evolve ---------------------------------------------------------------------------


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
    steps.append(_step_copy(StepState(step_id, step_id, _next_order(state)), changes))
    return tuple(steps)


def _next_order(state: ProcessState) -> int:
    """The order of a step the definition lacks: after the last one."""
    return max((s.order for s in state.steps), default=0) + 1


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


# -- decide ---------------------------------------------------------------------------


def _events(state: ProcessState | None, cmd: c.Command, *payloads: e.Payload) -> list[e.Event]:
    return envelope.events(AGGREGATE, state.seq if state is not None else 0, cmd, *payloads)


def _require(state: ProcessState, allowed: frozenset[str] | tuple[str, ...], doing: str) -> None:
    if state.status not in allowed:
        raise Rejected(
            INVALID_STATE,
            f"cannot {doing} process {state.id}: it is {state.status}",
        )


def _started(state: ProcessState) -> tuple[e.Payload, ...]:
    """A report from a worker on a pending Process implies that the work started."""
    return (e.ProcessStarted(),) if state.status == PENDING else ()


def decide(state: ProcessState | None, cmd: c.Command) -> list[e.Event]:  # noqa: C901
    """The events that command ``cmd`` causes on ``state`` (None: no such Process yet).

    Raises Rejected with a code and a sentence when the command does not fit.
    """
    body = cmd.body
    if isinstance(body, c.CreateProcess):
        if state is not None:
            raise Rejected(ALREADY_EXISTS, f"process {cmd.aggregate_id} already exists")
        created = e.ProcessCreated(body.process_type, body.site, body.info_json, body.steps)
        return _events(None, cmd, created)
    if state is None or state.deleted or state.account != cmd.account:
        raise Rejected(NOT_FOUND, f"process {cmd.aggregate_id} not found")

    if isinstance(body, c.StartProcess):
        _require(state, (PENDING,), "start")
        return _events(state, cmd, e.ProcessStarted())
    if isinstance(body, c.ReportProgress):
        _require(state, (PENDING, RUNNING), "report progress on")
        progress = e.ProgressReported(body.progress, body.message)
        return _events(state, cmd, *_started(state), progress)
    if isinstance(body, c.AppendLog):
        _require(state, ACTIVE, "log to")
        return _events(state, cmd, e.LogAppended(body.message, body.level))
    if isinstance(body, c.StartStep | c.CompleteStep | c.FailStep):
        return _events(state, cmd, *_decide_step(state, body))
    if isinstance(body, c.RequestReview):
        _require(state, (RUNNING,), "send for review")
        return _events(state, cmd, e.ReviewRequested(body.result_summary_json))
    if isinstance(body, c.Approve):
        _require(state, (WAITING_REVIEW,), "approve")
        return _events(state, cmd, e.ProcessCompleted())
    if isinstance(body, c.CompleteProcess):
        _require(state, (PENDING, RUNNING), "complete")
        done = e.ProcessCompleted(body.object_id, body.result_summary_json)
        return _events(state, cmd, *_started(state), done)
    if isinstance(body, c.FailProcess):
        _require(state, ACTIVE, "fail")
        return _events(state, cmd, e.ProcessFailed(body.exception))
    if isinstance(body, c.CancelProcess):
        _require(state, ACTIVE, "cancel")
        return _events(state, cmd, e.ProcessCancelled(body.reason))
    if isinstance(body, c.RetryProcess):
        _require(state, (FAILED,), "retry")
        return _events(state, cmd, e.ProcessRetried(state.attempt + 1))
    if isinstance(body, c.RestartFromStep):
        step = state.step(body.step_id)
        if step is None:
            raise Rejected(NOT_FOUND, f"process {state.id} has no step {body.step_id}", "step_id")
        if not step.enabled:
            raise Rejected(INVALID_STATE, f"step {body.step_id} is disabled", "step_id")
        _require(state, (RUNNING, WAITING_REVIEW, *TERMINAL), "restart")
        return _events(state, cmd, e.ProcessRestarted(body.step_id, state.attempt + 1))
    if isinstance(body, c.DeleteProcess):
        if state.status in ACTIVE:
            return _events(state, cmd, e.ProcessCancelled("deleted"), e.ProcessDeleted())
        return _events(state, cmd, e.ProcessDeleted())
    raise Rejected(INVALID, f"{cmd.name} is not a process command")


def _decide_step(
    state: ProcessState, body: c.StartStep | c.CompleteStep | c.FailStep
) -> tuple[e.Payload, ...]:
    step = state.step(body.step_id)
    if isinstance(body, c.StartStep):
        _require(state, (PENDING, RUNNING), "start a step of")
        if step is None and _next_order(state) > c.AVRO_INT_MAX:
            # The read model (like Avro) keeps a step's order in 32 bits.
            raise Rejected(
                INVALID_STATE,
                f"cannot add step {body.step_id} to process {state.id}: "
                f"no order is left after {c.AVRO_INT_MAX}",
                "step_id",
            )
        if step is not None:
            if not step.enabled:
                raise Rejected(INVALID_STATE, f"step {step.step_id} is disabled", "step_id")
            if step.status in (RUNNING, COMPLETED):
                raise Rejected(INVALID_STATE, f"step {step.step_id} is already {step.status}")
        return (*_started(state), e.StepStarted(body.step_id))
    _require(state, (RUNNING,), "report a step of")
    if step is None:
        raise Rejected(NOT_FOUND, f"process {state.id} has no step {body.step_id}", "step_id")
    if step.status != RUNNING:
        raise Rejected(INVALID_STATE, f"step {step.step_id} is {step.status}, not running")
    if isinstance(body, c.CompleteStep):
        return (e.StepCompleted(body.step_id, body.message),)
    return (e.StepFailed(body.step_id, body.exception),)
