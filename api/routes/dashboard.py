"""The web dashboard: ``GET /ui`` and its static files ``GET /ui/{asset}``.

The page is public and holds no data; it reads everything through the token-checked
API from the browser, so serving it needs no token. The files are the flat folder
``api/dashboard/``, read once into a table of known names: a request can only ever get
one of those bytes, so no path (``..``, encoded slashes, backslashes) can reach
anything else. Every answer carries a Content-Security-Policy that lets the page load
and connect to this origin only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.errors import ApiError

FOLDER = Path(__file__).resolve().parent.parent / "dashboard"
INDEX = "index.html"

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}

# Self only. Screenshots are fetched with the token and shown as blob: URLs, since an
# <img src> cannot send an Authorization header.
CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str


def load_assets(folder: Path = FOLDER) -> dict[str, Asset]:
    """Every file of ``folder`` with a known suffix, by name (not recursive)."""
    found: dict[str, Asset] = {}
    for path in sorted(folder.iterdir()):
        media_type = MEDIA_TYPES.get(path.suffix)
        if path.is_file() and media_type is not None:
            found[path.name] = Asset(path.read_bytes(), media_type)
    return found


ASSETS = load_assets()


def _serve(name: str) -> Response:
    asset = ASSETS.get(name)
    if asset is None:
        raise ApiError(404, "not_found", "no such dashboard file")
    return Response(asset.body, media_type=asset.media_type, headers=HEADERS)


async def index(request: Request) -> Response:
    return _serve(INDEX)


async def asset(request: Request) -> Response:
    return _serve(request.path_params["asset"])


# Not API operations: left out of /openapi.json, listed in docs/api.md.
routes = [
    Route("/ui", index, methods=["GET"], include_in_schema=False),
    Route("/ui/{asset}", asset, methods=["GET"], include_in_schema=False),
]
