"""The endpoints that need no token: ``/health``, ``/metrics`` (Prometheus text with
the projector's counters) and ``/openapi.json`` (every route of the app)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from api import ApiDeps, create_app
from api.openapi import openapi_document
from tests.unit.test_metrics_parser import parse

pytestmark = pytest.mark.integration


def scrape(stack: Any) -> dict[str, float]:
    """The samples without labels of ``/metrics``, read with the strict parser of the
    Prometheus text format (tests/unit/test_metrics_parser.py)."""
    r = httpx.get(stack.url + "/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    parsed = parse(r.text)
    return {
        name: value
        for family in parsed.families.values()
        for (name, labels), value in family.samples.items()
        if not labels
    }


def test_health_needs_no_token(stack: Any) -> None:
    r = httpx.get(stack.url + "/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    bogus = httpx.get(stack.url + "/health", headers={"Authorization": "Bearer rl_unknown"})
    assert bogus.status_code == 200


def test_metrics_count_what_the_projector_applies(stack: Any) -> None:
    client = stack.authenticated("metrics")
    # the token's event may be readable a moment before it is counted: catch up first
    assert client.get("/process", params={"wait": "true"}).status_code == 200
    before = scrape(stack)
    for name in ("events_applied", "duplicates_dropped", "batches"):
        assert f"runledger_projector_{name}_total" in before, name

    r = client.post("/process", json={"type": "scan"}, params={"wait": "true"})
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    r = client.post(f"/process/{pid}/progress", json={"progress": 5}, params={"wait": "true"})
    assert r.status_code == 200, r.text

    after = scrape(stack)
    # created, then started + progress
    applied = "runledger_projector_events_applied_total"
    assert after[applied] == before[applied] + 3
    batches = "runledger_projector_batches_total"
    assert after[batches] >= before[batches] + 1
    assert after["runledger_projector_duplicates_dropped_total"] == 0


def test_openapi_lists_every_route_and_needs_no_token(stack: Any) -> None:
    r = httpx.get(stack.url + "/openapi.json")
    assert r.status_code == 200, r.text
    served = r.json()
    assert served["openapi"].startswith("3.1")

    app = create_app(ApiDeps(reads=None, commands=None, positions=None))  # type: ignore[arg-type]
    assert served == openapi_document(app.routes)
    expected = {
        (method.lower(), route.path)
        for route in app.routes
        for method in (getattr(route, "methods", None) or ())
        if method != "HEAD" and getattr(route, "include_in_schema", True)
    }
    listed = {(method, path) for path, ops in served["paths"].items() for method in ops}
    assert listed == expected
    assert not any(path.startswith("/ui") for _, path in listed)  # the dashboard is not API
    assert ("post", "/process/{process_id}/steps/{step_id}/restart") in listed
