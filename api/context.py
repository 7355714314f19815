"""The per-request context: the node's dependencies and the authenticated caller."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from api.auth import Authenticator, Principal
from api.deps import ApiDeps


@dataclass(frozen=True, slots=True)
class Context:
    deps: ApiDeps
    principal: Principal


def context(request: Request, *, query_token: bool = False) -> Context:
    """Authenticate the request (once) and return its context; ApiError 401 if it fails.

    ``query_token`` also accepts ``?token=`` when no Authorization header is sent: only
    the SSE streams pass it, because a browser's EventSource cannot send headers.
    """
    found: Context | None = getattr(request.state, "ctx", None)
    if found is not None:
        return found
    auth: Authenticator = request.app.state.auth
    header = request.headers.get("authorization")
    if not header and query_token:
        header = request.query_params.get("token")
    principal = auth.principal(header, request.client.host if request.client else None)
    ctx = Context(deps=request.app.state.deps, principal=principal)
    request.state.ctx = ctx
    return ctx
