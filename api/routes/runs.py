"""What the FlowRun and CaseRun routes share: create from a definition, get, list
(``?site_id=``), delete and cancel.

A run is created from a definition in the read model (a Flow, a Case): the API reads it
for the caller's account, copies it into the ``<noun>.create`` command, and answers
with the run as the decider left it. ``decide`` sees one aggregate, so the Site and
the definition are checked here; one created a moment ago may not be projected yet, so
a miss waits (briefly) for the node to catch up with the ledger and looks again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api import as_of
from api.context import Context, context
from api.deps import PageOf
from api.errors import ApiError
from api.gateway import Accepted, derived_id, idempotency_key, run_command
from api.requests import json_body, one_value, page_json, page_of, refuse_unknown
from api.responses import JSONResponse
from api.routes.process_reads import _sync
from streams.domain.commands import MAX_ID
from streams.domain.snapshot import run_from_dict

DEFINITION_WAIT_S = 5.0


@dataclass(frozen=True)
class RunResource:
    """One run resource: ``noun`` is its aggregate type and path (``/flowrun``);
    ``fields`` are the fields its create body may have (any other is a 422);
    ``create_fields`` turns the request body into the create command's fields (422 for
    an unknown Site or definition); ``get``/``list`` read the caller's account only."""

    noun: str
    fields: tuple[str, ...]
    render: Callable[[Any], dict[str, Any]]
    get: Callable[[Context, str], Any]
    list: Callable[[Context, str | None, int, int], PageOf]
    create_fields: Callable[[Context, dict[str, Any]], Awaitable[dict[str, Any]]]

    @property
    def path_param(self) -> str:
        return f"{self.noun}_id"

    @property
    def one(self) -> str:
        return f"/{self.noun}/{{{self.path_param}}}"


def id_field(fields: dict[str, Any], name: str) -> str:
    """A required id of the request body; ApiError 422 naming it when unusable."""
    value = fields.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ApiError(422, "invalid_field", f"{name} must be a non-empty string", name)
    if len(value) > MAX_ID:
        raise ApiError(422, "invalid_field", f"{name} is longer than {MAX_ID} characters", name)
    return value


def _utf8(text: str) -> bool:
    """Whether ``text`` is UTF-8 encodable. JSON may escape a lone surrogate
    (``"\\ud800"``); no recorded id holds one, and DuckDB refuses it as a parameter
    (a 500 before this check)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


async def read_definition(
    ctx: Context, read: Callable[[str, str], Any], found_id: str, field: str, noun: str
) -> Any:
    """The caller's ``noun`` ``found_id`` from the read model, waiting once for the node
    to catch up on a miss; ApiError 422 on ``field`` when there is none."""
    account = ctx.principal.account
    found = None
    if _utf8(found_id):  # else it names nothing, and the read model cannot take it
        found = await run_in_threadpool(read, account, found_id)
        if found is None:
            wait_s = min(DEFINITION_WAIT_S, ctx.deps.wait_timeout_s)
            await ctx.deps.positions.wait_for_end(wait_s)
            found = await run_in_threadpool(read, account, found_id)
    if found is None:
        raise ApiError(
            422, "invalid_field", f"{field} names no {noun} of this account: {found_id}", field
        )
    return found


def respond(res: RunResource, accepted: Accepted, status: int = 200) -> JSONResponse:
    """The run as the decider left it, with the command's ledger headers."""
    if accepted.snapshot is None:
        raise ApiError(500, "internal", "the decider returned no state for this command")
    state = run_from_dict(res.noun, accepted.snapshot)
    return JSONResponse(res.render(state), status, headers=accepted.headers())


def command_route(res: RunResource, action: str, takes: tuple[str, ...] = ()) -> Route:
    """``POST /<noun>/{id}/<action>``: command ``<noun>.<action>``, answered with the run;
    its body may have the fields ``takes`` (none: no body, or ``{}``)."""

    async def handler(request: Request) -> Response:
        ctx = context(request)
        fields = await json_body(request, ctx.deps.max_body_bytes)
        refuse_unknown(fields, takes)
        target = request.path_params[res.path_param]
        accepted = await run_command(
            ctx.deps,
            request,
            ctx.principal,
            f"{res.noun}.{action}",
            target,
            fields,
            aggregate_type=res.noun,
        )
        return respond(res, accepted)

    return Route(f"{res.one}/{action}", handler, methods=["POST"], name=f"{res.noun}_{action}")


async def load_run(res: RunResource, request: Request) -> Any:
    """The run named in the path, for the caller's account; ApiError 404 otherwise."""
    await _sync(request)
    ctx = context(request)
    found_id = request.path_params[res.path_param]
    state = await run_in_threadpool(res.get, ctx, found_id)
    if state is None:
        raise ApiError(404, "not_found", f"{res.noun} {found_id} not found")
    return state


def routes_of(res: RunResource) -> list[Route]:
    """POST and GET on ``/<noun>``; GET and DELETE on ``/<noun>/{id}``; its cancel."""

    async def create(request: Request) -> Response:
        ctx = context(request)
        fields = await json_body(request, ctx.deps.max_body_bytes)
        if "id" in fields:
            raise ApiError(422, "invalid_field", "id is assigned by the server", "id")
        refuse_unknown(fields, res.fields)
        command_fields = await res.create_fields(ctx, fields)
        key = idempotency_key(request)
        new_id = derived_id(ctx.principal, key, res.noun) if key else ctx.deps.new_id()
        accepted = await run_command(
            ctx.deps,
            request,
            ctx.principal,
            f"{res.noun}.create",
            new_id,
            command_fields,
            aggregate_type=res.noun,
        )
        response = respond(res, accepted, 201)
        response.headers["Location"] = f"/{res.noun}/{new_id}"
        return response

    async def get(request: Request) -> Response:
        if as_of.wanted(request):
            await _sync(request)
            return JSONResponse(res.render(await as_of.state_at(request, res.noun)))
        return JSONResponse(res.render(await load_run(res, request)))

    async def listing(request: Request) -> Response:
        ctx = context(request)
        page = page_of(request)
        await _sync(request)
        site_id = one_value("site_id", request.query_params.getlist("site_id"))
        count, items = await run_in_threadpool(res.list, ctx, site_id, page.limit, page.offset)
        return JSONResponse(page_json(request, page, count, [res.render(s) for s in items]))

    async def delete(request: Request) -> Response:
        ctx = context(request)
        refuse_unknown(await json_body(request, ctx.deps.max_body_bytes), ())  # takes none
        accepted = await run_command(
            ctx.deps,
            request,
            ctx.principal,
            f"{res.noun}.delete",
            request.path_params[res.path_param],
            {},
            aggregate_type=res.noun,
        )
        message = {"message": f"{res.noun} deleted successfully"}
        return JSONResponse(message, headers=accepted.headers())

    return [
        Route(f"/{res.noun}", create, methods=["POST"], name=f"{res.noun}_create"),
        Route(f"/{res.noun}", listing, methods=["GET"], name=f"{res.noun}_list"),
        Route(res.one, get, methods=["GET"], name=f"{res.noun}_get"),
        Route(res.one, delete, methods=["DELETE"], name=f"{res.noun}_delete"),
        command_route(res, "cancel", ("reason",)),
    ]
