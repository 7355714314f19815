"""The OpenAPI 3.1 document, built from the route table plus a description per operation.

``openapi_document`` raises KeyError for a route without a description here, and a
test walks every route, so an endpoint cannot ship undocumented.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.routing import BaseRoute, Route

_S = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _S + name}


_NULL_STR = {"type": ["string", "null"]}
_TIME = {"type": ["string", "null"], "format": "date-time"}
_TEXT_SCHEMA = {"type": "string"}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "string"},
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
        "properties": {
            "type": {"type": "string", "examples": ["case.generate"]},
            "site": _NULL_STR,
            "info": {"type": "object"},
            "steps": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id"],
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
            "data": {"type": "object"},
            "position": {"type": "string", "examples": ["0:1234"]},
        },
    },
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
        "properties": {
            "site_id": {"type": "string"},
            "name": {"type": "string"},
            "type": {"const": "recorded"},
            "steps": {"type": "array", "maxItems": 200, "items": _ref("CaseStep")},
        },
    },
    "CaseGenerate": {
        "type": "object",
        "required": ["site_id"],
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
        "properties": {
            "site_id": {"type": "string"},
            "flow_id": {"type": "string"},
            "configs": {"type": "object", "properties": {"end_on_fail": {"type": "boolean"}}},
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
        "properties": {"site_id": {"type": "string"}, "case_id": {"type": "string"}},
    },
    "Accepted": {
        "type": "object",
        "properties": {
            "command_id": {"type": "string"},
            "status": {"const": "accepted"},
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


def _page(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "count": {"type": "integer"},
            "next": _NULL_STR,
            "previous": _NULL_STR,
            "results": {"type": "array", "items": _ref(item)},
        },
    }


def _body(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required or []}


_TEXT = {"type": "string"}
PAGE_PARAMS = ["limit", "offset"]
WAIT_PARAMS = ["wait", "after"]

# (method, path) -> (summary, request body schema or None, 2xx schema, extra query params)
OPERATIONS: dict[tuple[str, str], tuple[str, Any, Any, list[str]]] = {
    ("GET", "/health"): ("Liveness; needs no token.", None, {"type": "object"}, []),
    ("GET", "/artifact/{hash}"): (
        "An artifact (HTML, screenshot, VRT diff) by the sha256 its events carry.",
        None,
        {"type": "string", "format": "binary"},
        [],
    ),
    ("GET", "/metrics"): ("Counters in Prometheus text format.", None, {"type": "string"}, []),
    ("GET", "/openapi.json"): ("This document.", None, {"type": "object"}, []),
    ("GET", "/process"): (
        "List Processes ordered by time_created.",
        None,
        _page("Process"),
        [*PAGE_PARAMS, "type", "object_id", "site_id", "status", *WAIT_PARAMS],
    ),
    ("POST", "/process"): (
        "Create a Process (status pending).",
        _ref("ProcessCreate"),
        _ref("Process"),
        ["wait"],
    ),
    ("GET", "/process/{process_id}"): (
        "Retrieve a Process (as it was at as_of, if given).",
        None,
        _ref("Process"),
        [*WAIT_PARAMS, "as_of"],
    ),
    ("DELETE", "/process/{process_id}"): (
        "Delete a Process; a running one is cancelled first. Its history stays in the ledger.",
        None,
        _body({"message": _TEXT}),
        ["wait"],
    ),
    ("GET", "/process/{process_id}/runstatus"): (
        "Start, finish, duration and status.",
        None,
        _ref("RunStatus"),
        WAIT_PARAMS,
    ),
    ("GET", "/process/{process_id}/steps"): (
        "The steps, in order.",
        None,
        _page("Step"),
        [*PAGE_PARAMS, *WAIT_PARAMS],
    ),
    ("GET", "/process/{process_id}/steps/{step_id}/runstatus"): (
        "A step's run status.",
        None,
        _ref("StepRunStatus"),
        WAIT_PARAMS,
    ),
    ("GET", "/process/{process_id}/events"): (
        "The append-only history, by seq.",
        None,
        _page("Event"),
        [*PAGE_PARAMS, *WAIT_PARAMS],
    ),
    ("POST", "/process/{process_id}/start"): (
        "Mark a pending Process running.",
        None,
        _ref("Process"),
        ["wait"],
    ),
    ("POST", "/process/{process_id}/cancel"): (
        "Cancel a pending, running or waiting_review Process.",
        _body({"reason": _TEXT}),
        _ref("Process"),
        ["wait"],
    ),
    ("POST", "/process/{process_id}/retry"): (
        "Retry a failed Process: back to pending, attempt + 1.",
        None,
        _ref("Process"),
        ["wait"],
    ),
    ("POST", "/process/{process_id}/approve"): (
        "Approve a Process waiting for review: completed.",
        None,
        _ref("Process"),
        ["wait"],
    ),
    ("POST", "/process/{process_id}/review"): (
        "Worker: the result needs review (waiting_review).",
        _body({"result_summary": {"type": "object"}}),
        _ref("Process"),
        ["wait"],
    ),
    ("POST", "/process/{process_id}/progress"): (
        "Worker: report progress 0–100.",
        _body({"progress": {"type": "number"}, "message": _TEXT}, ["progress"]),
        _ref("Process"),
        ["wait"],
    ),
    ("POST", "/process/{process_id}/log"): (
        "Worker: append a log line.",
        _body(
            {"message": _TEXT, "level": {"enum": ["debug", "info", "warning", "error"]}},
            ["message"],
        ),
        _ref("Process"),
        ["wait"],
    ),
    ("POST", "/process/{process_id}/complete"): (
        "Worker: the Process completed.",
        _body({"object_id": _TEXT, "result_summary": {"type": "object"}}),
        _ref("Process"),
        ["wait"],
    ),
    ("POST", "/process/{process_id}/fail"): (
        "Worker: the Process failed.",
        _body({"exception": _TEXT}, ["exception"]),
        _ref("Process"),
        ["wait"],
    ),
    ("POST", "/process/{process_id}/steps/{step_id}/start"): (
        "Worker: a step started.",
        None,
        _ref("Process"),
        ["wait"],
    ),
    ("POST", "/process/{process_id}/steps/{step_id}/complete"): (
        "Worker: a step completed.",
        _body({"message": _TEXT}),
        _ref("Process"),
        ["wait"],
    ),
    ("POST", "/process/{process_id}/steps/{step_id}/fail"): (
        "Worker: a step failed.",
        _body({"exception": _TEXT}, ["exception"]),
        _ref("Process"),
        ["wait"],
    ),
    ("POST", "/process/{process_id}/steps/{step_id}/restart"): (
        "Restart from this step: earlier steps keep their result; this one and later run again.",
        None,
        _ref("Process"),
        ["wait"],
    ),
}


def _definition_operations(noun: str, title: str, extra: list[str]) -> dict[Any, Any]:
    schema = noun.capitalize()
    return {
        ("GET", f"/{noun}"): (
            f"List {title} ordered by time_created.",
            None,
            _page(schema),
            [*PAGE_PARAMS, *extra, *WAIT_PARAMS],
        ),
        ("POST", f"/{noun}"): (
            f"Create a {schema}.",
            _ref(f"{schema}Create"),
            _ref(schema),
            ["wait"],
        ),
        ("GET", f"/{noun}/{{{noun}_id}}"): (
            f"Retrieve a {schema}.",
            None,
            _ref(schema),
            WAIT_PARAMS,
        ),
        ("DELETE", f"/{noun}/{{{noun}_id}}"): (
            f"Delete a {schema}. Its history stays in the ledger.",
            None,
            _body({"message": _TEXT}),
            ["wait"],
        ),
    }


OPERATIONS.update(_definition_operations("site", "Sites", []))
OPERATIONS.update(_definition_operations("flow", "Flows", []))
OPERATIONS.update(_definition_operations("case", "Cases", ["site_id"]))
OPERATIONS[("POST", "/case/generate")] = (
    "Generate a Case by exploring the Site: answers with a Process of type case.generate "
    "whose object_id is the new Case once it completes.",
    _ref("CaseGenerate"),
    _ref("Process"),
    ["wait"],
)


def _run_operations(noun: str, schema: str, created_from: str) -> dict[Any, Any]:
    one = f"/{noun}/{{{noun}_id}}"
    ops = _definition_operations(noun, f"{schema}s", ["site_id"])
    ops[("POST", f"/{noun}")] = (
        f"Create a {schema} from a {created_from}, copied in with everything queued.",
        _ref(f"{schema}Create"),
        _ref(schema),
        ["wait"],
    )
    ops[("DELETE", one)] = (
        f"Delete a {schema}; an active one is cancelled first. Its history stays in the ledger.",
        None,
        _body({"message": _TEXT}),
        ["wait"],
    )
    ops[("POST", f"{one}/cancel")] = (
        f"Cancel a queued or working {schema}.",
        _body({"reason": _TEXT}),
        _ref(schema),
        ["wait"],
    )
    return ops


OPERATIONS.update(_run_operations("flowrun", "FlowRun", "Flow"))
OPERATIONS.update(_run_operations("caserun", "CaseRun", "Case"))
OPERATIONS[("POST", "/flowrun/{flowrun_id}/retry")] = (
    "Retry a failed FlowRun from its failed nodes; passed nodes keep their results.",
    None,
    _ref("FlowRun"),
    ["wait"],
)
OPERATIONS[("GET", "/flowrun/{flowrun_id}/runstatus")] = (
    "Status, start, finish and duration of the run and of each node.",
    None,
    _ref("FlowRunStatus"),
    WAIT_PARAMS,
)
for _noun, _schema in (("flowrun", "FlowRun"), ("caserun", "CaseRun")):
    _one = ("GET", f"/{_noun}/{{{_noun}_id}}")
    _summary, _body_schema, _ok, _query = OPERATIONS[_one]
    OPERATIONS[_one] = (
        f"{_summary.rstrip('.')} (as it was at as_of, if given).",
        _body_schema,
        _ok,
        [*_query, "as_of"],
    )

_STREAM_NOTE = (
    " Server-Sent Events: id, event (the event type), data {state, event}; a heartbeat "
    "comment every few seconds; closes after the node's window. Resume with Last-Event-ID."
)
STREAMS = {"/stream", "/process/{process_id}/stream", "/flowrun/{flowrun_id}/stream"}
STREAMS.add("/caserun/{caserun_id}/stream")
for _noun, _schema in (("process", "Process"), ("flowrun", "FlowRun"), ("caserun", "CaseRun")):
    OPERATIONS[("GET", f"/{_noun}/{{{_noun}_id}}/stream")] = (
        f"Follow one {_schema} live: its history, then each new event; event: done when it "
        "reaches a terminal status." + _STREAM_NOTE,
        None,
        _TEXT,
        ["token", "last_event_id"],
    )
OPERATIONS[("GET", "/command/{command_id}")] = (
    "What came of a command answered 202 (Prefer: respond-async): pending, accepted "
    "(with its position) or rejected (with the error). Known to the node that took it.",
    None,
    _ref("CommandStatus"),
    [],
)
OPERATIONS[("GET", "/stream")] = (
    "Follow every Process, FlowRun and CaseRun event of the token's account from now "
    "(type: event or aggregate types; status: the status after the event)." + _STREAM_NOTE,
    None,
    _TEXT,
    ["type", "status", "token", "last_event_id"],
)

PARAMS: dict[str, dict[str, Any]] = {
    "limit": {"schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10}},
    "offset": {"schema": {"type": "integer", "minimum": 0, "default": 0}},
    "type": {"schema": {"type": "string"}},
    "object_id": {"schema": {"type": "string"}},
    "site_id": {"schema": {"type": "string"}},
    "status": {"schema": {"type": "string"}},
    "wait": {
        "schema": {"type": "boolean"},
        "description": "Wait until this node has applied the write (read your writes).",
    },
    "after": {
        "schema": {"type": "string"},
        "description": "PARTITION:OFFSET from a Ledger-Position header; implies wait.",
    },
    "as_of": {
        "schema": {"type": "string", "format": "date-time"},
        "description": "The state folded from the events up to this time; 404 if none.",
    },
    "token": {
        "schema": {"type": "string"},
        "description": "The API token, for clients that cannot send headers (EventSource); "
        "accepted on stream routes only.",
    },
    "last_event_id": {
        "schema": {"type": "string"},
        "description": "Resume after this event id, like the Last-Event-ID header.",
    },
}

_ERRORS = {
    "400": "Malformed request (query, JSON, Idempotency-Key)",
    "401": "Missing or unknown token",
    "404": "No such object for this account",
    "409": "The command does not fit the current state",
    "413": "Body too large",
    "415": "Body is not JSON",
    "422": "A field is unusable; error.field names it",
    "503": "Kafka did not acknowledge the command",
    "504": "The node did not catch up within the wait",
}


def _operation(method: str, path: str) -> dict[str, Any]:
    summary, body, ok, query = OPERATIONS[(method, path)]
    public = path in ("/health", "/metrics", "/openapi.json")
    params = [
        {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
        for p in re.findall(r"\{(\w+)\}", path)
    ]
    params += [{"name": q, "in": "query", **PARAMS[q]} for q in query]
    if method == "POST":
        params.append({"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}})
    if method in ("POST", "DELETE"):
        params.append(
            {
                "name": "Prefer",
                "in": "header",
                "schema": {"type": "string"},
                "description": "respond-async: answer 202 once the command is durable in "
                "Kafka, without waiting for the decision (Location: /command/{id}).",
            }
        )
    created = method == "POST" and path in (
        "/process",
        "/site",
        "/flow",
        "/case",
        "/flowrun",
        "/caserun",
    )
    ok_code = "201" if created else "200"
    media = "text/event-stream" if path in STREAMS else "application/json"
    responses: dict[str, Any] = {ok_code: {"description": "OK", "content": {media: {"schema": ok}}}}
    if path in STREAMS:
        params.append({"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}})
    if method in ("POST", "DELETE"):
        responses["202"] = {
            "description": "Durable, not yet decided",
            "content": {"application/json": {"schema": _ref("Accepted")}},
        }
    if not public:
        for code, text in _ERRORS.items():
            responses[code] = {
                "description": text,
                "content": {"application/json": {"schema": _ref("Error")}},
            }
    op: dict[str, Any] = {"summary": summary, "parameters": params, "responses": responses}
    if body is not None:
        op["requestBody"] = {"content": {"application/json": {"schema": body}}}
    op["security"] = [] if public else [{"token": []}]
    return op


def openapi_document(routes: list[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI document of ``routes``; KeyError names an undocumented route."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if not isinstance(route, Route) or route.methods is None or not route.include_in_schema:
            continue  # not an API operation (the dashboard's page and files)
        for method in sorted(route.methods - {"HEAD"}):
            paths.setdefault(route.path, {})[method.lower()] = _operation(method, route.path)
    return {
        "openapi": "3.1.0",
        "info": {"title": "runledger", "version": "1", "description": "See docs/api.md."},
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "token": {"type": "apiKey", "in": "header", "name": "Authorization"}
            },
        },
    }
