"""Flows: ``POST /flow {name, nodes, edges, configs?}`` (a validated DAG), get, list,
delete."""

from __future__ import annotations

from api.representations import flow_json
from api.routes.definitions import Resource, routes_of

FLOWS = Resource(
    noun="flow",
    render=flow_json,
    get=lambda ctx, flow_id: ctx.deps.reads.get_flow(ctx.principal.account, flow_id),
    list=lambda ctx, request, limit, offset: ctx.deps.reads.list_flows(
        ctx.principal.account, limit=limit, offset=offset
    ),
)

routes = routes_of(FLOWS)
