"""Flows: ``POST /flow {name, nodes, edges, configs?}`` (a validated DAG), get, list,
delete.

A ``case`` node's ``data.case_id`` must name a Case of the caller's account, or the
Flow would only fail when it runs. ``decide`` sees one aggregate, so the API looks each
Case up in the read model before publishing, as ``POST /flowrun`` does for its Flow: a
Case created a moment ago is waited for, and a missing, deleted or other account's Case
is the same 422 on the node's path (``nodes[2].data.case_id``). A Flow has no Site (each
FlowRun names one), so a node's Case may be of any Site of the account.
"""

from __future__ import annotations

import json
from typing import Any

from api.context import Context
from api.representations import flow_json
from api.routes.definitions import Resource, parsed_body, routes_of
from api.routes.runs import read_definition
from streams.domain.flow import CreateFlow


async def _cases_exist(ctx: Context, fields: dict[str, Any]) -> None:
    body = parsed_body(CreateFlow.NAME, fields)  # field errors first, by their path
    assert isinstance(body, CreateFlow)
    found: set[str] = set()
    for i, node in enumerate(json.loads(body.nodes_json)):
        data = node["data"]
        if data["task_type"] != "case" or data["case_id"] in found:
            continue
        field = f"nodes[{i}].data.case_id"
        await read_definition(ctx, ctx.deps.reads.get_case, data["case_id"], field, "case")
        found.add(data["case_id"])


FLOWS = Resource(
    noun="flow",
    fields=("name", "nodes", "edges", "configs"),
    render=flow_json,
    get=lambda ctx, flow_id: ctx.deps.reads.get_flow(ctx.principal.account, flow_id),
    list=lambda ctx, request, limit, offset: ctx.deps.reads.list_flows(
        ctx.principal.account, limit=limit, offset=offset
    ),
    before_create=_cases_exist,
)

routes = routes_of(FLOWS)
