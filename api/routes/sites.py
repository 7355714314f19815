"""Sites: ``POST /site {site_url}``, get, list, delete."""

from __future__ import annotations

from api.representations import site_json
from api.routes.definitions import Resource, routes_of

SITES = Resource(
    noun="site",
    fields=("site_url",),
    render=site_json,
    get=lambda ctx, site_id: ctx.deps.reads.get_site(ctx.principal.account, site_id),
    list=lambda ctx, request, limit, offset: ctx.deps.reads.list_sites(
        ctx.principal.account, limit=limit, offset=offset
    ),
)

routes = routes_of(SITES)
