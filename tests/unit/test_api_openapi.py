"""``/openapi.json`` documents every route of the app, and the app serves every
endpoint that docs/api.md lists (and nothing it does not)."""

from __future__ import annotations

import re
from pathlib import Path

from starlette.routing import Route
from starlette.testclient import TestClient

from api import ApiDeps, create_app
from api.openapi import openapi_document

API_MD = Path(__file__).resolve().parents[2] / "docs" / "api.md"
PUBLIC = {("get", "/health"), ("get", "/metrics"), ("get", "/openapi.json")}


def _app():  # type: ignore[no-untyped-def]
    # Only the route table is used: no request here reaches the read model or the bus.
    return create_app(ApiDeps(reads=None, commands=None, positions=None))  # type: ignore[arg-type]


def _routes(*, api_only: bool = False) -> set[tuple[str, str]]:
    """``(method, path)`` of the app; ``api_only`` leaves out the dashboard's page and files
    (``include_in_schema=False``), which docs/api.md lists but /openapi.json does not."""
    found = set()
    for route in _app().routes:
        assert isinstance(route, Route)
        if api_only and not route.include_in_schema:
            continue
        for method in route.methods or ():
            if method != "HEAD":
                found.add((method.lower(), route.path))
    return found


def _documented() -> set[tuple[str, str]]:
    """``METHOD /path`` of every endpoint in docs/api.md, path parameters as in the app."""
    text = API_MD.read_text()
    found = set()
    for method, path in re.findall(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`?\s]*)", text):
        path = path.replace("{id}", "{process_id}")
        found.add((method.lower(), path))
    return found


def test_the_document_lists_every_route_of_the_app() -> None:
    app = _app()
    document = openapi_document(app.routes)
    listed = {(m, path) for path, ops in document["paths"].items() for m in ops}
    assert listed == _routes(api_only=True)
    assert ("get", "/ui") in _routes() - listed


def test_the_served_document_is_the_document_and_needs_no_token() -> None:
    app = _app()
    with TestClient(app) as client:
        r = client.get("/openapi.json")
    assert r.status_code == 200
    assert r.json() == openapi_document(app.routes)
    assert r.json()["openapi"] == "3.1.0"


def test_only_the_public_endpoints_are_documented_without_a_token() -> None:
    document = openapi_document(_app().routes)
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            if (method, path) in PUBLIC:
                assert op["security"] == [], (method, path)
            else:
                assert op["security"] == [{"token": []}], (method, path)
                assert "401" in op["responses"] and "404" in op["responses"]


def test_the_app_serves_exactly_the_endpoints_of_docs_api_md() -> None:
    documented = _documented()
    assert len(documented) > 20  # the tables were found
    assert documented | PUBLIC == _routes()


def test_the_list_documents_its_filters_and_pagination() -> None:
    document = openapi_document(_app().routes)
    params = {p["name"] for p in document["paths"]["/process"]["get"]["parameters"]}
    assert {"limit", "offset", "type", "object_id", "site_id", "status", "wait", "after"} <= params
    create = document["paths"]["/process"]["post"]
    assert "201" in create["responses"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ProcessCreate"
    }
