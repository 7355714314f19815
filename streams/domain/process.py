"""The Process aggregate: ``decide``, with its state and ``evolve`` re-exported.

Statuses: pending → running → (waiting_review →) completed | failed | cancelled.
A terminal Process moves again only through retry (from failed) or a restart from
a step. Deleted Processes answer every command with ``not_found``.

The state lives in :mod:`streams.domain.process_state`, ``evolve`` in
:mod:`streams.domain.process_evolution`; both are re-exported here, so callers keep
writing ``process.ProcessState``, ``process.TERMINAL`` or ``process.evolve``.
"""

from __future__ import annotations

from streams.domain import commands as c
from streams.domain import envelope
from streams.domain import events as e
from streams.domain.process_evolution import evolve  # noqa: F401 (re-exported)
from streams.domain.process_state import (  # noqa: F401 (re-exported: callers write process.<name>)
    ACTIVE,
    AGGREGATE,
    CANCELLED,
    COMPLETED,
    FAILED,
    PENDING,
    RUNNING,
    STATUSES,
    STEP_STATUSES,
    TERMINAL,
    WAITING_REVIEW,
    ProcessState,
    StepState,
    next_order,
)
from streams.domain.rejection import ALREADY_EXISTS, INVALID, INVALID_STATE, NOT_FOUND, Rejected

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
        if step is None and next_order(state) > c.AVRO_INT_MAX:
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
