"""Unauthenticated endpoints: health, metrics (Prometheus text), the OpenAPI document."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from api.metrics import CONTENT_TYPE, render
from api.metrics_app import stream_families
from api.openapi import openapi_document


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def metrics(request: Request) -> Response:
    """Prometheus text (0.0.4): the node's families (projector, identity), then the
    app's own (HTTP requests, SSE streams). The families and their labels are listed
    in docs/operations.md; none names an account, since this needs no token."""
    state = request.app.state
    families = [
        *state.deps.metrics(),
        *state.http_metrics.families(),
        *stream_families(state.stream_slots),
    ]
    return Response(render(families), media_type=CONTENT_TYPE)


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(openapi_document(request.app.routes))


routes = [
    Route("/health", health, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
]
