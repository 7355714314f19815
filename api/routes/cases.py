"""Cases: ``POST /case {site_id, name, steps}`` (type ``recorded``), get, list
(``?site_id=``), delete; and ``POST /case/generate {site_id, max_layers, prompt}``,
which answers with a Process of type ``case.generate`` (the orchestrator dispatches a
``generate`` job for it; the runner completes it with ``object_id`` = the new Case).

The Case's Site must exist for the caller's account. ``decide`` sees one aggregate,
so the API checks the read model before publishing; a Site created a moment ago may
not be projected yet, so a miss waits (briefly) for the node to catch up with the
ledger and looks again.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.context import Context, context
from api.errors import ApiError
from api.gateway import derived_id, idempotency_key, run_command
from api.representations import case_json, process_json
from api.requests import json_body, one_value, refuse_unknown
from api.responses import JSONResponse
from api.routes.definitions import Resource, parsed_body, routes_of
from api.routes.runs import read_definition
from streams.domain.case import CreateCase
from streams.domain.commands import MAX_ID, MAX_TEXT
from streams.domain.site import SiteState
from streams.orchestration import GENERATE_PROCESS

MAX_LAYERS = 20
DEFAULT_LAYERS = 10
GENERATE_FIELDS = ("site_id", "max_layers", "prompt")


async def _site_exists(ctx: Context, fields: dict[str, Any]) -> None:
    body = parsed_body(CreateCase.NAME, fields)  # field errors first, by their path
    assert isinstance(body, CreateCase)
    await _site_of(ctx, body.site_id)


async def _site_of(ctx: Context, site_id: str) -> SiteState:
    """The caller's Site ``site_id`` (waiting briefly for the read model); 422 if none."""
    site: SiteState = await read_definition(
        ctx, ctx.deps.reads.get_site, site_id, "site_id", "site"
    )
    return site


def _generate_fields(fields: dict[str, Any]) -> tuple[str, int, str]:
    """``site_id``, ``max_layers`` (1 to 20, default 10) and ``prompt`` (optional)."""
    if "id" in fields:
        raise ApiError(422, "invalid_field", "id is assigned by the server", "id")
    refuse_unknown(fields, GENERATE_FIELDS)
    site_id = fields.get("site_id")
    if not isinstance(site_id, str) or not site_id.strip():
        raise ApiError(422, "invalid_field", "site_id is required", "site_id")
    if len(site_id) > MAX_ID:
        raise ApiError(422, "invalid_field", f"site_id is longer than {MAX_ID}", "site_id")
    layers = fields.get("max_layers", DEFAULT_LAYERS)
    if isinstance(layers, bool) or not isinstance(layers, int) or not 1 <= layers <= MAX_LAYERS:
        raise ApiError(
            422,
            "invalid_field",
            f"max_layers must be a whole number from 1 to {MAX_LAYERS}",
            "max_layers",
        )
    prompt = fields.get("prompt")
    if prompt is None:
        prompt = ""
    if not isinstance(prompt, str) or len(prompt) > MAX_TEXT:
        raise ApiError(
            422, "invalid_field", f"prompt must be a string of at most {MAX_TEXT}", "prompt"
        )
    return site_id, layers, prompt


async def generate_case(request: Request) -> Response:
    """``POST /case/generate``: a ``case.generate`` Process, ``201``."""
    ctx = context(request)
    fields = await json_body(request, ctx.deps.max_body_bytes)
    site_id, layers, prompt = _generate_fields(fields)
    site = await _site_of(ctx, site_id)
    key = idempotency_key(request)
    process_id = derived_id(ctx.principal, key, "case.generate") if key else ctx.deps.new_id()
    info = {
        "site_id": site_id,
        "site_url": site.site_url,
        "max_layers": layers,
        "prompt": prompt,
    }
    accepted = await run_command(
        ctx.deps,
        request,
        ctx.principal,
        "process.create",
        process_id,
        {"type": GENERATE_PROCESS, "site": site_id, "info": info},
    )
    if accepted.state is None:
        raise ApiError(500, "internal", "the decider returned no state for this command")
    headers = {**accepted.headers(), "Location": f"/process/{process_id}"}
    return JSONResponse(process_json(accepted.state), 201, headers=headers)


def _filter(request: Any, name: str) -> str | None:
    return one_value(name, request.query_params.getlist(name))


CASES = Resource(
    noun="case",
    fields=("site_id", "name", "steps", "type"),
    render=case_json,
    get=lambda ctx, case_id: ctx.deps.reads.get_case(ctx.principal.account, case_id),
    list=lambda ctx, request, limit, offset: ctx.deps.reads.list_cases(
        ctx.principal.account, limit=limit, offset=offset, site_id=_filter(request, "site_id")
    ),
    before_create=_site_exists,
)

routes = [
    Route("/case/generate", generate_case, methods=["POST"], name="case_generate"),
    *routes_of(CASES),
]
