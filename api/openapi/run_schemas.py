"""Sites, Flows, Cases, FlowRuns and CaseRuns as JSON Schemas (issue 3's objects)."""

from __future__ import annotations

from typing import Any

from api.openapi.values import NULL_STR as _NULL_STR
from api.openapi.values import TEXT as _TEXT_SCHEMA
from api.openapi.values import TIME as _TIME
from api.openapi.values import ref as _ref

RUN_SCHEMAS: dict[str, Any] = {
    "Site": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "site_url": {"type": "string", "format": "uri"},
            "account": {"type": "string"},
            "user": {"type": "string"},
            "time_created": _TIME,
        },
    },
    "SiteCreate": {
        "type": "object",
        "required": ["site_url"],
        "additionalProperties": False,
        "properties": {"site_url": {"type": "string", "examples": ["https://example.com"]}},
    },
    "FlowNode": {
        "type": "object",
        "required": ["id", "data"],
        "properties": {
            "id": {"type": "string"},
            "data": {
                "type": "object",
                "required": ["task_type"],
                "properties": {
                    "task_type": {"enum": ["scan", "case", "webhook", "slack", "email", "wait"]},
                    "type": {"type": ["array", "null"], "items": {"type": "string"}},
                    "configs": {"type": ["object", "null"]},
                    "start_if": {"enum": ["passed", "failed", None]},
                    "conditions": {
                        "type": ["array", "null"],
                        "maxItems": 4,
                        "items": {
                            "type": "object",
                            "properties": {
                                "parent": {"type": "string"},
                                "status": {"enum": ["passed", "failed"]},
                            },
                        },
                    },
                    "threshold": {"type": ["number", "null"], "minimum": 0, "maximum": 100},
                    "case_id": _NULL_STR,
                    "uri": _NULL_STR,
                    "request_type": {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE"]},
                    "email": _NULL_STR,
                },
            },
            "position": {"type": "object"},
        },
    },
    "FlowEdge": {
        "type": "object",
        "required": ["id", "source", "target"],
        "properties": {
            "id": {"type": "string"},
            "source": {"type": "string"},
            "target": {"type": "string"},
        },
    },
    "Flow": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "title": {"type": "string"},
            "nodes": {"type": "array", "items": _ref("FlowNode")},
            "edges": {"type": "array", "items": _ref("FlowEdge")},
            "configs": {"type": "object"},
            "account": {"type": "string"},
            "user": {"type": "string"},
            "time_created": _TIME,
        },
    },
    "FlowCreate": {
        "type": "object",
        "required": ["name", "nodes"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string"},
            "nodes": {"type": "array", "maxItems": 100, "items": _ref("FlowNode")},
            "edges": {"type": "array", "items": _ref("FlowEdge")},
            "configs": {"type": "object", "properties": {"end_on_fail": {"type": "boolean"}}},
        },
    },
    "CaseStep": {
        "type": "object",
        "properties": {
            "action": {
                "type": "object",
                "properties": {
                    "type": {"enum": ["navigate", "click", "change", "keyDown", "wait", ""]},
                    "path": _TEXT_SCHEMA,
                    "value": _TEXT_SCHEMA,
                    "key": _TEXT_SCHEMA,
                    "element": {"type": "object"},
                },
            },
            "assertion": {
                "type": "object",
                "properties": {
                    "type": {"enum": ["exists", "match", "visible", ""]},
                    "value": _TEXT_SCHEMA,
                    "operator": {"enum": ["equals", "contains", "regex"]},
                    "element": {"type": "object"},
                },
            },
        },
    },
    "Case": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "title": {"type": "string"},
            "site": {"type": "string"},
            "type": {"enum": ["recorded", "generated"]},
            "steps": {"type": "array", "items": _ref("CaseStep")},
            "num_steps": {"type": "integer"},
            "account": {"type": "string"},
            "user": {"type": "string"},
            "time_created": _TIME,
        },
    },
    "CaseCreate": {
        "type": "object",
        "required": ["site_id", "name", "steps"],
        "additionalProperties": False,
        "properties": {
            "site_id": {"type": "string"},
            "name": {"type": "string"},
            "steps": {"type": "array", "maxItems": 200, "items": _ref("CaseStep")},
            "type": {"const": "recorded"},
        },
    },
    "CaseGenerate": {
        "type": "object",
        "required": ["site_id"],
        "additionalProperties": False,
        "properties": {
            "site_id": {"type": "string"},
            "max_layers": {"type": "integer", "minimum": 1, "maximum": 20, "default": 10},
            "prompt": {"type": "string", "maxLength": 10000},
        },
    },
    "FlowRunNode": {
        "type": "object",
        "description": "A Flow node as copied into the run; data carries the run state.",
        "properties": {
            "id": {"type": "string"},
            "data": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "description": "The node's id, as the node's."},
                    "task_type": {"enum": ["scan", "case", "webhook", "slack", "email", "wait"]},
                    "status": {"enum": ["queued", "working", "passed", "failed", "skipped"]},
                    "attempt": {"type": "integer"},
                    "time_started": _TIME,
                    "time_completed": _TIME,
                    "exception": _NULL_STR,
                    "reason": _NULL_STR,
                    "object_id": _NULL_STR,
                    "result": {},
                },
            },
        },
    },
    "FlowRun": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "user": {"type": "string"},
            "account": {"type": "string"},
            "site": {"type": "string"},
            "flow": {"type": "string"},
            "title": {"type": "string"},
            "status": {"enum": ["queued", "working", "passed", "failed", "cancelled"]},
            "attempt": {"type": "integer"},
            "nodes": {"type": "array", "items": _ref("FlowRunNode")},
            "edges": {"type": "array", "items": _ref("FlowEdge")},
            "logs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "timestamp": _TIME,
                        "message": {"type": "string"},
                        "step": _NULL_STR,
                    },
                },
            },
            "configs": {"type": "object", "properties": {"end_on_fail": {"type": "boolean"}}},
            "time_created": _TIME,
            "time_started": _TIME,
            "time_completed": _TIME,
            "time_updated": _TIME,
        },
    },
    "FlowRunCreate": {
        "type": "object",
        "required": ["site_id", "flow_id"],
        "additionalProperties": False,
        "properties": {
            "site_id": {"type": "string"},
            "flow_id": {"type": "string"},
            "configs": {
                "type": "object",
                "properties": {"end_on_fail": {"type": "boolean"}},
                "additionalProperties": False,
            },
        },
    },
    "FlowRunStatus": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "status": {"type": "string"},
            "attempt": {"type": "integer"},
            "time_started": _TIME,
            "time_completed": _TIME,
            "duration_seconds": {"type": ["number", "null"]},
            "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
            "nodes": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "task_type": {"type": "string"},
                        "status": {"type": "string"},
                        "attempt": {"type": "integer"},
                        "time_started": _TIME,
                        "time_completed": _TIME,
                        "duration_seconds": {"type": ["number", "null"]},
                        "exception": _NULL_STR,
                        "reason": _NULL_STR,
                    },
                },
            },
        },
    },
    "CaseRunPart": {
        "type": "object",
        "description": "A step's action or assertion as copied from the Case, with its state.",
        "properties": {
            "type": {"type": "string"},
            "status": {"enum": ["queued", "working", "passed", "failed"]},
            "time_started": _TIME,
            "time_completed": _TIME,
            "exception": _NULL_STR,
        },
    },
    "CaseRun": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "user": {"type": "string"},
            "account": {"type": "string"},
            "site": {"type": "string"},
            "case": {"type": "string"},
            "title": {"type": "string"},
            "status": {"enum": ["queued", "working", "passed", "failed", "cancelled"]},
            "exception": _NULL_STR,
            "flowrun": _NULL_STR,
            "node": _NULL_STR,
            "steps": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "index": {"type": "integer"},
                        "action": _ref("CaseRunPart"),
                        "assertion": {"anyOf": [_ref("CaseRunPart"), {"type": "null"}]},
                        "screenshot": _NULL_STR,
                    },
                },
            },
            "time_created": _TIME,
            "time_started": _TIME,
            "time_completed": _TIME,
            "time_updated": _TIME,
        },
    },
    "CaseRunCreate": {
        "type": "object",
        "required": ["site_id", "case_id"],
        "additionalProperties": False,
        "properties": {"site_id": {"type": "string"}, "case_id": {"type": "string"}},
    },
}
