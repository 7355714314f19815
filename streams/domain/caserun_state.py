"""A CaseRun's state and its steps: statuses, parts, and reading a Case's step list.

:func:`read_steps` validates a Case's steps (each an action and, unless empty, an
assertion) and returns typed :class:`CaseStepState` values; ``evolve`` and ``decide`` in
:mod:`streams.domain.caserun` build on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.domain.command_fields import InvalidCommand, canonical

AGGREGATE = "caserun"

QUEUED = "queued"
WORKING = "working"
PASSED = "passed"
FAILED = "failed"
CANCELLED = "cancelled"
PART_STATUSES = (QUEUED, WORKING, PASSED, FAILED)
RUN_STATUSES = (QUEUED, WORKING, PASSED, FAILED, CANCELLED)
RUN_ACTIVE = frozenset({QUEUED, WORKING})
RUN_TERMINAL = frozenset({PASSED, FAILED, CANCELLED})

ACTION = "action"
ASSERTION = "assertion"
PARTS = (ACTION, ASSERTION)

MAX_CASE_STEPS = 500


# -- state ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PartState:
    status: str = QUEUED
    time_started: int | None = None
    time_completed: int | None = None
    exception: str | None = None


@dataclass(frozen=True, slots=True)
class CaseStepState:
    """One step: ``action_json``/``assertion_json`` as copied from the Case; a step with
    no assertion has ``assertion`` None, one with no action (the Case allows a step that
    only asserts) ``action`` None."""

    index: int
    action_json: str | None
    assertion_json: str | None
    action: PartState | None = PartState()
    assertion: PartState | None = None
    screenshot: str | None = None  # artifact hash of the failing part's screenshot

    def part(self, name: str) -> PartState | None:
        return self.action if name == ACTION else self.assertion


@dataclass(frozen=True, slots=True)
class CaseRunState:
    """A CaseRun after its events up to ``seq``; times are microseconds, UTC."""

    id: str
    account: str
    created_by: str
    site_id: str
    case_id: str
    title: str
    steps_json: str
    time_created: int
    steps: tuple[CaseStepState, ...]
    flowrun_id: str | None = None
    node_id: str | None = None
    seq: int = 0
    status: str = QUEUED
    time_started: int | None = None
    time_completed: int | None = None
    time_updated: int = 0
    deleted: bool = False
    exception: str | None = None  # the failing part's exception

    def parts(self) -> list[tuple[int, str, PartState]]:
        """Every part in the order it runs."""
        out = []
        for step in self.steps:
            if step.action is not None:
                out.append((step.index, ACTION, step.action))
            if step.assertion is not None:
                out.append((step.index, ASSERTION, step.assertion))
        return out

    def current(self) -> tuple[int, str, PartState] | None:
        """The part that runs now or next: the first one that has not passed."""
        return next((p for p in self.parts() if p[2].status != PASSED), None)


# -- steps ----------------------------------------------------------------------------


def _has_assertion(assertion: Any) -> bool:
    return isinstance(assertion, dict) and bool(assertion.get("type"))


def _has_action(action: Any, where: str) -> bool:
    if action is None:
        return False
    if not isinstance(action, dict) or not isinstance(action.get("type") or "", str):
        raise InvalidCommand(where, f"{where} must be an object with a type")
    return bool((action.get("type") or "").strip())


def read_steps(raw: Any) -> tuple[CaseStepState, ...]:
    """Typed steps from a Case's step list; InvalidCommand for a malformed one.

    A step is ``{"action": {"type": …, …} | null, "assertion": {"type": …, …} | null}``
    with at least one of the two, as the Case validates it; an action or assertion
    without a type (the reference's empty one) does nothing and has no status.
    """
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_CASE_STEPS:
        raise InvalidCommand("steps", f"steps must be a list of 1 to {MAX_CASE_STEPS} steps")
    steps = []
    for i, item in enumerate(raw):
        where = f"steps[{i}]"
        if not isinstance(item, dict):
            raise InvalidCommand(where, f"{where} must be an object")
        action, assertion = item.get("action"), item.get("assertion")
        acts = _has_action(action, f"{where}.action")
        if assertion is not None and not isinstance(assertion, dict):
            raise InvalidCommand(f"{where}.assertion", f"{where}.assertion must be an object")
        asserts = _has_assertion(assertion)
        if not acts and not asserts:
            field = f"{where}.action"  # the part a step cannot do without an assertion
            raise InvalidCommand(field, f"{where} needs an action or an assertion with a type")
        steps.append(
            CaseStepState(
                index=i,
                action_json=canonical(action, f"{where}.action") if acts else None,
                assertion_json=canonical(assertion, f"{where}.assertion") if asserts else None,
                action=PartState() if acts else None,
                assertion=PartState() if asserts else None,
            )
        )
    return tuple(steps)
