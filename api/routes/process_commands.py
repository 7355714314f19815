"""Commands on Processes: create, control (cancel, retry, restart, delete, approve)
and the worker-facing reports (progress, log, steps, complete, fail).

Each answers with the Process as the decider left it, and headers that say where the
events landed (``Ledger-Position``) so a later read can wait for them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.context import context
from api.errors import ApiError
from api.gateway import Accepted, CommandPending, derived_id, idempotency_key, run_command
from api.representations import process_json
from api.requests import json_body, refuse_unknown
from api.responses import JSONResponse

# The fields each body may have (docs/api.md, and the OpenAPI schemas, which a test
# holds to these); anything else is a 422 rather than silently dropped.
CREATE_FIELDS = ("type", "site", "info", "steps")
STEP_FIELDS = ("id", "name", "order", "enabled")


def _respond(accepted: Accepted, status: int = 200) -> JSONResponse:
    if accepted.state is None:  # not expected for process commands; be explicit anyway
        raise ApiError(500, "internal", "the decider returned no state for this command")
    return JSONResponse(process_json(accepted.state), status, headers=accepted.headers())


async def create_process(request: Request) -> Response:
    ctx = context(request)
    fields = await json_body(request, ctx.deps.max_body_bytes)
    if "id" in fields:
        raise ApiError(422, "invalid_field", "id is assigned by the server", "id")
    refuse_unknown(fields, CREATE_FIELDS)
    steps = fields.get("steps")
    for i, step in enumerate(steps if isinstance(steps, list) else ()):
        if isinstance(step, dict):  # else the command's own check names it
            refuse_unknown(step, STEP_FIELDS, within=f"steps[{i}]")
    key = idempotency_key(request)
    process_id = derived_id(ctx.principal, key, "process") if key else ctx.deps.new_id()
    accepted = await run_command(
        ctx.deps, request, ctx.principal, "process.create", process_id, fields
    )
    headers_location = {"Location": f"/process/{process_id}"}
    response = _respond(accepted, 201)
    response.headers.update(headers_location)
    return response


def _command(
    name: str, takes: tuple[str, ...] = (), *, step: bool = False
) -> Callable[[Request], Awaitable[Response]]:
    """A handler that sends command ``name`` for the Process (and step) in the path;
    its body may have the fields ``takes`` (none: no body, or ``{}``)."""

    async def handler(request: Request) -> Response:
        ctx = context(request)
        fields: dict[str, Any] = await json_body(request, ctx.deps.max_body_bytes)
        refuse_unknown(fields, takes)
        if step:
            fields["step_id"] = request.path_params["step_id"]
        process_id = request.path_params["process_id"]
        try:
            accepted = await run_command(ctx.deps, request, ctx.principal, name, process_id, fields)
        except CommandPending as pending:  # answered here: the exception handlers cost
            return pending.response()
        return _respond(accepted)

    handler.__name__ = name.replace(".", "_")
    return handler


async def delete_process(request: Request) -> Response:
    ctx = context(request)
    refuse_unknown(await json_body(request, ctx.deps.max_body_bytes), ())
    process_id = request.path_params["process_id"]
    accepted = await run_command(ctx.deps, request, ctx.principal, "process.delete", process_id, {})
    return JSONResponse({"message": "process deleted successfully"}, headers=accepted.headers())


P = "/process/{process_id}"
S = P + "/steps/{step_id}"

# Starlette tries routes in order: the reports workers send most often come first.
routes = [
    Route(P + "/progress", _command("process.progress", ("progress", "message")), methods=["POST"]),
    Route(P + "/log", _command("process.log", ("message", "level")), methods=["POST"]),
    Route(S + "/start", _command("process.step_start", step=True), methods=["POST"]),
    Route(
        S + "/complete",
        _command("process.step_complete", ("message",), step=True),
        methods=["POST"],
    ),
    Route("/process", create_process, methods=["POST"]),
    Route(P, delete_process, methods=["DELETE"]),
    Route(P + "/start", _command("process.start"), methods=["POST"]),
    Route(P + "/cancel", _command("process.cancel", ("reason",)), methods=["POST"]),
    Route(P + "/retry", _command("process.retry"), methods=["POST"]),
    Route(P + "/approve", _command("process.approve"), methods=["POST"]),
    Route(P + "/review", _command("process.waiting_review", ("result_summary",)), methods=["POST"]),
    Route(
        P + "/complete",
        _command("process.complete", ("object_id", "result_summary")),
        methods=["POST"],
    ),
    Route(P + "/fail", _command("process.fail", ("exception",)), methods=["POST"]),
    Route(S + "/fail", _command("process.step_fail", ("exception",), step=True), methods=["POST"]),
    Route(S + "/restart", _command("process.restart", step=True), methods=["POST"]),
]
