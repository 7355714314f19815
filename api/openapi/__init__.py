"""The OpenAPI 3.1 document, built from the route table plus a description per operation.

``openapi_document`` raises KeyError for a route without a description here, and a
test walks every route, so an endpoint cannot ship undocumented.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.routing import BaseRoute, Route

from api.openapi.operations import NO_FIELDS, OPERATIONS, STREAMS
from api.openapi.schemas import SCHEMAS
from api.openapi.values import ref as _ref

PARAMS: dict[str, dict[str, Any]] = {
    "limit": {"schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10}},
    "offset": {"schema": {"type": "integer", "minimum": 0, "default": 0}},
    "type": {"schema": {"type": "string"}},
    "object_id": {"schema": {"type": "string"}},
    "site_id": {"schema": {"type": "string"}},
    "site": {"schema": {"type": "string"}, "description": "The same as site_id."},
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
    "400": "Malformed request: query (also a parameter given twice), JSON, "
    "Idempotency-Key, X-Correlation-Id "
    "(invalid_query, invalid_json, invalid_idempotency_key, invalid_correlation_id)",
    "401": "Missing or unknown token (unauthenticated, invalid_token)",
    "404": "No such object for this account (not_found)",
    "409": "The command does not fit the current state (invalid_state, already_exists)",
    "413": "Body too large (body_too_large)",
    "415": "Body is not JSON (unsupported_media_type)",
    "422": "A field is unusable or unknown (the body has a field the operation does not "
    "take); error.field names it (invalid_field)",
    "500": "The node failed to answer; its log has the cause (internal)",
    "503": "Kafka did not acknowledge the command (ledger_unavailable)",
    "504": "The node did not catch up within the wait (wait_timeout)",
}
# What a request can fail with, by kind of operation; every other 400 is a bad query.
_COMMAND_ERRORS = ("400", "401", "404", "409", "413", "415", "422", "500", "503")
_WAITING_READ_ERRORS = ("400", "401", "404", "500", "504")
_OTHER_READ_ERRORS = ("401", "404", "500")
_BAD_REQUEST = {
    "/artifact/{hash}": "The hash is not 64 lowercase hex digits (invalid_hash)",
    "/stream": "A type or status no streamed event can have (invalid_query), or a "
    "Last-Event-ID that is not a cursor of this ledger (invalid_last_event_id)",
}
for _path in STREAMS - {"/stream"}:
    _BAD_REQUEST[_path] = (
        "A Last-Event-ID that is not PARTITION:OFFSET of this ledger (invalid_last_event_id)"
    )


def _errors(method: str, path: str, query: list[str]) -> dict[str, str]:
    """The error statuses of an operation, with what each means there."""
    if method in ("POST", "DELETE"):
        codes: tuple[str, ...] = _COMMAND_ERRORS
    elif "wait" in query:  # reads that honour ?wait / ?after can time out
        codes = _WAITING_READ_ERRORS
    else:
        codes = _OTHER_READ_ERRORS
    found = {code: _ERRORS[code] for code in codes}
    if path == "/command/{command_id}":  # its wait ends in pending or 404, never in 504
        found.pop("504", None)
    if path in _BAD_REQUEST:
        found["400"] = _BAD_REQUEST[path]
    if path in STREAMS:
        found["429"] = "The account has its limit of open streams on this node (too_many_streams)"
    return dict(sorted(found.items()))


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
        "/case/generate",
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
        for code, text in _errors(method, path, query).items():
            responses[code] = {
                "description": text,
                "content": {"application/json": {"schema": _ref("Error")}},
            }
    op: dict[str, Any] = {"summary": summary, "parameters": params, "responses": responses}
    if body is None and method in ("POST", "DELETE"):
        body = NO_FIELDS  # a command without fields: no body, or {}; any field is a 422
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
