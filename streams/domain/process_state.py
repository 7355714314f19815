"""A Process's state and its steps: statuses, and the values ``evolve`` and ``decide`` share.

Kept apart from :mod:`streams.domain.process_evolution` (how the state changes) and
:mod:`streams.domain.process` (``decide``) so both build on one definition, and readers of
the read model (rows, snapshots, the API) import the values without the transitions.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def next_order(state: ProcessState) -> int:
    """The order of a step the definition lacks: after the last one."""
    return max((s.order for s in state.steps), default=0) + 1
