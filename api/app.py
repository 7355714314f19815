"""The Starlette application of a node."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from api.auth import Authenticator
from api.deps import ApiDeps
from api.errors import (
    ApiError,
    api_error_handler,
    http_error_handler,
    logged_here,
    unexpected_error_handler,
)
from api.gateway import CommandPending
from api.metrics_app import HttpMetrics, RequestMetrics
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
from api.stream_limits import SERVER_SEND, StreamSlots


async def api_error_with_challenge(request: Request, exc: Exception) -> JSONResponse:
    """The error; a 401 also names the scheme to use (RFC 9110 15.5.2 asks for it)."""
    response = await api_error_handler(request, exc)
    if response.status_code == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="runledger"'
    return response


async def pending_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CommandPending)
    return exc.response()


async def _to_dashboard(request: Request) -> RedirectResponse:
    """``/ui/`` (typed in a browser) is the dashboard's page ``/ui``."""
    return RedirectResponse("/ui", status_code=307)


class NodeApp(Starlette):
    """Starlette, keeping the server's own ``send`` in the scope: a stream whose
    client stopped reading aborts the connection through it (api/stream_limits.py).

    An error the 500 handler answered and logged (with method, path and caller) is not
    raised on to the server: Starlette raises it again after the answer, and uvicorn
    would log the same traceback once more, without the request."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[SERVER_SEND] = send
        try:
            await super().__call__(scope, receive, send)
        except Exception as exc:
            if not logged_here(exc):
                raise


def create_app(deps: ApiDeps) -> Starlette:
    """The API over ``deps``; the node owns the lifecycle of everything in it."""
    http_metrics = HttpMetrics()
    app = NodeApp(
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
            Route("/ui/", _to_dashboard, methods=["GET"], include_in_schema=False),
        ],
        exception_handlers={
            ApiError: api_error_with_challenge,
            CommandPending: pending_handler,
            HTTPException: http_error_handler,
            Exception: unexpected_error_handler,
        },
        middleware=[Middleware(RequestMetrics, metrics=http_metrics)],
    )
    # Starlette answers a path that misses only by a trailing "/" with a 307 to the
    # path without it: an id of "/" (``GET /process/%2F``) then led to the list of
    # Processes, and ``DELETE /process/%2F`` to a 405 on /process. An API path is
    # exact: anything else is a 404 ``not_found`` that names the path.
    app.router.redirect_slashes = False
    app.state.deps = deps
    app.state.auth = Authenticator(deps.reads)
    app.state.stream_slots = StreamSlots(deps.sse_max_streams_per_account)
    app.state.http_metrics = http_metrics
    return app
