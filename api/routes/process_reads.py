"""Reads of Processes: one, many, run status, steps, a step's run status, events."""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api import as_of
from api.context import context
from api.errors import ApiError
from api.representations import (
    iso,
    process_json,
    runstatus_json,
    step_json,
    step_runstatus_json,
)
from api.requests import one_value, page_json, page_of, wait_of
from api.responses import JSONResponse
from streams.domain.process import AGGREGATE, STATUSES, ProcessState


async def _sync(request: Request) -> None:
    """Honour ``?wait``/``Prefer: wait``/``?after`` before reading (read your writes)."""
    ctx = context(request)
    wait = wait_of(request, ctx.deps.wait_timeout_s)
    if not wait.enabled:
        return
    if wait.after is not None:
        known = ctx.deps.positions.applied()
        if known and wait.after[0] not in known:  # empty while the projector starts
            raise ApiError(
                400,
                "invalid_query",
                f"after names partition {wait.after[0]}; the ledger has partitions "
                f"{', '.join(map(str, sorted(known)))}",
                "after",
            )
        done = await ctx.deps.positions.wait_for(*wait.after, wait.timeout)
    else:
        done = await ctx.deps.positions.wait_for_end(wait.timeout)
    if not done:
        raise ApiError(
            504, "wait_timeout", f"the node did not catch up within {wait.timeout:g} seconds"
        )


async def load_process(request: Request) -> ProcessState:
    """The Process named in the path, for the caller's account; 404 otherwise.

    Served from the node's cache of committed states when it has it (no thread hop, no
    query); otherwise read from the store and, if nothing was committed meanwhile,
    remembered.
    """
    ctx = context(request)
    process_id = request.path_params["process_id"]
    account = ctx.principal.account
    cache = ctx.deps.process_cache
    version = 0
    if cache is not None:
        state = cache.get(account, process_id)
        if state is not None:
            return state
        version = cache.version
    state = await run_in_threadpool(ctx.deps.reads.get_process, account, process_id)
    if state is None:
        raise ApiError(404, "not_found", f"process {process_id} not found")
    if cache is not None:
        cache.put(state, version)
    return state


async def get_process(request: Request) -> Response:
    await _sync(request)
    if as_of.wanted(request):
        return JSONResponse(process_json(await as_of.state_at(request, AGGREGATE)))
    ctx = context(request)
    cache = ctx.deps.process_cache
    if cache is not None:
        body = cache.rendered(ctx.principal.account, request.path_params["process_id"])
        if body is not None:
            return Response(body, media_type=JSONResponse.media_type)
    state = await load_process(request)
    response = JSONResponse(process_json(state))
    if cache is not None:
        cache.keep_rendered(state, bytes(response.body))
    return response


def _filter(request: Request, name: str) -> str | None:
    """A list filter's value, None when not given; 400 when given twice."""
    return one_value(name, request.query_params.getlist(name))


def _site(request: Request) -> str | None:
    """``site_id``, or its alias ``site`` (the Process's field); 400 for both at once:
    which one wins would be a guess."""
    if "site_id" in request.query_params and "site" in request.query_params:
        raise ApiError(
            400,
            "invalid_query",
            "site and site_id are the same filter (site is an alias of site_id); give one",
            "site",
        )
    return _filter(request, "site_id") or _filter(request, "site")


async def list_processes(request: Request) -> JSONResponse:
    ctx = context(request)
    page = page_of(request)
    status = _filter(request, "status")
    of_type, object_id, site = (
        _filter(request, "type"),
        _filter(request, "object_id"),
        _site(request),
    )
    if status is not None and status not in STATUSES:
        raise ApiError(
            400, "invalid_query", f"status must be one of {', '.join(STATUSES)}", "status"
        )
    await _sync(request)
    count, rows = await run_in_threadpool(
        lambda: ctx.deps.reads.list_processes(
            ctx.principal.account,
            limit=page.limit,
            offset=page.offset,
            type=of_type,
            object_id=object_id,
            site=site,
            status=status,
        )
    )
    return JSONResponse(page_json(request, page, count, [process_json(p) for p in rows]))


async def runstatus(request: Request) -> JSONResponse:
    await _sync(request)
    return JSONResponse(runstatus_json(await load_process(request)))


async def steps(request: Request) -> JSONResponse:
    # The token first (a caller without one learns nothing of how the route reads its
    # query: 401), then a bad query is 400 before any lookup, as for /events.
    context(request)
    page = page_of(request)
    await _sync(request)
    state = await load_process(request)
    ordered = sorted(state.steps, key=lambda s: (s.order, s.step_id))
    chosen = ordered[page.offset : page.offset + page.limit]
    return JSONResponse(page_json(request, page, len(ordered), [step_json(s) for s in chosen]))


async def step_runstatus(request: Request) -> JSONResponse:
    await _sync(request)
    state = await load_process(request)
    step_id = request.path_params["step_id"]
    step = state.step(step_id)
    if step is None:
        raise ApiError(404, "not_found", f"process {state.id} has no step {step_id}", "step_id")
    return JSONResponse(step_runstatus_json(step))


def _message(data: dict[str, Any]) -> str | None:
    """The human line of an event: its message, exception or reason, if it has one."""
    for key in ("message", "exception", "reason"):
        value = data.get(key)
        if isinstance(value, str):
            return value
    return None


def event_json(row: Any) -> dict[str, Any]:
    data = json.loads(row.data)
    return {
        "id": row.event_id,
        "seq": row.seq,
        "type": row.type,
        "status": row.status,
        "message": _message(data),
        "created_at": iso(row.occurred_at),
        "actor": row.actor,
        "command_id": row.command_id,
        "correlation_id": row.correlation_id,
        "data": data,
        "position": f"{row.partition}:{row.offset}",
    }


async def events(request: Request) -> JSONResponse:
    ctx = context(request)
    page = page_of(request)
    await _sync(request)
    state = await load_process(request)
    count, rows = await run_in_threadpool(
        lambda: ctx.deps.reads.list_events(
            ctx.principal.account, state.id, limit=page.limit, offset=page.offset
        )
    )
    return JSONResponse(page_json(request, page, count, [event_json(r) for r in rows]))


routes = [
    Route("/process", list_processes, methods=["GET"]),
    Route("/process/{process_id}", get_process, methods=["GET"]),
    Route("/process/{process_id}/runstatus", runstatus, methods=["GET"]),
    Route("/process/{process_id}/steps", steps, methods=["GET"]),
    Route("/process/{process_id}/steps/{step_id}/runstatus", step_runstatus, methods=["GET"]),
    Route("/process/{process_id}/events", events, methods=["GET"]),
]
