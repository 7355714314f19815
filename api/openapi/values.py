"""Small JSON Schema values shared by the schema modules."""

from __future__ import annotations

S = "#/components/schemas/"
NULL_STR = {"type": ["string", "null"]}
TIME = {"type": ["string", "null"], "format": "date-time"}
TEXT = {"type": "string"}


def ref(name: str) -> dict[str, str]:
    """A JSON Schema reference to one of the components' schemas."""
    return {"$ref": S + name}
