"""Inputs for the API fuzz test (tests/integration/test_api_fuzz.py): hypothesis
strategies and fixed catalogs of bad bodies, query strings, path ids and headers.

The strategies are built from the operation's entry in ``/openapi.json`` (its request
body schema, its query and header parameters), so a new endpoint or field is fuzzed
without touching this file. The catalogs hold the cases the requirement names (wrong
types, nulls, huge numbers, deep nesting, NUL and unicode text, arrays for objects,
non-JSON bytes, wrong Content-Type, negative or huge pages, garbage times, ``..`` and
encoded slashes, odd tokens): every operation gets each of them, hypothesis adds random
ones on top.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

JSON = "application/json"
LONE_SURROGATE = "\ud800"  # valid in JSON text as an escape, not encodable as UTF-8
POSITION = re.compile(r"\s*\d+\s*:\s*\d+\s*")

ODD_TEXT = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "é😀中文",
    "\u202eright-to-left",
    LONE_SURROGATE,
    "x" * 5000,
    "..",
    "../../etc/passwd",
    "%00",
    "null",
    "-1",
    "1e309",
    "'; DROP TABLE processes; --",
    "<script>alert(1)</script>",
]
ODD_NUMBERS: list[Any] = [
    -1,
    0,
    2**31,
    2**63,
    -(2**63) - 1,
    2**64 + 1,
    10**30,
    -(10**30),
    1e308,
    -1e-320,
    float("nan"),
    float("inf"),
    float("-inf"),
]


@dataclass(frozen=True)
class Body:
    """A raw request body and the Content-Type it is sent with (None: no header)."""

    content: bytes
    content_type: str | None = JSON

    def headers(self) -> dict[str, bytes]:
        """The Content-Type header as bytes (it may hold non-ASCII on purpose)."""
        if self.content_type is None:
            return {}
        return {"Content-Type": self.content_type.encode()}


def encode(value: Any) -> bytes:
    """``value`` as JSON text, NaN and Infinity included (as Python writes them: a
    client may send them, and ``json.loads`` reads them)."""
    return json.dumps(value, allow_nan=True).encode()


def nested(depth: int, opener: str = "[") -> bytes:
    closer = {"[": "]", "{": "}"}[opener]
    if opener == "{":
        return b'{"a":' * depth + b"1" + b"}" * depth
    return (opener * depth + closer * depth).encode()


BODY_CATALOG: list[Body] = [
    Body(b"[]"),
    Body(b"[{}]"),
    Body(b"null"),
    Body(b'"text"'),
    Body(b"12345678901234567890123456789"),
    Body(b"\x00\xff\xfe not json"),
    Body(b"{"),
    Body(b'{"a": NaN, "b": Infinity, "c": -Infinity}'),
    Body(b'{"a": "\\ud800", "b": "\\u0000"}'),
    Body(b'{"a": 1' + b"0" * 5000 + b"}"),
    Body(b'{"a": ' + nested(200) + b"}"),
    Body(nested(100_000)),
    Body(nested(2000, "{")),
    Body(b'{"a": 1, "a": 2}'),
    Body('{"é": "😀"}'.encode("utf-16")),
    Body(b'{"type": "scan"}', "text/plain"),
    Body(b'{"type": "scan"}', None),
    Body(b'{"type": "scan"}', "application/x-www-form-urlencoded"),
    Body(b'{"type": "scan"}', "multipart/form-data; boundary=x"),
    Body(b'{"type": "scan"}', "application/json; charset=latin-1"),
    Body(b'{"type": "scan"}', "\u00e9/\u00e9"),
]


def scalars(ids: Sequence[str] = ()) -> st.SearchStrategy[Any]:
    """Any JSON scalar, weighted towards the values that break code: NUL, lone
    surrogates, huge and non-finite numbers, and ids that exist."""
    text = st.one_of(st.text(max_size=12), st.sampled_from(ODD_TEXT))
    if ids:
        text = st.one_of(text, st.sampled_from(list(ids)))
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.sampled_from(ODD_NUMBERS),
        st.floats(),
        text,
    )


def any_json(ids: Sequence[str] = ()) -> st.SearchStrategy[Any]:
    """Any JSON document, nested a little."""
    return st.recursive(
        scalars(ids),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.text(max_size=8), inner, max_size=4),
        ),
        max_leaves=10,
    )


@dataclass(frozen=True)
class SchemaFuzz:
    """Values shaped by a JSON schema (``components`` resolves ``$ref``), each field
    now and then replaced by any JSON, dropped, or joined by an unknown one."""

    components: Mapping[str, Any]
    ids: Sequence[str] = ()
    field_values: Mapping[str, Sequence[Any]] = field(default_factory=dict)

    def value(self, schema: Mapping[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
        if "$ref" in schema:
            return self.value(self.components[schema["$ref"].rsplit("/", 1)[1]], depth)
        if "const" in schema:
            return st.just(schema["const"])
        if "enum" in schema:
            return st.sampled_from(list(schema["enum"]))
        kinds = schema.get("type", "object")
        if isinstance(kinds, list):
            return st.one_of([self.value({**schema, "type": k}, depth) for k in kinds])
        if kinds == "object":
            return self._object(schema, depth)
        if kinds == "array":
            item = self.value(schema.get("items", {}), depth + 1) if depth < 4 else any_json()
            return st.lists(item, max_size=min(3, schema.get("maxItems", 3)))
        return self._scalar(kinds)

    def _scalar(self, kind: str) -> st.SearchStrategy[Any]:
        odd = st.sampled_from(ODD_NUMBERS)
        if kind == "string":
            words = st.one_of(st.text(max_size=10), st.text(max_size=10), st.sampled_from(ODD_TEXT))
            return st.one_of(words, st.sampled_from(list(self.ids))) if self.ids else words
        if kind == "integer":
            return st.one_of(st.integers(min_value=-5, max_value=120), odd)
        if kind == "number":
            return st.one_of(st.floats(min_value=-5, max_value=120), odd)
        if kind == "boolean":
            return st.booleans()
        return st.none()

    def _object(self, schema: Mapping[str, Any], depth: int) -> st.SearchStrategy[Any]:
        props: Mapping[str, Any] = schema.get("properties", {})
        if not props or depth > 4:
            return st.dictionaries(st.text(max_size=8), any_json(self.ids), max_size=3)
        fields = {name: self._field(name, sub, depth) for name, sub in props.items()}
        required = set(schema.get("required", ()))
        shaped = st.fixed_dictionaries(
            {k: v for k, v in fields.items() if k in required},
            optional={k: v for k, v in fields.items() if k not in required},
        )
        extra = st.dictionaries(st.text(max_size=8), any_json(), max_size=2)
        return st.tuples(shaped, extra).map(lambda pair: {**pair[1], **pair[0]})

    def _field(self, name: str, schema: Mapping[str, Any], depth: int) -> st.SearchStrategy[Any]:
        known = self.field_values.get(name)
        shaped = self.value(schema, depth + 1)
        if known:
            shaped = st.one_of(st.sampled_from(list(known)), shaped)
        return st.one_of(shaped, shaped, shaped, scalars(self.ids), any_json(self.ids))

    def bodies(
        self, schema: Mapping[str, Any] | None, usable: Mapping[str, Any]
    ) -> st.SearchStrategy[Body]:
        """Bodies for an operation: mostly a ``usable`` body with one value changed,
        dropped or added, or JSON shaped by ``schema`` (if any), so that the fuzzed
        values reach the deeper checks; then any JSON, raw bytes, deep nesting, and a
        wrong or missing Content-Type now and then."""
        anything = any_json(self.ids).map(encode)
        shaped = self.value(schema).map(encode) if schema is not None else anything
        changed = one_change(usable, self.ids).map(encode) if usable else shaped
        odd_type = st.sampled_from(["application/problem+json", "text/plain", None])
        return st.one_of(
            st.builds(Body, changed),
            st.builds(Body, changed),
            st.builds(Body, changed),
            st.builds(Body, shaped),
            st.builds(Body, shaped),
            st.builds(Body, anything),
            st.builds(Body, st.binary(max_size=40)),
            st.builds(Body, st.integers(min_value=1, max_value=3000).map(nested)),
            st.builds(Body, shaped, odd_type),
        )


Path = tuple[str | int, ...]


def paths_in(doc: Any, prefix: Path = ()) -> list[Path]:
    """The path of every value inside ``doc`` (objects and arrays included)."""
    found: list[Path] = []
    items: list[tuple[str | int, Any]] = []
    if isinstance(doc, dict):
        items = list(doc.items())
    elif isinstance(doc, list):
        items = list(enumerate(doc))
    for key, value in items:
        found.append((*prefix, key))
        found.extend(paths_in(value, (*prefix, key)))
    return found


def changed_at(doc: Any, path: Path, how: str, value: Any) -> Any:
    """A copy of ``doc`` with the value at ``path`` replaced by ``value``, dropped, or
    with ``value`` added beside it under an unknown key (``how``)."""
    copy = json.loads(json.dumps(doc))
    parent = copy
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if how == "replace":
        parent[last] = value
    elif how == "drop":
        del parent[last]
    elif isinstance(parent, dict):
        parent["unknown_field"] = value
    else:
        parent.append(value)
    return copy


def one_change(usable: Mapping[str, Any], ids: Sequence[str]) -> st.SearchStrategy[Any]:
    """``usable`` with one value, anywhere inside it, changed."""
    doc = dict(usable)
    return st.builds(
        lambda path, how, value: changed_at(doc, path, how, value),
        st.sampled_from(paths_in(doc)),
        st.sampled_from(["replace", "replace", "drop", "add"]),
        st.one_of(scalars(ids), any_json(ids)),
    )


# -- query strings ---------------------------------------------------------------------

QUERY_VALUES = [
    "",
    "-1",
    "0",
    "1",
    "1000",
    "1001",
    "99999999999999999999999999",
    "1.5",
    "1e3",
    "+5",
    " 7",
    "٣",  # an Arabic-Indic digit: int() reads it
    "1_000",
    "true",
    "maybe",
    "\x00",
    "é😀",
    "x" * 3000,
    "0:0",
    "9999:0",
    "99999999999999999999999:0",
    "0:-1",
    "a:b",
    "2024-13-45T25:61:61Z",
    "0001-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59-23:59",
    "2024-01-01",
    "now",
    "pending,running",
    "process.completed",
    "flowrun",
    "Running",
    "0:41,1:-5",
    "0:1,0:2",
]
UNKNOWN_PARAMS = ["foo", "limit[]", "", "as_of ", "ÿ"]


def query_values(name: str, positions: Sequence[str]) -> st.SearchStrategy[str]:
    """Values for query parameter ``name``. ``after`` names a position only from
    ``positions`` (already applied): any other well-formed one would make a read wait
    its whole timeout for an event that never comes, which is the documented 504."""
    pool = st.one_of(st.sampled_from(QUERY_VALUES), st.text(max_size=12))
    if name == "after":
        return st.one_of(
            pool.filter(lambda v: POSITION.fullmatch(v) is None or v.startswith("9")),
            st.sampled_from(list(positions) or ["0:0"]),
        )
    return pool


def query_catalog(names: Sequence[str], positions: Sequence[str]) -> list[list[tuple[str, str]]]:
    """Fixed query strings for an operation with parameters ``names``: every parameter
    at once set to a negative, a huge, a garbage, an empty and a NUL value; each one
    repeated; unknown parameters only."""
    catalog: list[list[tuple[str, str]]] = []
    for value in ("-1", "99999999999999999999999999", "a:b\x00é", "", "1e3", "٣"):
        catalog.append([(n, value) for n in names])
    catalog.append([(n, v) for n in names for v in ("1", "2")])
    catalog.append([(n, "0001-01-01T00:00:00+23:59") for n in names])
    catalog.append([(n, p) for n in names for p in positions[:1]] if names else [])
    catalog.append([(n, "v") for n in UNKNOWN_PARAMS])
    return catalog


def queries(names: Sequence[str], positions: Sequence[str]) -> st.SearchStrategy[Any]:
    """A list of (name, value) pairs: documented names, repeated or not, plus unknown."""
    known = [st.tuples(st.just(n), query_values(n, positions)) for n in names]
    unknown = st.tuples(st.one_of(st.sampled_from(UNKNOWN_PARAMS), st.text(max_size=6)), st.text())
    pair = st.one_of([*known, unknown]) if known else unknown
    return st.lists(pair, max_size=5)


# -- path ids --------------------------------------------------------------------------

PATH_ID_CATALOG = [
    "..",
    ".",
    "%2e%2e",
    "a%2Fb",
    "%2F",
    "%00",
    "%FF%FE",
    quote("é😀中文\u202e", safe=""),
    "x" * 3000,
    quote("' OR 1=1 --", safe=""),
]


def path_ids(pool: Sequence[str]) -> st.SearchStrategy[str]:
    """A path segment, percent-encoded as a client would (so ``/`` arrives as
    ``%2F``), or an id that exists."""
    words = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40)
    return st.one_of(
        st.sampled_from(list(pool)),
        words.map(lambda t: quote(t, safe="")),
        st.sampled_from(PATH_ID_CATALOG),
        st.integers(min_value=300, max_value=4000).map(lambda n: "é" * n).map(quote),
    )


# -- headers ---------------------------------------------------------------------------


def _latin(text: str) -> bytes:
    return text.encode("utf-8")


def authorization_catalog(token: str) -> list[dict[str, bytes]]:
    """Authorization variants around a valid ``token`` (none with white space at either
    end: HTTP trims it, and the client refuses to send it)."""
    values = [
        "",
        "Bearer",
        "bearer  " + token,
        "BEARER " + token,
        "Bearer\t" + token,
        "Basic " + token,
        "Token " + token,
        token + " extra",
        "Bearer Bearer " + token,
        "Bearer " + "x" * 4000,
        "Bearer é😀",
        "Bearer " + token[:-1],
    ]
    return [{"Authorization": _latin(v)} for v in values]


HEADER_VALUES: dict[str, list[str]] = {
    "Idempotency-Key": ["", "k", "x" * 256, "é😀", "a\tb"],
    "X-Correlation-Id": ["", "x" * 256, "é😀"],
    "Prefer": [
        "respond-async",
        "respond-async, wait=1",
        "wait=0",
        "wait=99999999999999999999",
        "wait=1.5;respond-async",
        "return=minimal",
    ],
    "Last-Event-ID": [
        "",
        "0:-1",
        "0:99999999999999999999",
        "99999999999999999999:0",
        "0:1,1:2",
        "a:b",
    ],
}


def header_values() -> st.SearchStrategy[bytes]:
    """Header values as bytes: what a client can put on the wire (no CR, LF or NUL,
    which the HTTP layer refuses before the app sees them), UTF-8 and Latin-1 both."""
    wire = st.binary(max_size=30).map(
        lambda b: bytes(c for c in b if c >= 0x20 and c != 0x7F).strip()
    )
    known = [_latin(v) for values in HEADER_VALUES.values() for v in values]
    return st.one_of(st.sampled_from(known), wire)


def headers_catalog(names: Sequence[str]) -> list[dict[str, bytes]]:
    """Each of ``names`` with each of its fixed odd values."""
    return [{name: _latin(v)} for name in names for v in HEADER_VALUES.get(name, [])]
