"""States as plain JSON-ready dicts and back: for outcomes, as-of answers and caches."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

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
