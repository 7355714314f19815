"""HTTP errors as JSON: ``{"error": {"code": ..., "message": ..., "field": ...}}``."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request

from api.responses import JSONResponse
from streams.domain.rejection import ALREADY_EXISTS, INVALID, INVALID_STATE, NOT_FOUND

log = logging.getLogger(__name__)

# Set on an exception the 500 handler logged: Starlette raises it again after the
# answer, and the server would log the same traceback a second time (api/app.py).
LOGGED = "_runledger_logged"
# Set in the scope by a response that streams (api/stream_limits.py): its status and
# first messages went out before any error.
STREAMING = "runledger.streaming"


class ApiError(Exception):
    """An error the client can act on: an HTTP status, a code, a sentence, maybe a field."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


REJECTION_STATUS = {NOT_FOUND: 404, INVALID_STATE: 409, ALREADY_EXISTS: 409, INVALID: 422}
# The decider's ``invalid`` (a field of the command it cannot use) is, to a client, the
# same error as a field the API's own checks refuse: docs/api.md lists ``invalid_field``.
REJECTION_CODE = {INVALID: "invalid_field"}


def rejection(code: str | None) -> tuple[int, str]:
    """The HTTP status and error code of a decider's rejection ``code`` (409 if unknown)."""
    found = code or "rejected"
    return REJECTION_STATUS.get(found, 409), REJECTION_CODE.get(found, found)


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "field": field}}
    return JSONResponse(body, status_code=status, headers=headers)


async def api_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.field)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    headers = exc.headers
    if exc.status_code == 405:
        allowed = _methods_of(request)
        headers = {**(headers or {}), "Allow": ", ".join(allowed)}
        message = (
            f"{request.method} is not allowed on {request.url.path}; allowed: {headers['Allow']}"
        )
    elif exc.status_code == 404:
        message = f"no route for {request.method} {request.url.path}"
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, code, message, headers=headers)


def _methods_of(request: Request) -> list[str]:
    """Every method some route of the app takes on this path. Starlette's own 405 names
    only the first matching route's (``GET, HEAD`` for ``PUT /process``, though
    ``POST /process`` is another route)."""
    path = request.scope.get("path", request.url.path)
    found: set[str] = set()
    for route in getattr(request.app, "routes", ()):
        methods = getattr(route, "methods", None)
        regex = getattr(route, "path_regex", None)
        if methods and regex is not None and regex.match(path):
            found |= set(methods)
    return sorted(found)


async def unexpected_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """A 500 whose body says nothing of the failure; the node's log says what failed, in
    which request, for whom. Only the method and path are named: the query can hold an
    SSE stream's ``?token=``, and no header (``Authorization``) is logged."""
    log.error(
        "%s %s failed (%s); answered 500 internal",
        request.method,
        request.url.path,
        _caller(request),
        exc_info=exc,
    )
    if not request.scope.get(STREAMING):
        # Answered with this 500. (A stream that fails after its 200 is ended by the
        # server, which needs the error raised to close the connection.)
        with contextlib.suppress(AttributeError):  # an exception type without a __dict__
            setattr(exc, LOGGED, True)
    return error_response(500, "internal", "the server failed to answer; see the node's log")


def logged_here(exc: BaseException) -> bool:
    """Whether :func:`unexpected_error_handler` logged ``exc`` (with its request)."""
    return bool(getattr(exc, LOGGED, False))


def _caller(request: Request) -> str:
    """Who sent the request, if it was authenticated before it failed (``api.context``
    keeps its context in the request's state, which the error handler sees too)."""
    ctx = getattr(request.state, "ctx", None)
    principal = getattr(ctx, "principal", None)
    if principal is None:
        return "not authenticated"
    return f"account {principal.account}, actor {principal.actor}"
