"""The Starlette application of a node."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from api.auth import Authenticator
from api.deps import ApiDeps
from api.errors import ApiError, api_error_handler, http_error_handler, unexpected_error_handler
from api.gateway import CommandPending
from api.routes import (
    artifacts,
    caseruns,
    cases,
    commands,
    dashboard,
    flowruns,
    flows,
    process_commands,
    process_reads,
    sites,
    streams,
    system,
)


async def api_error_with_challenge(request: Request, exc: Exception) -> JSONResponse:
    """The error; a 401 also names the scheme to use (RFC 9110 15.5.2 asks for it)."""
    response = await api_error_handler(request, exc)
    if response.status_code == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="runledger"'
    return response


async def pending_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CommandPending)
    return exc.response()


def create_app(deps: ApiDeps) -> Starlette:
    """The API over ``deps``; the node owns the lifecycle of everything in it."""
    app = Starlette(
        routes=[
            *system.routes,
            *process_reads.routes,
            *process_commands.routes,
            *commands.routes,
            *sites.routes,
            *flows.routes,
            *cases.routes,
            *flowruns.routes,
            *caseruns.routes,
            *streams.routes,
            *artifacts.routes,
            *dashboard.routes,
        ],
        exception_handlers={
            ApiError: api_error_with_challenge,
            CommandPending: pending_handler,
            HTTPException: http_error_handler,
            Exception: unexpected_error_handler,
        },
    )
    app.state.deps = deps
    app.state.auth = Authenticator(deps.reads)
    return app
