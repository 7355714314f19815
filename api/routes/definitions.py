"""Create, read, list and delete for the definition aggregates (Site, Flow, Case).

The three resources differ in their fields, their JSON and their list filters; the
handlers are otherwise the same, so each route module describes its resource with a
:class:`Resource` and takes its routes from :func:`routes_of`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.context import Context, context
from api.deps import PageOf
from api.errors import ApiError
from api.gateway import derived_id, idempotency_key, run_command
from api.requests import json_body, page_json, page_of, refuse_unknown
from api.responses import JSONResponse
from api.routes.process_reads import _sync
from streams.domain.commands import Body, InvalidCommand, parse_body
from streams.domain.snapshot import definition_from_dict


@dataclass(frozen=True)
class Resource:
    """How one definition resource reads, renders and checks; ``noun`` is its aggregate
    type and path (``/site``), ``fields`` the fields its create body may have (any
    other is a 422), ``get``/``list`` read the caller's account only."""

    noun: str
    fields: tuple[str, ...]
    render: Callable[[Any], dict[str, Any]]
    get: Callable[[Context, str], Any]
    list: Callable[[Context, Request, int, int], PageOf]
    # Checks against the read model before the command is published (a Case's Site).
    before_create: Callable[[Context, dict[str, Any]], Awaitable[None]] | None = None

    @property
    def path_param(self) -> str:
        return f"{self.noun}_id"


def routes_of(res: Resource) -> list[Route]:
    """POST and GET on ``/<noun>``, GET and DELETE on ``/<noun>/{<noun>_id}``."""

    async def create(request: Request) -> Response:
        ctx = context(request)
        fields = await _json(request, ctx)
        if "id" in fields:
            raise ApiError(422, "invalid_field", "id is assigned by the server", "id")
        refuse_unknown(fields, res.fields)
        key = idempotency_key(request)
        new_id = derived_id(ctx.principal, key, res.noun) if key else ctx.deps.new_id()
        if res.before_create is not None:
            try:
                await res.before_create(ctx, fields)
            except ApiError:
                # A retry (same Idempotency-Key) of a create already made is answered as
                # the first was, whatever became of what it named since.
                if not key or await run_in_threadpool(res.get, ctx, new_id) is None:
                    raise
        accepted = await run_command(
            ctx.deps,
            request,
            ctx.principal,
            f"{res.noun}.create",
            new_id,
            fields,
            aggregate_type=res.noun,
        )
        if accepted.snapshot is None:
            raise ApiError(500, "internal", "the decider returned no state for this command")
        state = definition_from_dict(res.noun, accepted.snapshot)
        headers = {**accepted.headers(), "Location": f"/{res.noun}/{new_id}"}
        return JSONResponse(res.render(state), 201, headers=headers)

    async def get(request: Request) -> Response:
        await _sync(request)
        ctx = context(request)
        found_id = request.path_params[res.path_param]
        state = await run_in_threadpool(res.get, ctx, found_id)
        if state is None:
            raise ApiError(404, "not_found", f"{res.noun} {found_id} not found")
        return JSONResponse(res.render(state))

    async def listing(request: Request) -> Response:
        ctx = context(request)
        page = page_of(request)
        await _sync(request)
        count, items = await run_in_threadpool(res.list, ctx, request, page.limit, page.offset)
        return JSONResponse(page_json(request, page, count, [res.render(s) for s in items]))

    async def delete(request: Request) -> Response:
        ctx = context(request)
        refuse_unknown(await _json(request, ctx), ())  # a delete takes no fields
        target = request.path_params[res.path_param]
        accepted = await run_command(
            ctx.deps,
            request,
            ctx.principal,
            f"{res.noun}.delete",
            target,
            {},
            aggregate_type=res.noun,
        )
        message = {"message": f"{res.noun} deleted successfully"}
        return JSONResponse(message, headers=accepted.headers())

    one = f"/{res.noun}/{{{res.path_param}}}"
    return [
        Route(f"/{res.noun}", create, methods=["POST"], name=f"{res.noun}_create"),
        Route(f"/{res.noun}", listing, methods=["GET"], name=f"{res.noun}_list"),
        Route(one, get, methods=["GET"], name=f"{res.noun}_get"),
        Route(one, delete, methods=["DELETE"], name=f"{res.noun}_delete"),
    ]


def parsed_body(command: str, fields: dict[str, Any]) -> Body:
    """The command body of ``fields``; ApiError 422 on the first unusable field, so a
    ``before_create`` check reports field errors before it looks anything up."""
    try:
        return parse_body(command, fields)
    except InvalidCommand as exc:
        raise ApiError(422, "invalid_field", exc.message, exc.field) from exc


async def _json(request: Request, ctx: Context) -> dict[str, Any]:
    return await json_body(request, ctx.deps.max_body_bytes)
