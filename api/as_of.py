"""``?as_of=<ISO time>``: a Process, FlowRun or CaseRun as it was at a past time.

Folded from the node's ``events`` table with the same ``evolve`` as the projector, so
the answer has the shape of the current one.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from api.context import context
from api.errors import ApiError
from api.representations import parse_iso
from projections.rows import event_of_row
from streams.domain.history import NotYetCreated, state_as_of

PARAM = "as_of"


def wanted(request: Request) -> bool:
    return PARAM in request.query_params


async def state_at(request: Request, noun: str) -> Any:
    """The state of the ``{noun}_id`` of the path at ``?as_of``: ApiError 400 for a time
    that is not ISO 8601, 404 when the aggregate did not exist (or was deleted) then."""
    text = request.query_params[PARAM]
    try:
        at = parse_iso(text)
    except ValueError:
        raise ApiError(
            400, "invalid_query", f"as_of {text!r} is not an ISO 8601 time", PARAM
        ) from None
    ctx = context(request)
    aggregate_id = request.path_params[f"{noun}_id"]
    rows = await run_in_threadpool(
        ctx.deps.reads.events_until, ctx.principal.account, aggregate_id, noun, at
    )
    try:
        state = state_as_of([event_of_row(r) for r in rows], at)
    except NotYetCreated:
        raise ApiError(404, "not_found", f"{noun} {aggregate_id} did not exist at {text}") from None
    if getattr(state, "deleted", False):
        raise ApiError(404, "not_found", f"{noun} {aggregate_id} was deleted at {text}")
    return state
