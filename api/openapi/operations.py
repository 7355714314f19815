"""Every API operation: (method, path) -> summary, request body, 2xx schema, query params.

A test walks every route of the app against :data:`OPERATIONS`, so an endpoint cannot
ship undocumented.
"""

from __future__ import annotations

from typing import Any

from api.openapi.values import NULL_STR as _NULL_STR
from api.openapi.values import ref as _ref


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
    """An object of ``props`` only: the API refuses any other field (422)."""
    return {
        "type": "object",
        "properties": props,
        "required": required or [],
        "additionalProperties": False,
    }


# The body of a command that takes no fields: none at all, or ``{}``.
NO_FIELDS = _body({})


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
        [*PAGE_PARAMS, "type", "object_id", "site_id", "site", "status", *WAIT_PARAMS],
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
    "(with its position) or rejected (with the error). The node that took it knows it at "
    "once, every other node once it is decided; wait waits for the decision.",
    None,
    _ref("CommandStatus"),
    ["wait"],
)
OPERATIONS[("GET", "/stream")] = (
    "Follow every Process, FlowRun and CaseRun event of the token's account from now "
    "(type: event or aggregate types; status: the status after the event)." + _STREAM_NOTE,
    None,
    _TEXT,
    ["type", "status", "token", "last_event_id"],
)
