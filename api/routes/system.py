"""Unauthenticated endpoints: health, metrics (Prometheus text), the OpenAPI document."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from api.openapi import openapi_document


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def metrics(request: Request) -> PlainTextResponse:
    values = request.app.state.deps.metrics()
    lines = []
    for name, value in sorted(values.items()):
        lines.append(f"# TYPE runledger_{name} gauge")
        lines.append(f"runledger_{name} {value}")
    return PlainTextResponse("\n".join(lines) + "\n")


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(openapi_document(request.app.routes))


routes = [
    Route("/health", health, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
]
