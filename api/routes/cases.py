"""Cases: ``POST /case {site_id, name, steps}`` (type ``recorded``), get, list
(``?site_id=``), delete.

The Case's Site must exist for the caller's account. ``decide`` sees one aggregate,
so the API checks the read model before publishing; a Site created a moment ago may
not be projected yet, so a miss waits (briefly) for the node to catch up with the
ledger and looks again.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool

from api.context import Context
from api.errors import ApiError
from api.representations import case_json
from api.routes.definitions import Resource, routes_of
from streams.domain.case import CreateCase
from streams.domain.commands import InvalidCommand, parse_body

SITE_WAIT_S = 5.0


async def _site_exists(ctx: Context, fields: dict[str, Any]) -> None:
    try:
        body = parse_body(CreateCase.NAME, fields)  # field errors first, by their path
    except InvalidCommand as exc:
        raise ApiError(422, "invalid_field", exc.message, exc.field) from exc
    assert isinstance(body, CreateCase)
    account = ctx.principal.account
    reads = ctx.deps.reads
    if await run_in_threadpool(reads.get_site, account, body.site_id) is not None:
        return
    await ctx.deps.positions.wait_for_end(min(SITE_WAIT_S, ctx.deps.wait_timeout_s))
    if await run_in_threadpool(reads.get_site, account, body.site_id) is None:
        raise ApiError(
            422,
            "invalid_field",
            f"site_id names no site of this account: {body.site_id}",
            "site_id",
        )


def _filter(request: Any, name: str) -> str | None:
    value = request.query_params.get(name)
    return value if value else None


CASES = Resource(
    noun="case",
    render=case_json,
    get=lambda ctx, case_id: ctx.deps.reads.get_case(ctx.principal.account, case_id),
    list=lambda ctx, request, limit, offset: ctx.deps.reads.list_cases(
        ctx.principal.account, limit=limit, offset=offset, site_id=_filter(request, "site_id")
    ),
    before_create=_site_exists,
)

routes = routes_of(CASES)
