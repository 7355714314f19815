"""States as plain JSON-ready dicts and back: for outcomes, as-of answers and caches."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from streams.domain.process import ProcessState, StepState


def process_to_dict(state: ProcessState) -> dict[str, Any]:
    return asdict(state)


def process_from_dict(data: dict[str, Any]) -> ProcessState:
    """Inverse of :func:`process_to_dict`; KeyError/TypeError on a malformed dict."""
    fields = dict(data)
    fields["steps"] = tuple(StepState(**s) for s in fields.get("steps", ()))
    return ProcessState(**fields)
