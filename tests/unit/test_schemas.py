"""The released Avro schemas, their single-object encoding and their evolution rules.

Checks every ``schemas/avro/*.avsc`` (names, fingerprints against fastavro's own
CRC-64-AVRO), round-trips one example record per schema file, proves that every pair
of versions of a name resolves both ways, and that a hypothetical v2 is accepted or
refused by the same checker that guards the real folder.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import shutil
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import fastavro
import pytest
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

from schemas import Codec, DecodeError, Registry, UnknownSchemaError
from schemas.codec import HEADER_LEN, MAGIC
from schemas.registry import AVRO_DIR, Schema, crc64_avro

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "tests" / "golden" / "schema_examples"


def _load_checker() -> Any:
    spec = importlib.util.spec_from_file_location(
        "check_schemas", ROOT / "scripts" / "check_schemas.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_schemas = _load_checker()
REGISTRY = Registry.load()
CODEC = Codec(REGISTRY)
SCHEMA_FILES = sorted(AVRO_DIR.glob("*.avsc"))

# Fingerprints of released schemas. A released .avsc is never edited, so these never
# change; a new version is a new file (add its line here when it ships).
RELEASED = {
    "account.token_created.v1": "844a82639695a5fb",
    "account.token_revoked.v1": "074627d3272e4911",
    "case.created.v1": "3288001839c1c967",
    "case.deleted.v1": "d562da65fc98cd52",
    "caserun.cancelled.v1": "81b3eb2961f4f5d4",
    "caserun.completed.v1": "265ceced04f4b980",
    "caserun.created.v1": "86b617113e871954",
    "caserun.created.v2": "fd064cbe734e93c9",
    "caserun.deleted.v1": "2db2762acc0f5f9f",
    "caserun.step_failed.v1": "b7e825f732a6a1d0",
    "caserun.step_passed.v1": "a964750dae910692",
    "caserun.step_started.v1": "2a15a6d61faec150",
    "command.v1": "3083cd19743528f0",
    "flow.created.v1": "af2e1ad8c0edbe04",
    "flow.deleted.v1": "3deced748466de52",
    "flowrun.cancelled.v1": "f576d280fa3fc9fb",
    "flowrun.completed.v1": "203453081e002ba8",
    "flowrun.created.v1": "bc39f5c5b5f2b75e",
    "flowrun.created.v2": "9099b7ed5edc2d06",
    "flowrun.created.v3": "37f76b3fe2ca677b",
    "flowrun.deleted.v1": "272248a26fb61f5f",
    "flowrun.log.v1": "3d5af689e65f5522",
    "flowrun.node_failed.v1": "d2b8a9afb2233abf",
    "flowrun.node_passed.v1": "98b9de976a2a7da5",
    "flowrun.node_skipped.v1": "ad933618fb6b9581",
    "flowrun.node_started.v1": "107422e23a061e42",
    "flowrun.retried.v1": "45254a9daefd5cd3",
    "outcome.v1": "068711990c3f54d7",
    "process.cancelled.v1": "69e606f50891684d",
    "process.completed.v1": "6f0dd306ab18ddad",
    "process.created.v1": "d2d36db7ccbcc93b",
    "process.deleted.v1": "f030b865d906bb88",
    "process.failed.v1": "111d9252cda4f3cb",
    "process.log.v1": "893e08f5091abbb6",
    "process.progress.v1": "a0b7d0edaa0750f7",
    "process.restarted.v1": "921cbe6ecad4ccf7",
    "process.retried.v1": "9515615fc98034ee",
    "process.started.v1": "247a6d465efa4b23",
    "process.step_completed.v1": "45f03d3531ec800a",
    "process.step_failed.v1": "6be0cd78c88314d4",
    "process.step_started.v1": "f63b9b20841b5044",
    "process.waiting_review.v1": "13159484026c8f74",
    "site.created.v1": "4e1e352ff3d8da91",
    "site.deleted.v1": "904fa3158d1ee08f",
}


def _stem(path: Path) -> str:
    return path.name.removesuffix(".avsc").removesuffix(".json")


def _example(stem: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"{stem}.json").read_text())


def _write(schema: Any, record: dict[str, Any]) -> bytes:
    out = BytesIO()
    fastavro.schemaless_writer(out, schema, record)
    return out.getvalue()


def _read(body: bytes, writer: Any, reader: Any) -> dict[str, Any]:
    return fastavro.schemaless_reader(BytesIO(body), writer, reader)  # type: ignore[return-value]


# -- the files ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=_stem)
def test_schema_file_parses_and_is_named_after_its_content(path: Path) -> None:
    raw = json.loads(path.read_text())
    parse_schema(copy.deepcopy(raw))  # raises on an invalid schema
    name, _, version = _stem(path).rpartition(".v")
    assert version.isdigit() and int(version) >= 1
    assert raw["type"] == "record"
    fields = [f["name"] for f in raw["fields"]]
    assert len(fields) == len(set(fields)), f"{path.name} repeats a field"
    if name in ("command", "outcome"):
        assert raw["name"] == name.capitalize()
    else:
        # An event schema: aggregate in the namespace, the event type in its `type` field.
        aggregate = name.partition(".")[0]
        assert raw["namespace"] == f"runledger.{aggregate}"
        assert fields[:11] == [
            "event_id",
            "aggregate_type",
            "aggregate_id",
            "seq",
            "type",
            "occurred_at",
            "account",
            "actor",
            "command_id",
            "correlation_id",
            "causation_id",
        ]
        assert f"The {name} event, version {version}." == raw["doc"]


def test_registry_holds_every_file_and_indexes_it_both_ways() -> None:
    schemas: list[Schema] = list(REGISTRY)
    assert len(schemas) == len(SCHEMA_FILES)
    for schema in schemas:
        assert schema.path.name == f"{schema.name}.v{schema.version}.avsc"
        assert REGISTRY.by_fingerprint(schema.fingerprint) is schema
        assert REGISTRY.get(schema.name, schema.version) is schema
        assert REGISTRY.latest(schema.name) is REGISTRY.versions(schema.name)[-1]


def test_fingerprints_are_distinct() -> None:
    fingerprints = [s.fingerprint for s in REGISTRY]
    assert len(set(fingerprints)) == len(fingerprints)


@pytest.mark.parametrize("schema", list(REGISTRY), ids=lambda s: f"{s.name}.v{s.version}")
def test_header_is_c301_and_the_little_endian_crc64_avro_of_fastavro(schema: Any) -> None:
    canonical = to_parsing_canonical_form(parse_schema(copy.deepcopy(schema.raw)))
    # fastavro returns the hex of the fingerprint's little-endian bytes.
    expected = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
    assert schema.header == MAGIC + expected
    assert len(schema.header) == HEADER_LEN
    assert schema.fingerprint.to_bytes(8, "little") == expected
    assert crc64_avro(canonical.encode()) == schema.fingerprint


def test_crc64_avro_matches_fastavro_on_primitive_schemas() -> None:
    for canonical in ('"null"', '"int"', '"string"', '{"type":"array","items":"long"}'):
        expected = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
        assert crc64_avro(canonical.encode()).to_bytes(8, "little") == expected


def test_released_schemas_are_never_edited_or_removed() -> None:
    for stem, pinned in RELEASED.items():
        name, _, version = stem.rpartition(".v")
        try:
            schema = REGISTRY.get(name, int(version))
        except KeyError:
            pytest.fail(f"{stem}.avsc was released and must never be removed")
        actual = schema.fingerprint.to_bytes(8, "little").hex()
        assert actual == pinned, (
            f"{stem}.avsc changed after release (fingerprint {actual}, released {pinned}): "
            f"restore it and add {name}.v{int(version) + 1}.avsc instead"
        )


def released_digest(path: Path) -> str:
    """sha256 of a schema file as JSON with sorted keys: defaults and docs count,
    whitespace and key order do not."""
    document = json.loads(path.read_text())
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def test_released_schemas_keep_their_defaults_and_docs() -> None:
    # The fingerprint covers the parsing canonical form only, which drops "default":
    # an edited default would change how old and new events resolve, unseen by it.
    pinned = ROOT / "tests" / "golden" / "released_schemas.sha256"
    for line in pinned.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        digest, stem = line.split()
        path = AVRO_DIR / f"{stem}.avsc"
        assert path.exists(), f"{stem}.avsc was released and must never be removed"
        assert released_digest(path) == digest, (
            f"{stem}.avsc changed after release (a default or doc was edited): restore it "
            "and add a next version instead"
        )


# -- examples ----------------------------------------------------------------------------


def test_every_schema_file_has_an_example_and_every_example_a_schema() -> None:
    schemas = {_stem(p) for p in SCHEMA_FILES}
    examples = {_stem(p) for p in EXAMPLES.glob("*.json")}
    assert not schemas - examples, (
        f"add tests/golden/schema_examples/<name>.json for these: {sorted(schemas - examples)}"
    )
    assert not examples - schemas, f"examples without a schema: {sorted(examples - schemas)}"


@pytest.mark.parametrize("schema", list(REGISTRY), ids=lambda s: f"{s.name}.v{s.version}")
def test_example_round_trips_through_the_codec(schema: Any) -> None:
    stem = f"{schema.name}.v{schema.version}"
    if not (EXAMPLES / f"{stem}.json").exists():
        pytest.fail(f"{stem} has no example in {EXAMPLES}")
    record = _example(stem)
    assert set(record) == set(schema.field_names), "an example sets every field of its schema"
    if "type" in record:
        assert record["type"] == schema.name, "an event example carries its own type"
    body = _write(schema.parsed, record)
    data = schema.header + body
    if schema is REGISTRY.latest(schema.name):
        assert CODEC.encode(schema.name, record) == data
    newest = REGISTRY.latest(schema.name)
    # Any version decodes as the newest: an older one's record gains the new defaults.
    reader = None if schema is newest else newest.parsed
    assert CODEC.decode(data) == (schema.name, _read(body, schema.parsed, reader))
    if schema is newest:
        assert CODEC.decode(data) == (schema.name, record)
    else:
        added = set(newest.field_names) - set(schema.field_names)
        decoded = CODEC.decode(data)[1]
        assert {k: v for k, v in decoded.items() if k not in added} == record


# -- evolution ---------------------------------------------------------------------------


def _pairs(name: str) -> list[tuple[Any, Any]]:
    versions = REGISTRY.versions(name)
    return [(old, new) for i, old in enumerate(versions) for new in versions[i:]]


@pytest.mark.parametrize("name", REGISTRY.names())
def test_every_pair_of_versions_resolves_both_ways(name: str) -> None:
    """Old writer → new reader always; new writer → old reader as Avro allows.

    Includes (vN, vN), so today, with only v1 of each name, the data path is still run.
    """
    for old, new in _pairs(name):
        old_record = _example(f"{name}.v{old.version}")
        new_record = _example(f"{name}.v{new.version}")
        label = f"{name} v{old.version}→v{new.version}"

        assert not check_schemas.pair_problems(old, new), label
        read = _read(_write(old.parsed, old_record), old.parsed, new.parsed)
        for field in new.raw["fields"]:
            expected = old_record.get(field["name"], field.get("default"))
            assert read[field["name"]] == expected, f"{label}: {field['name']}"

        read_back = _read(_write(new.parsed, new_record), new.parsed, old.parsed)
        assert set(read_back) == set(old.field_names), label
        for key in old.field_names:
            if key in new_record:
                assert read_back[key] == new_record[key], f"{label}: {key}"

        # The codec reads any released version with the newest schema of the name.
        assert CODEC.decode(old.header + _write(old.parsed, old_record))[0] == name


def test_the_checker_passes_on_the_real_schemas_folder() -> None:
    assert check_schemas.check_folder(AVRO_DIR) == []
    assert check_schemas.main(["check_schemas.py", str(AVRO_DIR)]) == 0


def _with_next(tmp_path: Path, name: str, new_field: dict[str, Any]) -> Path:
    """A copy of the real folder plus the next version of ``name``: one more field."""
    latest = REGISTRY.latest(name)
    folder = tmp_path / "avro"
    shutil.copytree(AVRO_DIR, folder)
    raw = copy.deepcopy(latest.raw)
    raw["doc"] = f"{raw.get('doc', '')} (a hypothetical next version)"
    raw["fields"].append(new_field)
    (folder / f"{name}.v{latest.version + 1}.avsc").write_text(json.dumps(raw, indent=2))
    return folder


@pytest.mark.parametrize("name", REGISTRY.names())
def test_a_next_version_adding_a_field_with_a_default_resolves_both_ways(
    tmp_path: Path, name: str
) -> None:
    field = {"name": "added_later", "type": ["null", "long"], "default": None}
    folder = _with_next(tmp_path, name, field)
    assert check_schemas.check_folder(folder) == []

    registry = Registry.load(folder)
    old, new = registry.versions(name)[-2:]
    assert new.version == old.version + 1
    assert old.fingerprint == REGISTRY.latest(name).fingerprint
    assert new.fingerprint != old.fingerprint
    new_codec = Codec(registry)
    record = _example(f"{name}.v{old.version}")

    # Old writer → new reader: bytes written before the new version read with the default.
    old_bytes = CODEC.encode(name, record)
    assert old_bytes[:HEADER_LEN] == old.header
    assert new_codec.decode(old_bytes) == (name, {**record, "added_later": None})

    # New writer → old reader: a consumer that still reads with the old version skips
    # the new field, once it has the new file (the writer schema) to resolve the
    # fingerprint.
    new_bytes = new_codec.encode(name, {**record, "added_later": 90})
    assert new_bytes[:HEADER_LEN] == new.header
    assert new_codec.decode(new_bytes) == (name, {**record, "added_later": 90})
    assert _read(new_bytes[HEADER_LEN:], new.parsed, old.parsed) == record

    # Without the new file the fingerprint is unknown: consumers must ship every .avsc.
    with pytest.raises(UnknownSchemaError, match=f"{new.fingerprint:016x}"):
        CODEC.decode(new_bytes)


def test_a_v2_adding_a_field_without_a_default_is_not_backward_compatible(
    tmp_path: Path,
) -> None:
    field = {"name": "eta_seconds", "type": "long"}
    folder = _with_next(tmp_path, "process.progress", field)
    problems = check_schemas.check_folder(folder)
    assert problems == [
        "process.progress v1→v2 not backward compatible (new reader, old data): "
        "eta_seconds: the reader needs this field, the writer lacks it, no default"
    ]
    assert check_schemas.main(["check_schemas.py", str(folder)]) == 1

    # The data path agrees: v1 bytes no longer decode once v2 is the newest reader.
    old_bytes = CODEC.encode("process.progress", _example("process.progress.v1"))
    with pytest.raises(DecodeError, match="eta_seconds"):
        Codec(Registry.load(folder)).decode(old_bytes)


@pytest.mark.parametrize("name", REGISTRY.names())
def test_any_next_version_without_a_default_is_caught(tmp_path: Path, name: str) -> None:
    folder = _with_next(tmp_path, name, {"name": "added_later", "type": "string"})
    problems = check_schemas.check_folder(folder)
    # one per older version that the next one could no longer read
    assert len(problems) == len(REGISTRY.versions(name)), problems
    for problem in problems:
        assert f"{name} v" in problem and "not backward compatible" in problem


def test_a_v2_removing_a_field_without_a_default_is_not_forward_compatible(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "avro"
    shutil.copytree(AVRO_DIR, folder)
    raw = json.loads((AVRO_DIR / "process.failed.v1.avsc").read_text())
    raw["fields"] = [f for f in raw["fields"] if f["name"] != "exception"]
    (folder / "process.failed.v2.avsc").write_text(json.dumps(raw))
    problems = check_schemas.check_folder(folder)
    assert len(problems) == 1
    assert "not forward compatible (old reader, new data): exception" in problems[0]


@pytest.mark.parametrize(
    ("writer", "reader", "ok"),
    [
        ("int", "long", True),
        ("long", "int", False),
        ("float", "double", True),
        ("string", "bytes", True),
        ("string", ["null", "string"], True),
        (["null", "string"], "string", False),
        (["null", "int"], ["null", "long"], True),
        ({"type": "long", "logicalType": "timestamp-micros"}, "long", True),
        ({"type": "array", "items": "int"}, {"type": "array", "items": "long"}, True),
        ({"type": "map", "values": "string"}, {"type": "map", "values": "int"}, False),
        (
            {"type": "enum", "name": "E", "symbols": ["A", "B"]},
            {"type": "enum", "name": "E", "symbols": ["A"]},
            False,
        ),
        (
            {"type": "enum", "name": "E", "symbols": ["A", "B"]},
            {"type": "enum", "name": "E", "symbols": ["A"], "default": "A"},
            True,
        ),
        (
            {"type": "fixed", "name": "F", "size": 4},
            {"type": "fixed", "name": "F", "size": 8},
            False,
        ),
        (
            {"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]},
            {"type": "record", "name": "S", "fields": [{"name": "a", "type": "int"}]},
            False,
        ),
        (
            {"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]},
            {
                "type": "record",
                "name": "R",
                "fields": [{"name": "b", "type": "int", "aliases": ["a"]}],
            },
            True,
        ),
    ],
)
def test_the_checker_follows_avro_resolution(writer: Any, reader: Any, ok: bool) -> None:
    assert (check_schemas.resolution_problems(writer, reader) == []) is ok


# -- corrupt bytes -----------------------------------------------------------------------


def _good() -> bytes:
    return CODEC.encode("process.progress", _example("process.progress.v1"))


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (b"", DecodeError, "missing the C3 01 marker"),
        (b'{"type": "json"}', DecodeError, "missing the C3 01 marker"),
        (b"\xc3\x02" + bytes(8) + b"\x00", DecodeError, "missing the C3 01 marker"),
        (b"\xc3\x01\x00\x01", DecodeError, "truncated header: 4 bytes, need 10"),
        (b"\xc3\x01" + bytes(8), UnknownSchemaError, "no released schema has fingerprint 0000"),
        (b"\xc3\x01" + b"\xff" * 8 + b"body", UnknownSchemaError, "ffffffffffffffff"),
    ],
    ids=["empty", "json", "bad-magic", "short-header", "zero-fingerprint", "unknown-fingerprint"],
)
def test_undecodable_headers_raise_with_a_clear_message(
    data: bytes, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        CODEC.decode(data)


def test_unknown_schema_error_is_a_decode_error() -> None:
    assert issubclass(UnknownSchemaError, DecodeError)


def test_a_truncated_body_raises_decode_error_naming_the_schema() -> None:
    data = _good()
    for cut in range(HEADER_LEN, len(data)):
        with pytest.raises(DecodeError, match="process.progress: corrupt Avro body"):
            CODEC.decode(data[:cut])


def test_trailing_bytes_raise_decode_error() -> None:
    with pytest.raises(DecodeError, match="process.progress: 3 stray bytes after record"):
        CODEC.decode(_good() + b"\x00\x01\x02")


def test_a_body_of_another_schema_under_a_header_is_refused() -> None:
    progress = _good()
    started = CODEC.encode("process.started", _example("process.started.v1"))
    with pytest.raises(DecodeError):
        CODEC.decode(started[:HEADER_LEN] + progress[HEADER_LEN:])


def test_encoding_a_record_that_does_not_fit_raises_encode_error() -> None:
    from schemas.codec import EncodeError

    record = {**_example("process.progress.v1"), "progress": "half"}
    with pytest.raises(EncodeError, match="process.progress: record does not fit"):
        CODEC.encode("process.progress", record)
    with pytest.raises(KeyError, match="no schema named"):
        CODEC.encode("process.unknown", record)


# -- the consumer's example in docs/events.md ---------------------------------------------


def test_the_python_example_in_the_events_doc_decodes_every_example(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = (ROOT / "docs" / "events.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(ROOT)  # the example loads schemas/avro relative to the repository
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/events.md", "exec"), namespace)
    for schema in REGISTRY:
        record = _example(f"{schema.name}.v{schema.version}")
        message = schema.header + _write(schema.parsed, record)
        name, decoded = namespace["decode"](message, namespace["schemas"])
        assert name == schema.name
        for key, value in decoded.items():
            if hasattr(value, "timestamp"):  # timestamp-micros → an aware datetime
                delta = value - datetime(1970, 1, 1, tzinfo=UTC)
                value = delta // timedelta(microseconds=1)
            assert value == record[key], f"{schema.name}: {key}"
