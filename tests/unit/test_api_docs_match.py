"""docs/api.md and ``/openapi.json`` say what the code does: every error code the API
can answer (read from the source with ``ast``) is in the error table with its status and
in the OpenAPI ``Error`` schema; every query parameter a route reads is documented in
both; the fields of every JSON representation are the fields the docs and the OpenAPI
schemas list. The route table itself is checked in tests/unit/test_api_openapi.py.
"""

from __future__ import annotations

import ast
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from api import ApiDeps, create_app
from api.errors import _HTTP_CODES, REJECTION_STATUS, rejection
from api.openapi import PARAMS, openapi_document
from api.openapi.schemas import ERROR_CODES, SCHEMAS

ROOT = Path(__file__).resolve().parents[2]
API = ROOT / "api"
API_MD = (ROOT / "docs" / "api.md").read_text()

# Where an error's code is not a literal nor a parameter, how it is found instead.
RENDERERS = {("errors.py", "api_error_handler")}  # renders an ApiError raised elsewhere
HTTP_ERRORS = ("errors.py", "http_error_handler")  # Starlette's routing errors
REJECTIONS = ("gateway.py", "run_command")  # the decider's rejections
# Fallbacks no request reaches: Starlette raises HTTPException only for 404 and 405 here,
# and every rejection carries a code (streams/outcome.py).
UNREACHABLE = {"http_error", "rejected"}


def _document() -> dict[str, Any]:
    app = create_app(ApiDeps(reads=None, commands=None, positions=None))  # type: ignore[arg-type]
    return openapi_document(app.routes)


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(API.rglob("*.py")):
        yield str(path.relative_to(API)), ast.parse(path.read_text(), str(path))


def _functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def _own_nodes(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[ast.AST]:
    """The nodes of ``fn``'s body, not those of functions defined inside it."""
    todo: list[ast.AST] = list(fn.body)
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            todo.extend(ast.iter_child_nodes(node))


def _name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _params(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    return [a.arg for a in (*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs)]


def _constants(tree: ast.Module) -> dict[str, str]:
    """Module-level ``NAME = "text"``."""
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                    found[target.id] = node.value.value
    return found


def _arguments_to(tree: ast.Module, function: str, param: str) -> set[str]:
    """The string literals passed as ``param`` in every call of ``function`` in ``tree``
    (the module that defines it)."""
    found: set[str] = set()
    position = None
    for fn in _functions(tree):
        if fn.name == function:
            position = _params(fn).index(param)
    assert position is not None, f"no function {function} with a parameter {param}"
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        if node.func.id != function:
            continue
        given = [k.value for k in node.keywords if k.arg == param]
        if len(node.args) > position:
            given.append(node.args[position])
        assert given, f"a call of {function} at line {node.lineno} does not pass {param}"
        for arg in given:
            assert isinstance(arg, ast.Constant) and isinstance(arg.value, str), (
                f"{function}({param}=...) at line {node.lineno} is not a literal"
            )
            found.add(arg.value)
    assert found, f"{function} is never called"
    return found


def _resolve(
    arg: ast.expr, fn: ast.FunctionDef | ast.AsyncFunctionDef, tree: ast.Module
) -> set[str] | None:
    """The strings ``arg`` can be: a literal, a module constant, or a parameter of ``fn``
    (then every literal its callers pass); None when it is none of these."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return {arg.value}
    if isinstance(arg, ast.Name):
        if arg.id in _params(fn):
            return _arguments_to(tree, fn.name, arg.id)
        consts = _constants(tree)
        if arg.id in consts:
            return {consts[arg.id]}
    return None


def raised_errors() -> dict[str, set[int]]:
    """Every error code the API can answer with, and its HTTP statuses."""
    found: dict[str, set[int]] = defaultdict(set)
    for module, tree in _modules():
        for fn in _functions(tree):
            for node in _own_nodes(fn):
                if not isinstance(node, ast.Call):
                    continue
                if _name(node.func) not in ("ApiError", "error_response"):
                    continue
                status_arg, code_arg = node.args[0], node.args[1]
                codes = _resolve(code_arg, fn, tree)
                where = (module, fn.name)
                if codes is not None:
                    assert isinstance(status_arg, ast.Constant), f"{where}: status not a literal"
                    assert isinstance(status_arg.value, int), f"{where}: status not a number"
                    for code in codes:
                        found[code].add(status_arg.value)
                elif where == HTTP_ERRORS:
                    for status, code in _HTTP_CODES.items():
                        found[code].add(status)
                elif where == REJECTIONS:
                    for reason in REJECTION_STATUS:
                        status, code = rejection(reason)
                        found[code].add(status)
                else:
                    assert where in RENDERERS, f"{module}:{node.lineno}: cannot tell the error code"
    return dict(found)


def documented_errors() -> dict[str, int]:
    """code -> status of the table under ``## Errors`` in docs/api.md."""
    section = API_MD.split("\n## Errors\n", 1)[1].split("\n## ", 1)[0]
    table: dict[str, int] = {}
    for line in section.splitlines():
        row = re.match(r"^\| (\d{3}) \| ([^|]+) \|", line)
        if row:
            for code in re.findall(r"`([a-z_]+)`", row.group(2)):
                assert code not in table, f"{code} is in the error table twice"
                table[code] = int(row.group(1))
    assert len(table) > 10, "the error table was not found"
    return table


def test_every_error_the_api_raises_is_in_the_error_table_with_its_status() -> None:
    raised = raised_errors()
    table = documented_errors()
    for code, statuses in sorted(raised.items()):
        assert len(statuses) == 1, f"{code} is answered with several statuses: {statuses}"
        assert table.get(code) == next(iter(statuses)), (
            f"{code} is raised with {statuses}, docs/api.md says {table.get(code)}"
        )
    assert set(table) == set(raised), "the error table lists a code nothing raises"


def test_the_openapi_error_schema_names_every_code_and_every_status_has_an_operation() -> None:
    raised = raised_errors()
    assert set(ERROR_CODES) == set(raised)
    document = _document()
    assert document["components"]["schemas"]["Error"]["properties"]["error"]["properties"][
        "code"
    ] == {"enum": list(ERROR_CODES)}
    answered = {
        s for ops in document["paths"].values() for op in ops.values() for s in op["responses"]
    }
    # 405 answers a method the path does not have: no operation to list it under.
    for code, statuses in raised.items():
        for status in statuses - {405}:
            assert str(status) in answered, f"no operation lists {status} ({code})"


def test_the_error_example_is_the_error_shape() -> None:
    example = re.search(r'```json\n(\{"error": .*?)\n```', API_MD, re.S)
    assert example is not None
    body = json.loads(example.group(1))
    error_props = SCHEMAS["Error"]["properties"]["error"]
    assert set(body["error"]) == set(error_props["properties"]) == set(error_props["required"])
    assert body["error"]["code"] in ERROR_CODES


def _query_names() -> set[str]:
    """Every query parameter name the API reads (``query_params.get("x")``, ``["x"]``,
    ``getlist``, ``"x" in``, through aliases, constants and helpers' parameters)."""
    found: set[str] = set()

    def is_params(expr: ast.expr, aliases: set[str]) -> bool:
        return (isinstance(expr, ast.Attribute) and expr.attr == "query_params") or (
            isinstance(expr, ast.Name) and expr.id in aliases
        )

    for module, tree in _modules():
        for fn in _functions(tree):
            aliases = {
                t.id
                for node in _own_nodes(fn)
                if isinstance(node, ast.Assign) and is_params(node.value, set())
                for t in node.targets
                if isinstance(t, ast.Name)
            }
            for node in _own_nodes(fn):
                arg: ast.expr | None = None
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("get", "getlist", "__getitem__")
                    and is_params(node.func.value, aliases)
                ):
                    arg = node.args[0]
                elif isinstance(node, ast.Subscript) and is_params(node.value, aliases):
                    arg = node.slice
                elif (
                    isinstance(node, ast.Compare)
                    and isinstance(node.ops[0], ast.In)
                    and is_params(node.comparators[0], aliases)
                ):
                    arg = node.left
                if arg is None:
                    continue
                names = _resolve(arg, fn, tree)
                assert names is not None, f"{module}:{arg.lineno}: cannot tell the parameter"
                found |= names
    return found


def test_every_query_parameter_the_api_reads_is_documented() -> None:
    read = _query_names()
    assert {"limit", "offset", "wait", "after", "as_of", "token", "last_event_id"} <= read
    for name in sorted(read):
        assert re.search(rf"[?&]{name}(?=[=&`\s])", API_MD), f"docs/api.md: no ?{name}"
    document = _document()
    offered = {
        p["name"]
        for ops in document["paths"].values()
        for op in ops.values()
        for p in op["parameters"]
        if p["in"] == "query"
    }
    assert offered == read == set(PARAMS), "OpenAPI offers a parameter nothing reads, or misses one"


# Representation -> (its OpenAPI schema, where docs/api.md lists its fields).
REPRESENTATIONS = {
    ("representations.py", "runstatus_json"): ("RunStatus", "`GET /process/{id}/runstatus` |"),
    ("representations.py", "step_json"): ("Step", "`GET /process/{id}/steps` |"),
    ("representations.py", "step_runstatus_json"): (
        "StepRunStatus",
        "`GET /process/{id}/steps/{step_id}/runstatus` |",
    ),
    ("routes/process_reads.py", "event_json"): ("Event", "`GET /process/{id}/events` |"),
    ("representations.py", "site_json"): ("Site", "`GET /site/{site_id}` |"),
    ("representations.py", "flow_json"): ("Flow", "`GET /flow/{flow_id}` |"),
    ("representations.py", "case_json"): ("Case", "`GET /case/{case_id}` |"),
    ("run_representations.py", "flowrun_json"): ("FlowRun", "### The FlowRun object"),
    ("run_representations.py", "flowrun_runstatus_json"): (
        "FlowRunStatus",
        "`GET /flowrun/{flowrun_id}/runstatus` |",
    ),
    ("run_representations.py", "caserun_json"): ("CaseRun", "### The CaseRun object"),
    ("routes/commands.py", "command_json"): ("CommandStatus", "`GET /command/{command_id}` |"),
    ("representations.py", "process_json"): ("Process", None),
    ("gateway.py", "response"): ("Accepted", None),
}


def _dict_keys(node: ast.Dict) -> list[str]:
    keys = []
    for key in node.keys:
        assert isinstance(key, ast.Constant) and isinstance(key.value, str)
        keys.append(key.value)
    return keys


def _produced(module: str, function: str) -> ast.Dict:
    """The dict literal ``function`` returns (or builds as ``body``)."""
    tree = ast.parse((API / module).read_text())
    for fn in _functions(tree):
        if fn.name != function:
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Return) and isinstance(node.value, ast.Dict):
                return node.value
            if (
                isinstance(node, ast.Assign | ast.AnnAssign)
                and isinstance(node.value, ast.Dict)
                and isinstance(
                    node.targets[0] if isinstance(node, ast.Assign) else node.target, ast.Name
                )
            ):
                return node.value
    raise AssertionError(f"{module}: {function} builds no dict literal")


def _top_level(text: str) -> list[str]:
    """The names of ``{a, b: {c}, d: [{e}]}``: a, b, d."""
    assert text[0] == "{" and text[-1] == "}", text
    names, depth, part = [], 0, ""
    for ch in text[1:-1] + ",":
        if ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
        if ch == "," and depth == 0:
            names.append(part.split(":")[0].strip())
            part = ""
        else:
            part += ch
    return names


def _braces_after(anchor: str) -> str:
    """The first ``{...}`` (balanced) after ``anchor`` in docs/api.md."""
    assert API_MD.count(anchor) == 1, f"docs/api.md: {anchor!r} is not there exactly once"
    start = API_MD.index("{", API_MD.index(anchor) + len(anchor))
    depth = 0
    for i in range(start, len(API_MD)):
        depth += {"{": 1, "}": -1}.get(API_MD[i], 0)
        if depth == 0:
            return re.sub(r"\s+", " ", API_MD[start : i + 1])
    raise AssertionError(anchor)


def _nested(node: ast.Dict, key: str) -> ast.Dict:
    """The dict literal of the list comprehension that is ``node[key]``."""
    value = node.values[_dict_keys(node).index(key)]
    assert isinstance(value, ast.ListComp) and isinstance(value.elt, ast.Dict)
    return value.elt


def test_representations_have_the_fields_of_their_schema_and_of_the_docs() -> None:
    for (module, function), (schema, anchor) in REPRESENTATIONS.items():
        keys = _dict_keys(_produced(module, function))
        assert keys == list(SCHEMAS[schema]["properties"]), f"{function} vs schema {schema}"
        if anchor is not None:
            assert _top_level(_braces_after(anchor)) == keys, f"{function} vs docs: {anchor}"


def test_nested_fields_match_too() -> None:
    runstatus = _produced("run_representations.py", "flowrun_runstatus_json")
    node_keys = _dict_keys(_nested(runstatus, "nodes"))
    node_schema = SCHEMAS["FlowRunStatus"]["properties"]["nodes"]["items"]["properties"]
    assert node_keys == list(node_schema)
    doc = _braces_after("`GET /flowrun/{flowrun_id}/runstatus` |")
    assert _top_level(re.search(r"nodes: \[(\{.*?\})\]", doc).group(1)) == node_keys  # type: ignore[union-attr]

    flowrun = _produced("run_representations.py", "flowrun_json")
    log_keys = _dict_keys(_nested(flowrun, "logs"))
    assert log_keys == list(SCHEMAS["FlowRun"]["properties"]["logs"]["items"]["properties"])
    assert _top_level(_braces_after("`logs` are")) == log_keys

    # A FlowRun node's data: the Flow's fields plus the run state written over them.
    tree = ast.parse((API / "run_representations.py").read_text())
    updates = [
        node
        for fn in _functions(tree)
        if fn.name == "_node_json"
        for node in ast.walk(fn)
        if isinstance(node, ast.Call) and _name(node.func) == "update"
    ]
    run_state = {k.arg for k in updates[0].keywords}
    data_schema = SCHEMAS["FlowRunNode"]["properties"]["data"]["properties"]
    assert run_state <= set(data_schema)
    section = API_MD.split("### The FlowRun object", 1)[1].split("###", 1)[0]
    for name in run_state:
        assert f"`{name}`" in section, f"docs/api.md: a FlowRun node's data.{name}"

    # A CaseRun step and its parts.
    steps = SCHEMAS["CaseRun"]["properties"]["steps"]["items"]["properties"]
    tree = ast.parse((API / "run_representations.py").read_text())
    step_keys = [
        t.slice.value
        for fn in _functions(tree)
        if fn.name == "_step_json"
        for node in ast.walk(fn)
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Subscript) and isinstance(t.slice, ast.Constant)
    ]
    assert step_keys == list(steps)
    assert _top_level(_braces_after("steps in order, each")) == step_keys
    part = _produced("run_representations.py", "_part_json")
    part_keys = [k for k in _dict_keys_or_spread(part)]
    assert set(part_keys) <= set(SCHEMAS["CaseRunPart"]["properties"])


def _dict_keys_or_spread(node: ast.Dict) -> list[str]:
    return [k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]


def test_the_json_examples_have_the_fields_the_api_produces() -> None:
    process = re.search(r"### The Process object\n\n```json\n(.*?)\n```", API_MD, re.S)
    assert process is not None
    assert list(json.loads(process.group(1))) == _dict_keys(
        _produced("representations.py", "process_json")
    )
    accepted = re.search(r'\n\n(\{"command_id": .*?\})\n```', API_MD, re.S)
    assert accepted is not None
    names = re.findall(r'"(\w+)":', accepted.group(1))
    assert names == _dict_keys(_produced("gateway.py", "response"))
