"""CaseRuns: ``POST /caserun {site_id, case_id}`` copies the Case's steps into a new run
(every part queued); get, list (``?site_id=``), delete, cancel.

Runners report each step through Kafka commands, not through this API. The Site is any
Site of the caller's account: a Case recorded on one Site may be run on another (a
staging copy, say).
"""

from __future__ import annotations

import json
from typing import Any

from api.context import Context
from api.routes.runs import RunResource, id_field, read_definition, routes_of
from api.run_representations import caserun_json


async def _from_case(ctx: Context, fields: dict[str, Any]) -> dict[str, Any]:
    site_id = id_field(fields, "site_id")
    case_id = id_field(fields, "case_id")
    reads = ctx.deps.reads
    site = await read_definition(ctx, reads.get_site, site_id, "site_id", "site")
    case = await read_definition(ctx, reads.get_case, case_id, "case_id", "case")
    return {
        "site_id": site_id,
        "site_url": site.site_url,  # for the orchestrator, which may not have read the Site yet
        "case_id": case_id,
        "title": case.name,
        "steps": json.loads(case.steps_json),
    }


CASERUNS = RunResource(
    noun="caserun",
    fields=("site_id", "case_id"),
    render=caserun_json,
    get=lambda ctx, run_id: ctx.deps.reads.get_caserun(ctx.principal.account, run_id),
    list=lambda ctx, site_id, limit, offset: ctx.deps.reads.list_caseruns(
        ctx.principal.account, limit=limit, offset=offset, site_id=site_id
    ),
    create_fields=_from_case,
)

routes = routes_of(CASERUNS)
