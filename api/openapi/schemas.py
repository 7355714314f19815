"""The objects of the API as JSON Schemas: errors, Processes, steps, events, commands.

The definitions and runs are in :mod:`api.openapi.run_schemas`; :data:`SCHEMAS` joins them.
"""

from __future__ import annotations

from typing import Any

from api.openapi.run_schemas import RUN_SCHEMAS
from api.openapi.values import NULL_STR as _NULL_STR
from api.openapi.values import TIME as _TIME

# Every error code the API answers with; docs/api.md's error table gives their statuses.
ERROR_CODES = (
    "invalid_json",
    "invalid_query",
    "invalid_idempotency_key",
    "invalid_correlation_id",
    "invalid_last_event_id",
    "invalid_hash",
    "unauthenticated",
    "invalid_token",
    "not_found",
    "method_not_allowed",
    "invalid_state",
    "already_exists",
    "body_too_large",
    "unsupported_media_type",
    "invalid_field",
    "too_many_streams",
    "internal",
    "ledger_unavailable",
    "wait_timeout",
)

LEDGER_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {"enum": list(ERROR_CODES)},
                    "message": {"type": "string"},
                    "field": _NULL_STR,
                },
                "required": ["code", "message", "field"],
            }
        },
    },
    "Process": {
        "type": "object",
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "site": _NULL_STR,
            "type": {"type": "string"},
            "status": {
                "enum": ["pending", "running", "waiting_review", "completed", "failed", "cancelled"]
            },
            "progress": {"type": "number", "minimum": 0, "maximum": 100},
            "success": {"type": "boolean"},
            "exception": _NULL_STR,
            "object_id": _NULL_STR,
            "info": {"type": "object"},
            "info_url": {"type": "null"},
            "result_summary": {"type": ["object", "null"]},
            "message": _NULL_STR,
            "attempt": {"type": "integer"},
            "created_by": {"type": "string"},
            "time_created": _TIME,
            "time_started": _TIME,
            "time_completed": _TIME,
            "time_updated": _TIME,
        },
    },
    "ProcessCreate": {
        "type": "object",
        "required": ["type"],
        "additionalProperties": False,
        "properties": {
            "type": {"type": "string", "examples": ["case.generate"]},
            "site": _NULL_STR,
            "info": {"type": "object"},
            "steps": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id"],
                    "additionalProperties": False,
                    "properties": {
                        "id": {"type": "string"},
                        "name": {"type": "string"},
                        "order": {"type": "integer"},
                        "enabled": {"type": "boolean"},
                    },
                },
            },
        },
    },
    "RunStatus": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "status": {"type": "string"},
            "attempt": {"type": "integer"},
            "time_started": _TIME,
            "time_completed": _TIME,
            "duration_seconds": {"type": ["number", "null"]},
        },
    },
    "Step": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "order": {"type": "integer"},
            "enabled": {"type": "boolean"},
            "status": {"type": "string"},
        },
    },
    "StepRunStatus": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "status": {"type": "string"},
            "time_started": _TIME,
            "time_completed": _TIME,
            "duration_seconds": {"type": ["number", "null"]},
            "message": _NULL_STR,
            "exception": _NULL_STR,
        },
    },
    "Event": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "seq": {"type": "integer"},
            "type": {"type": "string"},
            "status": {"type": "string"},
            "message": _NULL_STR,
            "created_at": _TIME,
            "actor": {"type": "string"},
            "command_id": {"type": "string"},
            "correlation_id": {"type": "string"},
            "data": {"type": "object"},
            "position": {"type": "string", "examples": ["0:1234"]},
        },
    },
    "Accepted": {
        "type": "object",
        "properties": {
            "command_id": {"type": "string"},
            "status": {"const": "pending"},
            "message": {"type": "string"},
            "aggregate_type": {"type": "string"},
            "aggregate_id": {"type": "string"},
            "status_url": _NULL_STR,
        },
    },
    "CommandStatus": {
        "type": "object",
        "properties": {
            "command_id": {"type": "string"},
            "command": {"type": "string"},
            "aggregate_type": {"type": "string"},
            "aggregate_id": {"type": "string"},
            "status": {"enum": ["pending", "accepted", "rejected"]},
            "duplicate": {"type": "boolean"},
            "position": _NULL_STR,
            "http_status": {"type": ["integer", "null"]},
            "error": {"type": ["object", "null"]},
        },
    },
}

SCHEMAS: dict[str, Any] = {**LEDGER_SCHEMAS, **RUN_SCHEMAS}
