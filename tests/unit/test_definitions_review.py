"""Review of the definitions' create validation (Site, Flow, Case): inputs a demanding
user sends that were accepted although they could never work, each now a field error."""

from __future__ import annotations

from typing import Any

import pytest

from streams.domain.commands import InvalidCommand, parse_body


def _flow(nodes: list[dict[str, Any]], edges: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": "f", "nodes": nodes, "edges": edges}


def _scan(node_id: str, **data: Any) -> dict[str, Any]:
    return {"id": node_id, "data": {"task_type": "scan", **data}}


def _edge(source: str, target: str) -> dict[str, Any]:
    return {"id": f"{source}-{target}", "source": source, "target": target}


def _refused(command: str, fields: dict[str, Any]) -> InvalidCommand:
    with pytest.raises(InvalidCommand) as info:
        parse_body(command, fields)
    return info.value


@pytest.mark.parametrize(
    ("child", "field"),
    [
        # start_if passed (default): a failed parent skips the node, so it cannot wait for one
        (_scan("c", conditions=[{"parent": "a", "status": "failed"}]), "conditions[0]"),
        (
            _scan("c", start_if="passed", conditions=[{"parent": "b", "status": "failed"}]),
            "conditions[0]",
        ),
        # start_if failed, but every parent must pass: no parent can fail
        (
            _scan(
                "c",
                start_if="failed",
                conditions=[
                    {"parent": "a", "status": "passed"},
                    {"parent": "b", "status": "passed"},
                ],
            ),
            "conditions",
        ),
        # one parent wanted both passed and failed
        (
            _scan(
                "c",
                start_if="failed",
                conditions=[
                    {"parent": "a", "status": "failed"},
                    {"parent": "a", "status": "passed"},
                ],
            ),
            "conditions[1]",
        ),
    ],
)
def test_a_node_that_can_never_start_is_refused(child: dict[str, Any], field: str) -> None:
    nodes = [_scan("a"), _scan("b"), child]
    error = _refused("flow.create", _flow(nodes, [_edge("a", "c"), _edge("b", "c")]))
    assert error.field == f"nodes[2].data.{field}"
    assert "never start" in error.message


@pytest.mark.parametrize(
    "data",
    [
        {"start_if": "failed", "conditions": [{"parent": "a", "status": "failed"}]},
        {"start_if": "failed", "conditions": [{"parent": "a", "status": "passed"}]},
        {"conditions": [{"parent": "a", "status": "passed"}, {"parent": "b", "status": "passed"}]},
        {"start_if": None, "conditions": None},
    ],
)
def test_conditions_that_can_hold_are_kept(data: dict[str, Any]) -> None:
    nodes = [_scan("a"), _scan("b"), _scan("c", **data)]
    body = parse_body("flow.create", _flow(nodes, [_edge("a", "c"), _edge("b", "c")]))
    assert '"c"' in body.nodes_json  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "email",
    ["ops@example.com\r\nBcc: all@example.com", "ops @example.com", "@", "ops@", "a@b, c@d"],
)
def test_an_email_node_needs_one_address(email: str) -> None:
    node = {"id": "n", "data": {"task_type": "email", "email": email}}
    error = _refused("flow.create", _flow([node], []))
    assert error.field == "nodes[0].data.email"


def test_an_email_address_is_kept() -> None:
    node = {"id": "n", "data": {"task_type": "email", "email": "ops+alerts@example.co.uk"}}
    parse_body("flow.create", _flow([node], []))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("timeout", -1),
        ("timeout", "300"),
        ("timeout", True),
        ("timeout", 3601),
        ("max_wait_time", -0.5),
        ("min_wait_time", "3"),
    ],
)
def test_node_timing_configs_are_seconds(key: str, value: Any) -> None:
    node = {"id": "w", "data": {"task_type": "wait", "configs": {key: value}}}
    error = _refused("flow.create", _flow([node], []))
    assert error.field == f"nodes[0].data.configs.{key}"


def test_node_timing_configs_of_the_reference_are_kept() -> None:
    configs = {"timeout": 300, "max_wait_time": 30, "min_wait_time": 3, "device": "Windows 10 PC"}
    node = {"id": "w", "data": {"task_type": "wait", "configs": configs}}
    parse_body("flow.create", _flow([node], []))


@pytest.mark.parametrize(
    "url",
    ["https://user:secret@example.com/", "https://token@example.com", "http://:pw@example.com"],
)
def test_a_site_url_with_credentials_is_refused(url: str) -> None:
    error = _refused("site.create", {"site_url": url})
    assert error.field == "site_url"
    assert "credentials" in error.message


@pytest.mark.parametrize("target", ["file:/etc/passwd", "javascript:alert(1)", "data:text/html,x"])
def test_navigate_refuses_other_schemes(target: str) -> None:
    step = {"action": {"type": "navigate", "path": target}}
    error = _refused("case.create", {"site_id": "s", "name": "c", "steps": [step]})
    assert error.field == "steps[0].action.path"


@pytest.mark.parametrize("target", ["/login", "login?next=/a:b", "https://example.com/x", "#top"])
def test_navigate_keeps_paths_and_web_urls(target: str) -> None:
    step = {"action": {"type": "navigate", "path": target}}
    parse_body("case.create", {"site_id": "s", "name": "c", "steps": [step]})
