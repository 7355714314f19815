"""Every released writer schema, found by name or by its CRC-64-AVRO fingerprint.

A schema file is ``schemas/avro/<name>.v<N>.avsc`` and is never edited once released:
a change is a new file with the next ``N`` whose new fields have defaults.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import to_parsing_canonical_form

AVRO_DIR = Path(__file__).parent / "avro"
_FILE = re.compile(r"^(?P<name>[a-z_.]+)\.v(?P<version>\d+)\.avsc$")

_EMPTY = 0xC15D213AA4D7A795
_TABLE: list[int] = []
for _i in range(256):
    _fp = _i
    for _ in range(8):
        _fp = (_fp >> 1) ^ (_EMPTY & -(_fp & 1))
    _TABLE.append(_fp)


def crc64_avro(data: bytes) -> int:
    """The 64-bit Rabin fingerprint the Avro specification calls CRC-64-AVRO."""
    fp = _EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ byte) & 0xFF]
    return fp


def _strip_logical_types(node: Any) -> Any:
    """The same schema without logical types: timestamps stay integer microseconds.

    The binary layout is unchanged, so this decodes the same bytes; it spares fastavro
    from building a datetime per field, and keeps event times as the integers the
    domain folds over.
    """
    if isinstance(node, dict):
        return {k: _strip_logical_types(v) for k, v in node.items() if k != "logicalType"}
    if isinstance(node, list):
        return [_strip_logical_types(v) for v in node]
    return node


@dataclass(frozen=True)
class Schema:
    """One released writer schema: ``name`` (e.g. ``process.created``) and ``version``."""

    name: str
    version: int
    path: Path
    raw: dict[str, Any]
    parsed: Any
    fingerprint: int

    @property
    def header(self) -> bytes:
        """The single-object encoding prefix: ``C3 01`` then the fingerprint, little-endian."""
        return b"\xc3\x01" + self.fingerprint.to_bytes(8, "little")

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f["name"] for f in self.raw["fields"])


class Registry:
    """All schemas of a folder, indexed by fingerprint and by (name, version)."""

    def __init__(self, schemas: list[Schema]) -> None:
        self._by_fp: dict[int, Schema] = {}
        self._latest: dict[str, Schema] = {}
        self._all: dict[tuple[str, int], Schema] = {}
        for schema in sorted(schemas, key=lambda s: (s.name, s.version)):
            if schema.fingerprint in self._by_fp:
                other = self._by_fp[schema.fingerprint]
                raise ValueError(
                    f"{schema.path.name} has the same fingerprint as {other.path.name}"
                )
            self._by_fp[schema.fingerprint] = schema
            self._all[(schema.name, schema.version)] = schema
            self._latest[schema.name] = schema

    @classmethod
    def load(cls, folder: Path = AVRO_DIR) -> Registry:
        """Parse every ``*.avsc`` in ``folder``; a badly named or invalid file raises ValueError."""
        schemas = []
        for path in sorted(folder.glob("*.avsc")):
            match = _FILE.match(path.name)
            if match is None:
                raise ValueError(f"{path.name}: schema files are named <name>.v<N>.avsc")
            raw = json.loads(path.read_text())
            canonical = to_parsing_canonical_form(parse_schema(copy.deepcopy(raw)))
            schemas.append(
                Schema(
                    name=match["name"],
                    version=int(match["version"]),
                    path=path,
                    raw=raw,
                    parsed=parse_schema(_strip_logical_types(raw)),
                    fingerprint=crc64_avro(canonical.encode()),
                )
            )
        return cls(schemas)

    def latest(self, name: str) -> Schema:
        try:
            return self._latest[name]
        except KeyError:
            raise KeyError(f"no schema named {name!r} in the registry") from None

    def get(self, name: str, version: int) -> Schema:
        return self._all[(name, version)]

    def by_fingerprint(self, fingerprint: int) -> Schema | None:
        return self._by_fp.get(fingerprint)

    def names(self) -> list[str]:
        return sorted(self._latest)

    def versions(self, name: str) -> list[Schema]:
        return [s for (n, _), s in sorted(self._all.items()) if n == name]

    def __iter__(self) -> Iterator[Schema]:
        return iter(self._all.values())
