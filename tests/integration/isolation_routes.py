"""The routes of the node's application, each classified for the isolation matrix
(tests/integration/test_isolation_matrix.py): what kind of route it is, and a valid
body, so that a refusal comes from whose object it names, not from a field.

:func:`app_routes` reads the routes from ``api.app.create_app`` itself: a route added
later and not classified in :data:`ROUTES` fails the matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from starlette.routing import Route

from api.app import create_app
from api.deps import ApiDeps
from tests.integration.test_api_definitions import STEPS

# What a route is, for isolation. docs/api.md: "Every endpoint but /health, /metrics,
# /openapi.json and the dashboard's files (/ui, below) needs a token".
PUBLIC = "public"  # needs no token, holds no account's data
OBJECT = "object"  # one object of the caller's account, by id in the path
LIST = "list"  # a page of the caller's objects
CREATE = "create"  # makes a new object of the caller's own, naming nothing else
CREATE_REF = "create_ref"  # makes an object from others its body names by id
STREAM = "stream"  # one object's SSE stream
ACCOUNT_STREAM = "account_stream"  # the account-wide SSE stream
COMMAND_STATUS = "command_status"  # what came of a command answered 202
CONTENT = "content"  # an artifact by content hash: any valid token (docs/api.md)


@dataclass(frozen=True)
class Spec:
    """How a route is checked: its ``kind``; ``body``, a valid body (so a refusal comes
    from whose object it is, not from a field); ``refs``, for a create from other
    objects, the body field (its error ``field``) of each id it names, by path param."""

    kind: str
    body: dict[str, Any] | None = None
    refs: dict[str, str] = field(default_factory=dict)
    as_of: bool = False  # also read ``?as_of=``


def _flow_body(case_id: str = "{case_id}") -> dict[str, Any]:
    node = {"id": "1", "data": {"task_type": "case", "case_id": case_id}}
    return {"name": "iso flow", "nodes": [node], "edges": []}


P = "/process/{process_id}"
S = P + "/steps/{step_id}"
ROUTES: dict[tuple[str, str], Spec] = {
    ("GET", "/health"): Spec(PUBLIC),
    ("GET", "/metrics"): Spec(PUBLIC),
    ("GET", "/openapi.json"): Spec(PUBLIC),
    ("GET", "/ui"): Spec(PUBLIC),
    ("GET", "/ui/"): Spec(PUBLIC),
    ("GET", "/ui/{asset}"): Spec(PUBLIC),
    ("GET", "/process"): Spec(LIST),
    ("POST", "/process"): Spec(CREATE, {"type": "iso.b"}),
    ("GET", P): Spec(OBJECT, as_of=True),
    ("DELETE", P): Spec(OBJECT),
    ("GET", P + "/runstatus"): Spec(OBJECT),
    ("GET", P + "/steps"): Spec(OBJECT),
    ("GET", P + "/events"): Spec(OBJECT),
    ("GET", S + "/runstatus"): Spec(OBJECT),
    ("POST", P + "/progress"): Spec(OBJECT, {"progress": 50, "message": "b"}),
    ("POST", P + "/log"): Spec(OBJECT, {"message": "b", "level": "info"}),
    ("POST", P + "/start"): Spec(OBJECT),
    ("POST", P + "/cancel"): Spec(OBJECT, {"reason": "b"}),
    ("POST", P + "/retry"): Spec(OBJECT),
    ("POST", P + "/approve"): Spec(OBJECT),
    ("POST", P + "/review"): Spec(OBJECT, {"result_summary": {}}),
    ("POST", P + "/complete"): Spec(OBJECT, {"object_id": "b"}),
    ("POST", P + "/fail"): Spec(OBJECT, {"exception": "b"}),
    ("POST", S + "/start"): Spec(OBJECT),
    ("POST", S + "/complete"): Spec(OBJECT, {"message": "b"}),
    ("POST", S + "/fail"): Spec(OBJECT, {"exception": "b"}),
    ("POST", S + "/restart"): Spec(OBJECT),
    ("GET", P + "/stream"): Spec(STREAM),
    ("GET", "/command/{command_id}"): Spec(COMMAND_STATUS),
    ("GET", "/site"): Spec(LIST),
    ("POST", "/site"): Spec(CREATE, {"site_url": "https://b.example.com"}),
    ("GET", "/site/{site_id}"): Spec(OBJECT),
    ("DELETE", "/site/{site_id}"): Spec(OBJECT),
    ("GET", "/flow"): Spec(LIST),
    ("POST", "/flow"): Spec(CREATE_REF, _flow_body(), {"case_id": "nodes[0].data.case_id"}),
    ("GET", "/flow/{flow_id}"): Spec(OBJECT),
    ("DELETE", "/flow/{flow_id}"): Spec(OBJECT),
    ("GET", "/case"): Spec(LIST),
    ("POST", "/case"): Spec(
        CREATE_REF, {"site_id": "{site_id}", "name": "c", "steps": STEPS}, {"site_id": "site_id"}
    ),
    ("POST", "/case/generate"): Spec(CREATE_REF, {"site_id": "{site_id}"}, {"site_id": "site_id"}),
    ("GET", "/case/{case_id}"): Spec(OBJECT),
    ("DELETE", "/case/{case_id}"): Spec(OBJECT),
    ("GET", "/flowrun"): Spec(LIST),
    ("POST", "/flowrun"): Spec(
        CREATE_REF,
        {"site_id": "{site_id}", "flow_id": "{flow_id}"},
        {"site_id": "site_id", "flow_id": "flow_id"},
    ),
    ("GET", "/flowrun/{flowrun_id}"): Spec(OBJECT, as_of=True),
    ("DELETE", "/flowrun/{flowrun_id}"): Spec(OBJECT),
    ("POST", "/flowrun/{flowrun_id}/cancel"): Spec(OBJECT, {"reason": "b"}),
    ("POST", "/flowrun/{flowrun_id}/retry"): Spec(OBJECT),
    ("GET", "/flowrun/{flowrun_id}/runstatus"): Spec(OBJECT),
    ("GET", "/flowrun/{flowrun_id}/stream"): Spec(STREAM),
    ("GET", "/caserun"): Spec(LIST),
    ("POST", "/caserun"): Spec(
        CREATE_REF,
        {"site_id": "{site_id}", "case_id": "{case_id}"},
        {"site_id": "site_id", "case_id": "case_id"},
    ),
    ("GET", "/caserun/{caserun_id}"): Spec(OBJECT, as_of=True),
    ("DELETE", "/caserun/{caserun_id}"): Spec(OBJECT),
    ("POST", "/caserun/{caserun_id}/cancel"): Spec(OBJECT, {"reason": "b"}),
    ("GET", "/caserun/{caserun_id}/stream"): Spec(STREAM),
    ("GET", "/stream"): Spec(ACCOUNT_STREAM),
    ("GET", "/artifact/{hash}"): Spec(CONTENT),
}


def app_routes() -> list[tuple[str, str]]:
    """Every (method, path) of the node's application (HEAD comes with each GET)."""
    stub = cast(Any, None)  # routes only: nothing is read or sent
    app = create_app(ApiDeps(reads=stub, commands=stub, positions=stub))
    found = []
    for route in app.routes:
        # A Mount or a WebSocket route would need checks of its own: name it here.
        assert isinstance(route, Route) and route.methods, f"not a plain route: {route!r}"
        found += [(m, route.path) for m in sorted(route.methods) if m != "HEAD"]
    return found


APP_ROUTES = app_routes()
IDS = [f"{m} {p}" for m, p in APP_ROUTES]


def spec_of(method: str, path: str) -> Spec:
    spec = ROUTES.get((method, path))
    assert spec is not None, f"{method} {path} is not classified in ROUTES"
    return spec
