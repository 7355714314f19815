"""Site URL and Case step validation, and their decide/evolve."""

from __future__ import annotations

from typing import Any

import pytest

from streams.domain import aggregates, case, site
from streams.domain.commands import Command, InvalidCommand, body_to_payload, parse_body
from streams.domain.rejection import Rejected


@pytest.mark.parametrize(
    "url",
    ["https://example.com", "http://127.0.0.1:8080/shop?x=1", "https://xn--bcher-kva.example/"],
)
def test_http_urls_are_sites(url: str) -> None:
    assert parse_body("site.create", {"site_url": url}) == site.CreateSite(url)


@pytest.mark.parametrize(
    "url",
    [
        None,
        "",
        "example.com",
        "ftp://example.com",
        "https://",
        "https://exa mple.com",
        " https://example.com",
        "https://example.com:99999",
        "javascript:alert(1)",
        42,
    ],
)
def test_other_urls_are_refused_on_site_url(url: Any) -> None:
    with pytest.raises(InvalidCommand) as info:
        parse_body("site.create", {"site_url": url})
    assert info.value.field == "site_url"


def _cmd(kind: str, body: Any, account: str = "acme") -> Command:
    return Command("c1", kind, "x1", 5, account, "token:ci", "c1", "c1", body)


def test_site_decide_and_evolve() -> None:
    (created,) = aggregates.decide(None, _cmd("site", site.CreateSite("https://example.com")))
    state = aggregates.evolve(None, created)
    assert state == site.SiteState("x1", "acme", "https://example.com", "token:ci", 5, 1)
    with pytest.raises(Rejected, match="not found"):
        aggregates.decide(state, _cmd("site", site.DeleteSite(), account="other"))
    (deleted,) = aggregates.decide(state, _cmd("site", site.DeleteSite()))
    assert aggregates.evolve(state, deleted).deleted


STEPS: list[dict[str, Any]] = [
    {"action": {"type": "navigate", "path": "/contact"}, "assertion": {"type": ""}},
    {"action": {"type": "change", "value": "Ada", "element": {"selector": "#name"}}},
    {"action": {"type": "keyDown", "key": "Enter"}},
    {"action": {"type": "wait", "value": "500"}},
    {"action": {"type": "click", "element": {"xpath": "//button"}}},
    {"assertion": {"type": "exists", "element": {"selector": ".ok"}}},
    {"assertion": {"type": "visible", "element": {"selector": ".ok"}}},
    {
        "assertion": {
            "type": "match",
            "element": {"selector": "h1"},
            "value": "Thanks",
            "operator": "contains",
        }
    },
    {
        "assertion": {
            "type": "match",
            "element": {"selector": "h1"},
            "value": r"^Thanks\b",
            "operator": "regex",
        }
    },
]


def _invalid(steps: Any) -> InvalidCommand:
    with pytest.raises(InvalidCommand) as info:
        parse_body("case.create", {"site_id": "s1", "name": "contact", "steps": steps})
    return info.value


def test_a_recorded_case_parses_and_round_trips() -> None:
    body = parse_body("case.create", {"site_id": "s1", "name": "contact", "steps": STEPS})
    assert isinstance(body, case.CreateCase)
    assert body.case_type == "recorded"
    assert parse_body("case.create", body_to_payload(body)) == body


@pytest.mark.parametrize(
    ("step", "field"),
    [
        ({"action": {"type": "fly"}}, "steps[0].action.type"),
        ({"action": {"type": "navigate"}}, "steps[0].action.path"),
        ({"action": {"type": "navigate", "path": "ftp://x.example/"}}, "steps[0].action.path"),
        ({"action": {"type": "click"}}, "steps[0].action.element"),
        ({"action": {"type": "click", "element": {"selector": " "}}}, "steps[0].action.element"),
        ({"action": {"type": "keyDown"}}, "steps[0].action.key"),
        ({"action": {"type": "wait", "value": "soon"}}, "steps[0].action.value"),
        ({"action": {"type": "wait", "value": 10**9}}, "steps[0].action.value"),
        ({"assertion": {"type": "similar"}}, "steps[0].assertion.type"),
        ({"assertion": {"type": "exists"}}, "steps[0].assertion.element"),
        (
            {
                "assertion": {
                    "type": "match",
                    "element": {"selector": "h1"},
                    "value": "(",
                    "operator": "regex",
                }
            },
            "steps[0].assertion.value",
        ),
        (
            {"assertion": {"type": "match", "element": {"selector": "h1"}, "operator": "like"}},
            "steps[0].assertion.operator",
        ),
        ({"action": {"type": ""}, "assertion": {"type": ""}}, "steps[0]"),
        ({"action": "click"}, "steps[0].action"),
        ("click", "steps[0]"),
    ],
)
def test_bad_steps_are_refused_with_their_path(step: Any, field: str) -> None:
    assert _invalid([step]).field == field


def test_case_fields_and_limits() -> None:
    assert _invalid([]).field == "steps"
    assert _invalid(None).field == "steps"
    assert _invalid([STEPS[0]] * (case.MAX_CASE_STEPS + 1)).field == "steps"
    with pytest.raises(InvalidCommand) as info:
        parse_body("case.create", {"name": "x", "steps": STEPS})
    assert info.value.field == "site_id"
    with pytest.raises(InvalidCommand) as info:
        parse_body("case.create", {"site_id": "s1", "name": "x", "type": "magic", "steps": STEPS})
    assert info.value.field == "type"


def test_case_decide_and_evolve() -> None:
    body = parse_body("case.create", {"site_id": "s1", "name": "contact", "steps": STEPS})
    (created,) = aggregates.decide(None, _cmd("case", body))
    state = aggregates.evolve(None, created)
    assert isinstance(state, case.CaseState)
    assert (state.site_id, state.name, state.case_type, state.seq) == (
        "s1",
        "contact",
        "recorded",
        1,
    )
    with pytest.raises(Rejected, match="already exists"):
        aggregates.decide(state, _cmd("case", body))
    (deleted,) = aggregates.decide(state, _cmd("case", case.DeleteCase()))
    assert aggregates.evolve(state, deleted).deleted
    with pytest.raises(Rejected, match="not a case command"):
        aggregates.decide(state, _cmd("case", site.DeleteSite()))
