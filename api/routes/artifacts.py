"""Artifacts (page HTML, screenshots, VRT diffs) by content hash: ``GET /artifact/{hash}``.

Runners store them on disk by sha256 and events carry only the hashes; the node serves
them from the same folder. A hash names content, not an owner: any valid token can
read an artifact whose hash it knows (hashes appear only in its account's events).
"""

from __future__ import annotations

import re

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.context import context
from api.errors import ApiError

_HASH = re.compile(r"^[0-9a-f]{64}$")


async def get_artifact(request: Request) -> Response:
    ctx = context(request)
    digest = request.path_params["hash"]
    if not _HASH.fullmatch(digest):
        raise ApiError(400, "invalid_hash", "an artifact hash is 64 lowercase hex digits", "hash")
    lookup = ctx.deps.artifacts
    found = await run_in_threadpool(lookup, digest) if lookup is not None else None
    if found is None:
        raise ApiError(404, "not_found", f"no artifact {digest}")
    data, media_type = found
    # Content-addressed: the bytes under a hash never change.
    headers = {"Cache-Control": "private, max-age=31536000, immutable", "ETag": f'"{digest}"'}
    return Response(data, media_type=media_type, headers=headers)


routes = [Route("/artifact/{hash}", get_artifact, methods=["GET"])]
