"""``GET /command/{command_id}``: what came of a command answered ``202``.

A command sent with ``Prefer: respond-async`` (or one whose outcome did not come in
time) answers ``202`` with ``Location: /command/{id}``. This node remembers the
commands it accepted that way, and their outcomes once the decider has sent them, so
the caller can learn whether the command was accepted, and where its events landed,
or rejected, and why (the status and error a waiting request would have answered).

Behind a load balancer the status is asked of any node: every node learns the outcome of
another node's ``202`` from ``ledger.outcomes`` (streams/bus.py), so once the decider has
decided, every node answers the same; before that only the accepting node says
``pending``, another answers ``404``. ``?wait=true`` or ``Prefer: wait=N`` waits for the
decision, so a poller need not care which node it reaches.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.context import context
from api.errors import ApiError, rejection
from api.requests import wait_of
from api.responses import JSONResponse
from streams.bus import Submitted


def command_json(entry: Submitted) -> dict[str, Any]:
    """The status document of a tracked command; ``http_status`` is, for a rejection,
    what a request that waited for the decision would have answered."""
    outcome = entry.outcome
    body: dict[str, Any] = {
        "command_id": entry.command_id,
        "command": entry.command,
        "aggregate_type": entry.aggregate_type,
        "aggregate_id": entry.aggregate_id,
        "status": "pending",
        "duplicate": False,
        "position": None,
        "http_status": None,
        "error": None,
    }
    if outcome is None:
        return body
    body["duplicate"] = outcome.duplicate
    if outcome.accepted:
        body["status"] = "accepted"
        position = outcome.position
        if position is not None:
            body["position"] = f"{position[0]}:{position[1]}"
        return body
    body["status"] = "rejected"
    body["http_status"], code = rejection(outcome.reason_code)
    body["error"] = {"code": code, "message": outcome.reason or "", "field": outcome.field}
    return body


async def get_command(request: Request) -> Response:
    ctx = context(request)
    command_id = request.path_params["command_id"]
    wait = wait_of(request, ctx.deps.wait_timeout_s)
    if wait.enabled:
        entry = await ctx.deps.commands.decided(command_id, wait.timeout)
    else:
        entry = ctx.deps.commands.status(command_id)
    if entry is None or entry.account != ctx.principal.account:
        raise ApiError(
            404,
            "not_found",
            f"this node has no record of command {command_id}: a node knows the commands "
            "it answered with 202 at once, those another node answered with 202 once the "
            "decider has decided them (ask with Prefer: wait=N to wait for that), and "
            "forgets them when it restarts",
        )
    body = command_json(entry)
    headers = {"Ledger-Command-Id": entry.command_id}
    if body["position"] is not None:
        headers["Ledger-Position"] = body["position"]
    return JSONResponse(body, headers=headers)


routes = [Route("/command/{command_id}", get_command, methods=["GET"])]
