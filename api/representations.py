"""The JSON shapes of the API: Process, step, run status, event, page.

Field names follow the reference docs (``../shared/reference``); where they disagree
the choice is written down in ``docs/api.md``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from streams.domain.process import ProcessState, StepState


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
    return int(moment.timestamp() * 1_000_000)


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
