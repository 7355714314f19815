"""Avro schemas of every event, command and outcome, and their single-object codec."""

from schemas.codec import Codec, DecodeError, SchemaError, UnknownSchemaError, default_codec
from schemas.registry import Registry, Schema

__all__ = [
    "Codec",
    "DecodeError",
    "Registry",
    "Schema",
    "SchemaError",
    "UnknownSchemaError",
    "default_codec",
]
