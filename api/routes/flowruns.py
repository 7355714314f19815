"""FlowRuns: ``POST /flowrun {site_id, flow_id, configs?}`` copies the Flow's nodes and
edges into a new run (every node queued); get, list (``?site_id=``), delete, cancel,
retry (a failed run, from its failed nodes) and the run status with per-node timing.

The orchestrator, not the API, starts nodes: it reacts to ``flowrun.created``.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.context import Context
from api.errors import ApiError
from api.requests import refuse_unknown
from api.responses import JSONResponse
from api.routes.runs import RunResource, command_route, id_field, load_run, read_definition
from api.routes.runs import routes_of as run_routes
from api.run_representations import flowrun_json, flowrun_runstatus_json


def _requested_configs(fields: dict[str, Any]) -> dict[str, Any]:
    """The request's ``configs`` ({} when absent): an object of ``end_on_fail`` only,
    the one setting a run has; ApiError 422 otherwise."""
    configs = fields.get("configs")
    if configs is None:
        return {}
    if not isinstance(configs, dict):
        raise ApiError(422, "invalid_field", "configs must be an object", "configs")
    refuse_unknown(configs, ("end_on_fail",), within="configs")
    return configs


def _end_on_fail(configs: dict[str, Any], flow_configs: dict[str, Any]) -> Any:
    """The request's ``configs.end_on_fail``, else the Flow's, else true (the create
    command checks that it is a boolean)."""
    if "end_on_fail" in configs:
        return configs["end_on_fail"]
    flow_value = flow_configs.get("end_on_fail")
    return flow_value if isinstance(flow_value, bool) else True


# At most this many bytes of Case steps (as JSON text in the command) are copied into a
# run; the command's JSON fields are limited to 256,000 bytes each. Past it, the
# orchestrator takes the remaining Cases from its folded state only.
CASES_BUDGET = 128_000


async def _recorded_cases(ctx: Context, nodes: list[dict[str, Any]]) -> dict[str, str]:
    """The steps (``steps_json``) of the Cases the ``case`` nodes name, by Case id, for
    the orchestrator: a Case's events and the run's sit on different partitions, so it
    may read the run before the Case. Cases that are gone are left out (the node then
    fails when it starts, as before), and so is any past ``CASES_BUDGET``."""
    found: dict[str, str] = {}
    size = 0
    for node in nodes:
        data = node.get("data")
        if not isinstance(data, dict) or data.get("task_type") != "case":
            continue
        case_id = data.get("case_id")
        if not isinstance(case_id, str) or case_id in found:
            continue
        case = await run_in_threadpool(ctx.deps.reads.get_case, ctx.principal.account, case_id)
        if case is None:
            continue
        size += len(json.dumps(case_id)) + len(json.dumps(case.steps_json)) + 2
        if size > CASES_BUDGET:
            break
        found[case_id] = case.steps_json
    return found


async def _from_flow(ctx: Context, fields: dict[str, Any]) -> dict[str, Any]:
    site_id = id_field(fields, "site_id")
    flow_id = id_field(fields, "flow_id")
    configs = _requested_configs(fields)  # field errors before any lookup
    reads = ctx.deps.reads
    site = await read_definition(ctx, reads.get_site, site_id, "site_id", "site")
    flow = await read_definition(ctx, reads.get_flow, flow_id, "flow_id", "flow")
    flow_configs = json.loads(flow.configs_json)
    nodes = json.loads(flow.nodes_json)
    return {
        "site_id": site_id,
        "site_url": site.site_url,  # for the orchestrator, which may not have read the Site yet
        "flow_id": flow_id,
        "title": flow.name,
        "nodes": nodes,
        "edges": json.loads(flow.edges_json),
        "configs": {"end_on_fail": _end_on_fail(configs, flow_configs)},
        "cases": await _recorded_cases(ctx, nodes),  # the same, for the case nodes' Cases
    }


FLOWRUNS = RunResource(
    noun="flowrun",
    fields=("site_id", "flow_id", "configs"),
    render=flowrun_json,
    get=lambda ctx, run_id: ctx.deps.reads.get_flowrun(ctx.principal.account, run_id),
    list=lambda ctx, site_id, limit, offset: ctx.deps.reads.list_flowruns(
        ctx.principal.account, limit=limit, offset=offset, site_id=site_id
    ),
    create_fields=_from_flow,
)


async def runstatus(request: Request) -> Response:
    return JSONResponse(flowrun_runstatus_json(await load_run(FLOWRUNS, request)))


routes = [
    *run_routes(FLOWRUNS),
    command_route(FLOWRUNS, "retry"),
    Route(f"{FLOWRUNS.one}/runstatus", runstatus, methods=["GET"], name="flowrun_runstatus"),
]
