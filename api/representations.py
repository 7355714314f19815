"""The JSON shapes of the API: Process, step, run status, event, page.

Field names follow the reference docs (``../shared/reference``); where they disagree
the choice is written down in ``docs/api.md``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from streams.domain.case import CaseState
from streams.domain.flow import FlowState
from streams.domain.process import ProcessState, StepState
from streams.domain.site import SiteState


def iso(micros: int | None) -> str | None:
    """Microseconds since the epoch as ISO 8601 UTC with a ``Z``."""
    if micros is None:
        return None
    moment = datetime.fromtimestamp(micros / 1_000_000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> int:
    """ISO 8601 (``Z`` or an offset; naive means UTC) to microseconds; ValueError if not."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "+", 1))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # Exact integer arithmetic: a float timestamp may land one microsecond early.
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _duration(start: int | None, end: int | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start) / 1_000_000, 6)


def process_json(p: ProcessState) -> dict[str, Any]:
    return {
        "id": p.id,
        "site": p.site,
        "type": p.type,
        "status": p.status,
        "progress": p.progress,
        "success": p.success,
        "exception": p.exception,
        "object_id": p.object_id,
        "info": _json(p.info_json),
        "info_url": None,
        "result_summary": _json(p.result_summary_json),
        "message": p.message,
        "attempt": p.attempt,
        "created_by": p.created_by,
        "time_created": iso(p.time_created),
        "time_started": iso(p.time_started),
        "time_completed": iso(p.time_completed),
        "time_updated": iso(p.time_updated),
    }


def runstatus_json(p: ProcessState) -> dict[str, Any]:
    return {
        "id": p.id,
        "status": p.status,
        "attempt": p.attempt,
        "time_started": iso(p.time_started),
        "time_completed": iso(p.time_completed),
        "duration_seconds": _duration(p.time_started, p.time_completed),
    }


def step_json(s: StepState) -> dict[str, Any]:
    return {
        "id": s.step_id,
        "name": s.name,
        "order": s.order,
        "enabled": s.enabled,
        "status": s.status,
    }


def step_runstatus_json(s: StepState) -> dict[str, Any]:
    return {
        "id": s.step_id,
        "status": s.status,
        "time_started": iso(s.time_started),
        "time_completed": iso(s.time_completed),
        "duration_seconds": _duration(s.time_started, s.time_completed),
        "message": s.message,
        "exception": s.exception,
    }


def site_json(s: SiteState) -> dict[str, Any]:
    return {
        "id": s.id,
        "site_url": s.site_url,
        "account": s.account,
        "user": s.created_by,
        "time_created": iso(s.time_created),
    }


def flow_json(f: FlowState) -> dict[str, Any]:
    return {
        "id": f.id,
        "name": f.name,
        "title": f.name,  # the reference FlowRun calls a Flow's name its title
        "nodes": json.loads(f.nodes_json),
        "edges": json.loads(f.edges_json),
        "configs": json.loads(f.configs_json),
        "account": f.account,
        "user": f.created_by,
        "time_created": iso(f.time_created),
    }


def case_json(c: CaseState) -> dict[str, Any]:
    steps = json.loads(c.steps_json)
    return {
        "id": c.id,
        "name": c.name,
        "title": c.name,  # the reference Case calls it title
        "site": c.site_id,
        "type": c.case_type,
        "steps": steps,
        "num_steps": len(steps),
        "account": c.account,
        "user": c.created_by,
        "time_created": iso(c.time_created),
    }
