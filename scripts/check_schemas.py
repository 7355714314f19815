"""Check a folder of ``<name>.v<N>.avsc`` files before a release.

Every file must load (name, JSON, Avro), versions of a name run 1..N without gaps, no
two files share a fingerprint, and every pair of versions of a name resolves in both
directions under the Avro specification's schema-resolution rules: a new reader reads
old data (backward) and an old reader reads new data (forward). In practice that
means a new version only adds fields, each with a default.

    python scripts/check_schemas.py [folder]    # exit status 1, one line per problem

The resolution check is static (it compares schemas, no data), so it also catches a
change that no example record happens to exercise.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from schemas.registry import AVRO_DIR, Registry, Schema  # noqa: E402

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED = frozenset({"record", "error", "enum", "fixed"})
# Writer type → reader types it may be read as (Avro specification, "Schema Resolution").
PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}

Names = dict[str, dict[str, Any]]


def _fullname(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _collect(schema: Any, namespace: str | None, names: Names) -> None:
    """Index every named type of ``schema`` by its full name."""
    if isinstance(schema, list):
        for branch in schema:
            _collect(branch, namespace, names)
        return
    if not isinstance(schema, Mapping):
        return
    kind = schema.get("type")
    if kind in NAMED:
        full = _fullname(schema["name"], schema.get("namespace", namespace))
        names[full] = dict(schema)
        namespace = full.rpartition(".")[0] or None
        for field in schema.get("fields", ()):
            _collect(field["type"], namespace, names)
    elif kind == "array":
        _collect(schema["items"], namespace, names)
    elif kind == "map":
        _collect(schema["values"], namespace, names)
    else:
        _collect(kind, namespace, names)


class _Side:
    """One schema and its named types; ``node`` turns a reference into its definition."""

    def __init__(self, schema: Any) -> None:
        self.names: Names = {}
        self.root = schema
        namespace = schema.get("namespace") if isinstance(schema, Mapping) else None
        _collect(schema, namespace, self.names)

    def node(self, schema: Any) -> Any:
        while isinstance(schema, Mapping) and schema.get("type") not in (*NAMED, "array", "map"):
            schema = schema["type"]  # {"type": "long", "logicalType": ...} reads as long
        if isinstance(schema, str) and schema not in PRIMITIVES:
            return self._lookup(schema)
        return schema

    def _lookup(self, name: str) -> dict[str, Any]:
        if name in self.names:
            return self.names[name]
        for full, definition in self.names.items():
            if full.rpartition(".")[2] == name:
                return definition
        raise ValueError(f"unknown type {name!r}")


def _kind(node: Any) -> str:
    if isinstance(node, list):
        return "union"
    if isinstance(node, str):
        return node
    return "record" if node["type"] == "error" else node["type"]


def _short(node: Any) -> str:
    return node["name"].rpartition(".")[2]


def _resolve(w: _Side, ws: Any, r: _Side, rs: Any, where: str, seen: set) -> list[str]:
    wn, rn = w.node(ws), r.node(rs)
    wk, rk = _kind(wn), _kind(rn)
    if wk == "union":
        problems = []
        for branch in wn:
            problems += _resolve(w, branch, r, rn, where, seen)
        return problems
    if rk == "union":
        if any(not _resolve(w, wn, r, branch, where, seen) for branch in rn):
            return []
        return [f"{where}: writer type {wk} matches no branch of the reader's union"]
    if wk in PRIMITIVES or rk in PRIMITIVES:
        if wk == rk or rk in PROMOTIONS.get(wk, ()):
            return []
        return [f"{where}: writer type {wk} cannot be read as {rk}"]
    if wk != rk:
        return [f"{where}: writer type {wk} cannot be read as {rk}"]
    if wk == "array":
        return _resolve(w, wn["items"], r, rn["items"], f"{where}[]", seen)
    if wk == "map":
        return _resolve(w, wn["values"], r, rn["values"], f"{where}{{}}", seen)
    if _short(wn) != _short(rn) and _short(wn) not in rn.get("aliases", ()):
        return [f"{where}: writer {wk} {_short(wn)} is not the reader's {_short(rn)}"]
    if wk == "fixed":
        if wn["size"] != rn["size"]:
            return [f"{where}: fixed size {wn['size']} cannot be read as {rn['size']}"]
        return []
    if wk == "enum":
        missing = [s for s in wn["symbols"] if s not in rn["symbols"]]
        if missing and "default" not in rn:
            return [f"{where}: reader enum lacks symbols {missing} and has no default"]
        return []
    key = (id(wn), id(rn))
    if key in seen:  # a recursive type already being compared
        return []
    seen.add(key)
    problems = []
    written = {f["name"]: f for f in wn["fields"]}
    for field in rn["fields"]:
        here = f"{where}.{field['name']}" if where else field["name"]
        match = next(
            (written[n] for n in (field["name"], *field.get("aliases", ())) if n in written), None
        )
        if match is not None:
            problems += _resolve(w, match["type"], r, field["type"], here, seen)
        elif "default" not in field:
            problems.append(f"{here}: the reader needs this field, the writer lacks it, no default")
    return problems


def resolution_problems(writer: Any, reader: Any) -> list[str]:
    """Why data written with ``writer`` cannot be read with ``reader`` (raw JSON schemas).

    An empty list means Avro schema resolution succeeds for every record of ``writer``.
    """
    return _resolve(_Side(writer), writer, _Side(reader), reader, "", set())


def pair_problems(old: Schema, new: Schema) -> list[str]:
    """Both directions between two versions of one name, each problem named by direction."""
    label = f"{old.name} v{old.version}→v{new.version}"
    backward = resolution_problems(old.raw, new.raw)
    forward = resolution_problems(new.raw, old.raw)
    return [f"{label} not backward compatible (new reader, old data): {p}" for p in backward] + [
        f"{label} not forward compatible (old reader, new data): {p}" for p in forward
    ]


def check_folder(folder: Path = AVRO_DIR) -> list[str]:
    """Every problem of the schemas in ``folder``, one sentence each; [] when releasable."""
    try:
        registry = Registry.load(folder)  # names, JSON, Avro, distinct fingerprints
    except Exception as exc:
        return [f"{folder}: {exc}"]
    problems = []
    for name in registry.names():
        versions = registry.versions(name)
        numbers = [s.version for s in versions]
        if numbers != list(range(1, len(numbers) + 1)):
            problems.append(f"{name}: versions {numbers} do not run 1..N without gaps")
        for i, old in enumerate(versions):
            for new in versions[i + 1 :]:
                problems += pair_problems(old, new)
    return problems


def main(argv: list[str]) -> int:
    folder = Path(argv[1]) if len(argv) > 1 else AVRO_DIR
    problems = check_folder(folder)
    for problem in problems:
        print(problem)
    if not problems:
        print(f"{folder}: every schema loads and every pair of versions resolves both ways")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
