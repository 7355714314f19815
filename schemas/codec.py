"""Avro single-object encoding (Avro specification, "Single-object encoding").

``C3 01`` + the writer schema's 8-byte little-endian CRC-64-AVRO fingerprint + the Avro
binary body. Decoding resolves the fingerprint against every released schema and reads
with the newest version of that name, so old events stay readable forever.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from schemas.registry import Registry, Schema

MAGIC = b"\xc3\x01"
HEADER_LEN = 10


class SchemaError(Exception):
    """Base of every schema and codec error."""


class DecodeError(SchemaError):
    """The bytes are not a readable single-object encoded record: dead-letter them."""


class UnknownSchemaError(DecodeError):
    """The fingerprint names no schema in ``schemas/``: dead-letter, and add the schema."""


class EncodeError(SchemaError):
    """The record does not fit its schema: a bug in the caller, not in the data."""


class Codec:
    """Encodes records with the newest schema of a name; decodes any released version."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._readers: dict[int, tuple[Schema, Any]] = {}
        for schema in registry:
            newest = registry.latest(schema.name)
            reader = None if newest is schema else newest.parsed
            self._readers[schema.fingerprint] = (newest, (schema.parsed, reader))

    def encode(self, name: str, record: dict[str, Any]) -> bytes:
        """``record`` encoded with the newest schema called ``name``."""
        schema = self.registry.latest(name)
        out = BytesIO()
        out.write(schema.header)
        try:
            schemaless_writer(out, schema.parsed, record)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            # OverflowError: an int beyond Avro's 64-bit long (fastavro's C writer)
            raise EncodeError(f"{name}: record does not fit its schema: {exc}") from exc
        return out.getvalue()

    def decode(self, data: bytes) -> tuple[str, dict[str, Any]]:
        """The schema name and the record, read with the newest schema of that name.

        Raises DecodeError for bytes that are not single-object encoded Avro and
        UnknownSchemaError for a fingerprint that no released schema has.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            # a Kafka tombstone (value None): dead-letter it like any other bad message
            raise DecodeError("the message has no value" if data is None else "not bytes")
        if data[:2] != MAGIC:
            raise DecodeError("not Avro single-object encoding: missing the C3 01 marker")
        if len(data) < HEADER_LEN:
            raise DecodeError(f"truncated header: {len(data)} bytes, need {HEADER_LEN}")
        fingerprint = int.from_bytes(data[2:HEADER_LEN], "little")
        found = self._readers.get(fingerprint)
        if found is None:
            raise UnknownSchemaError(f"no released schema has fingerprint {fingerprint:016x}")
        newest, (writer, reader) = found
        body = BytesIO(data)
        body.seek(HEADER_LEN)
        try:
            record = schemaless_reader(body, writer, reader)
        except Exception as exc:  # fastavro raises many types for corrupt input
            raise DecodeError(f"{newest.name}: corrupt Avro body: {exc}") from exc
        if body.tell() != len(data):
            raise DecodeError(f"{newest.name}: {len(data) - body.tell()} stray bytes after record")
        return newest.name, record  # type: ignore[return-value]


_default: Codec | None = None


def default_codec() -> Codec:
    """The codec over the schemas shipped in this package (loaded once)."""
    global _default
    if _default is None:
        _default = Codec(Registry.load())
    return _default
