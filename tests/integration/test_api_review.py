"""Found in a review of the API against a demanding client: every bad input answers a
4xx in the error shape, never a 500, and what the ledger holds can always be read.

Most tests here run the app in-process over a fake read model (no broker needed); those
that need the real path (decider, projector) take the module's ``stack``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from api import ApiDeps, create_app, sse
from api.auth import token_hash
from api.openapi import openapi_document
from streams.domain.process import ProcessState

pytestmark = pytest.mark.integration

TOKEN = "rl_review"
LONE = "\ud800"  # a lone UTF-16 surrogate: valid in JSON text, not encodable as UTF-8


@dataclass
class Reads:
    """The read model's answers the routes under test need; one account, ``acme``."""

    processes: list[ProcessState] = field(default_factory=list)

    def token_account(self, digest: str) -> tuple[str, str] | None:
        return ("acme", "review") if digest == token_hash(TOKEN) else None

    def get_process(self, account: str, process_id: str) -> ProcessState | None:
        return next((p for p in self.processes if p.id == process_id), None)

    def list_processes(self, account: str, *, limit: int, offset: int, **_: Any) -> Any:
        return len(self.processes), self.processes[offset : offset + limit]

    def get_site(self, account: str, site_id: str) -> None:
        return None

    def get_flow(self, account: str, flow_id: str) -> None:
        return None


class Positions:
    async def wait_for(self, partition: int, offset: int, timeout: float) -> bool:
        return True

    async def wait_for_end(self, timeout: float) -> bool:
        return True

    def applied(self) -> dict[int, int]:
        return {}


def in_process(reads: Reads) -> TestClient:
    deps = ApiDeps(reads=reads, commands=None, positions=Positions())  # type: ignore[arg-type]
    client = TestClient(create_app(deps), raise_server_exceptions=False)
    client.headers["Authorization"] = TOKEN
    return client


def recorded_with_a_lone_surrogate() -> ProcessState:
    """A Process whose recorded text holds a lone surrogate, as JSON text stores it."""
    return ProcessState(
        id="p1",
        account="acme",
        type="scan",
        created_by="token:review",
        site=None,
        info_json='{"title":"\\ud800"}',
        time_created=1_700_000_000_000_000,
        message=f"console: {LONE}",
    )


def assert_error(r: Any, status: int, code: str, field_name: str | None = None) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"]["code"] == code, body
    assert body["error"]["field"] == field_name, body


# -- what the ledger holds can be read --------------------------------------------------


def test_a_recorded_lone_surrogate_is_read_not_a_500() -> None:
    """A lone surrogate in a recorded Process made its GET, and every page of the list
    holding it, fail with 500 for good."""
    client = in_process(Reads([recorded_with_a_lone_surrogate()]))
    r = client.get("/process/p1")
    assert r.status_code == 200, r.text
    assert r.json()["info"] == {"title": LONE}
    assert r.json()["message"] == f"console: {LONE}"
    r = client.get("/process")
    assert r.status_code == 200, r.text
    assert [p["id"] for p in r.json()["results"]] == ["p1"]


def test_an_sse_message_with_a_lone_surrogate_is_sent() -> None:
    """The streams render the same states: a lone surrogate broke the stream mid-way."""
    text = sse.body("process.log", {"state": {"message": LONE}}).decode("ascii")
    data = text.split("data: ", 1)[1].strip()
    assert json.loads(data) == {"state": {"message": LONE}}


def test_an_error_that_echoes_a_lone_surrogate_is_a_422() -> None:
    """The 422 naming an unknown site_id quoted it, and rendering the error failed."""
    client = in_process(Reads())
    raw = b'{"site_id": "\\ud800", "flow_id": "f1"}'
    r = client.post("/flowrun", content=raw, headers={"Content-Type": "application/json"})
    assert_error(r, 422, "invalid_field", "site_id")
    assert LONE in r.json()["error"]["message"]


# -- query parameters -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "name"),
    [("limit=\u0661\u0662", "limit"), ("offset=1_000", "offset"), ("limit=+5", "limit")],
)
def test_a_page_parameter_is_plain_decimal_digits(query: str, name: str) -> None:
    """``int()`` also read Arabic-Indic digits, ``1_000`` and ``+5``; the next and
    previous links then carried another spelling than the client sent."""
    client = in_process(Reads())
    assert_error(client.get(f"/process?{query}"), 400, "invalid_query", name)


# -- the OpenAPI document says what the routes do ----------------------------------------


def test_the_document_gives_case_generate_its_201() -> None:
    """``POST /case/generate`` answers 201 (docs/api.md); the document said 200."""
    app = create_app(ApiDeps(reads=None, commands=None, positions=None))  # type: ignore[arg-type]
    responses = openapi_document(app.routes)["paths"]["/case/generate"]["post"]["responses"]
    assert "201" in responses and "200" not in responses


# -- on the real stack ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(stack: Any) -> httpx.Client:
    return stack.authenticated(f"review-{uuid.uuid4().hex[:8]}")


def test_case_generate_answers_what_the_document_says(client: httpx.Client, stack: Any) -> None:
    site = client.post("/site", json={"site_url": "https://example.com"}, params={"wait": "1"})
    assert site.status_code == 201, site.text
    r = client.post("/case/generate", json={"site_id": site.json()["id"]})
    document = httpx.get(stack.url + "/openapi.json").json()
    assert str(r.status_code) in document["paths"]["/case/generate"]["post"]["responses"]
    assert r.status_code == 201, r.text


def test_an_over_long_id_is_named_as_such() -> None:
    """A 300-character site_id was answered "must be a non-empty string"."""
    client = in_process(Reads())
    r = client.post("/flowrun", json={"site_id": "s" * 300, "flow_id": "f1"})
    assert_error(r, 422, "invalid_field", "site_id")
    assert "longer than 200" in r.json()["error"]["message"]


def test_a_correlation_id_is_bounded_and_carried_into_the_events(client: httpx.Client) -> None:
    """X-Correlation-Id had no bound: 20,000 characters went into every event."""
    for bad in ("x" * 256, "a" * 1000):
        r = client.post("/process", json={"type": "scan"}, headers={"X-Correlation-Id": bad})
        assert_error(r, 400, "invalid_correlation_id")
    r = client.post(
        "/process",
        json={"type": "scan"},
        headers={"X-Correlation-Id": "order-42"},
        params={"wait": "1"},
    )
    assert r.status_code == 201, r.text
    events = client.get(f"/process/{r.json()['id']}/events").json()["results"]
    assert [e["correlation_id"] for e in events] == ["order-42"]
