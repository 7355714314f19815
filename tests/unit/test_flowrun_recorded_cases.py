"""``POST /flowrun`` copies the case nodes' Cases into the create command (``cases``),
so the orchestrator can start a case node before it has read the Case's events."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

from api.routes import flowruns


def ctx(cases: dict[str, str], asked: list[str]) -> Any:
    def get_case(account: str, case_id: str) -> Any:
        asked.append(case_id)
        assert account == "acme"
        steps = cases.get(case_id)
        return None if steps is None else SimpleNamespace(steps_json=steps)

    return SimpleNamespace(
        deps=SimpleNamespace(reads=SimpleNamespace(get_case=get_case)),
        principal=SimpleNamespace(account="acme"),
    )


def node(node_id: str, task: str, case_id: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"task_type": task}
    if case_id is not None:
        data["case_id"] = case_id
    return {"id": node_id, "data": data}


def recorded(
    cases: dict[str, str], nodes: list[dict[str, Any]]
) -> tuple[dict[str, str], list[str]]:
    asked: list[str] = []
    found = asyncio.run(flowruns._recorded_cases(ctx(cases, asked), nodes))
    return found, asked


def test_each_case_nodes_case_is_read_once_and_copied() -> None:
    cases = {"c1": '[{"action":null}]', "c2": "[]"}
    nodes = [
        node("s", "scan"),
        node("a", "case", "c1"),
        node("b", "case", "c1"),
        node("c", "case", "c2"),
    ]
    found, asked = recorded(cases, nodes)
    assert found == cases
    assert asked == ["c1", "c2"]  # not the scan node, and c1 once


def test_a_case_that_is_gone_is_left_out() -> None:
    found, _ = recorded({"c1": "[]"}, [node("a", "case", "c1"), node("b", "case", "gone")])
    assert found == {"c1": "[]"}


def test_the_copy_stops_at_its_budget() -> None:
    big = json.dumps([{"action": {"type": "wait", "value": "1" * 1000}}] * 40)  # ~45 KB
    cases = {f"c{i}": big for i in range(5)}
    found, _ = recorded(cases, [node(f"n{i}", "case", f"c{i}") for i in range(5)])
    assert 0 < len(found) < 5
    assert len(json.dumps(found)) <= flowruns.CASES_BUDGET
    assert list(found) == [f"c{i}" for i in range(len(found))]  # in node order
