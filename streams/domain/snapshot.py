"""States as plain JSON-ready dicts and back: for outcomes, as-of answers and caches."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from streams.domain import caserun, flowrun
from streams.domain.aggregates import DEFINITION_STATES
from streams.domain.process import ProcessState, StepState


def process_to_dict(state: ProcessState) -> dict[str, Any]:
    return asdict(state)


def process_from_dict(data: dict[str, Any]) -> ProcessState:
    """Inverse of :func:`process_to_dict`; KeyError/TypeError on a malformed dict."""
    fields = dict(data)
    fields["steps"] = tuple(StepState(**s) for s in fields.get("steps", ()))
    return ProcessState(**fields)


def is_definition(state: Any) -> bool:
    """Whether ``state`` is a Site, Flow or Case (a flat state: asdict round-trips it)."""
    return type(state) in DEFINITION_STATES.values()


def definition_from_dict(aggregate_type: str, data: dict[str, Any]) -> Any:
    """The Site, Flow or Case state of ``asdict(state)``; KeyError for another type,
    TypeError on a malformed dict."""
    return DEFINITION_STATES[aggregate_type](**data)


# -- runs: nested states, whose tuples come back from JSON as lists --------------------


def is_run(state: Any) -> bool:
    """Whether ``state`` is a FlowRun or a CaseRun."""
    return isinstance(state, flowrun.FlowRunState | caserun.CaseRunState)


def run_to_dict(state: flowrun.FlowRunState | caserun.CaseRunState) -> dict[str, Any]:
    """A FlowRun or CaseRun state as a JSON-ready dict (the inverse of the two below)."""
    return asdict(state)


def flownode_from_dict(data: dict[str, Any]) -> flowrun.NodeState:
    """A FlowRun node of ``asdict(node)`` (after a JSON round trip); KeyError/TypeError
    on a malformed dict."""
    fields = dict(data)
    fields["parents"] = tuple(fields.get("parents", ()))
    fields["children"] = tuple(fields.get("children", ()))
    fields["conditions"] = tuple((p, s) for p, s in fields.get("conditions", ()))
    return flowrun.NodeState(**fields)


def flowlog_from_dict(data: dict[str, Any]) -> flowrun.LogLine:
    return flowrun.LogLine(**data)


def flowrun_from_dict(data: dict[str, Any]) -> flowrun.FlowRunState:
    """Inverse of :func:`run_to_dict` for a FlowRun; KeyError/TypeError when malformed."""
    fields = dict(data)
    fields["nodes"] = tuple(flownode_from_dict(n) for n in fields["nodes"])
    fields["logs"] = tuple(flowlog_from_dict(line) for line in fields.get("logs", ()))
    return flowrun.FlowRunState(**fields)


def casestep_from_dict(data: dict[str, Any]) -> caserun.CaseStepState:
    """A CaseRun step of ``asdict(step)``; KeyError/TypeError when malformed."""
    fields = dict(data)
    # A step that only asserts has no action part (a generated Case has such steps).
    if fields["action"] is not None:
        fields["action"] = caserun.PartState(**fields["action"])
    if fields.get("assertion") is not None:
        fields["assertion"] = caserun.PartState(**fields["assertion"])
    return caserun.CaseStepState(**fields)


def caserun_from_dict(data: dict[str, Any]) -> caserun.CaseRunState:
    """Inverse of :func:`run_to_dict` for a CaseRun; KeyError/TypeError when malformed."""
    fields = dict(data)
    fields["steps"] = tuple(casestep_from_dict(s) for s in fields["steps"])
    return caserun.CaseRunState(**fields)


RUN_FROM_DICT = {
    flowrun.AGGREGATE: flowrun_from_dict,
    caserun.AGGREGATE: caserun_from_dict,
}


def run_from_dict(aggregate_type: str, data: dict[str, Any]) -> Any:
    """The FlowRun or CaseRun of :func:`run_to_dict`; KeyError for another type."""
    return RUN_FROM_DICT[aggregate_type](data)
