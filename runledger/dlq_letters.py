"""Dead letters as ``runledger dlq`` shows them: a record to a JSON document, filters,
and the summary table. Pure: no broker, so unit tests make :class:`Letter` values.

A dead letter is a message a consumer could not decode or apply: it keeps the original
key and bytes, and its headers say why (``reason``, ``error``) and where it came from
(``source_topic``, ``source_partition``, ``source_offset``). Two writers word the
headers alike today: a short token in ``reason`` (the projector's
projections/dead_letters.py: ``undecodable``, ``unknown_fingerprint``, ``sequence_gap``,
``rejected``; the deciders' streams/dead_letter_headers.py) and the sentence in
``error``. Decider letters of earlier releases, still in the topic, put the sentence in
``reason`` and the exception's class in ``error``. :func:`reason_of` turns both into a
token and a sentence, so that filters and the summary group alike; the raw headers are
printed as they are too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runledger.audit import iso
from schemas import Codec, SchemaError

# The envelope fields worth a glance, of an event record or of a command record.
DECODED_FIELDS = ("type", "name", "aggregate_type", "aggregate_id", "seq", "command_id")


@dataclass(frozen=True, slots=True)
class Letter:
    """One record of the dead-letter topic, as read (no Kafka type, so tests make them)."""

    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()

    def header(self, name: str) -> str | None:
        """The last header called ``name`` as text (undecodable bytes replaced), or None."""
        found = [v for k, v in self.headers if k == name]
        return found[-1].decode("utf-8", "replace") if found else None

    @property
    def source(self) -> tuple[str, int | None, int | None]:
        """``(source_topic, source_partition, source_offset)``; "" / None when absent."""
        return (
            self.header("source_topic") or "",
            _int_or_none(self.header("source_partition")),
            _int_or_none(self.header("source_offset")),
        )


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def reason_of(letter: Letter) -> tuple[str, str]:
    """``(reason, error)``: a token to group and filter by, and the sentence.

    A ``reason`` header with a space in it is an earlier release's decider sentence, and
    its ``error`` header the exception's class (``DecodeError``, ``UnusableBody``): the class is the
    token then. A letter without a ``reason`` header gets ``unknown``.
    """
    reason, error = letter.header("reason"), letter.header("error") or ""
    if reason is None:
        return "unknown", error
    if any(c.isspace() for c in reason) and error.isidentifier():
        return error, reason
    return reason, error


def text_or_hex(raw: bytes) -> tuple[str | None, str | None]:
    """``(text, None)`` for UTF-8 bytes, else ``(None, hex)``."""
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, raw.hex()


def describe_value(codec: Codec, value: bytes | None) -> dict[str, Any]:
    """``value_bytes`` and either ``decoded`` (the schema and the envelope fields of an
    event or command record) or ``decode_error`` (the codec's sentence)."""
    size = len(value or b"")
    if not value:
        return {"value_bytes": size, "decode_error": "the value is empty"}
    try:
        name, record = codec.decode(value)
    except SchemaError as exc:
        return {"value_bytes": size, "decode_error": str(exc)}
    decoded = {"schema": name, **{f: record[f] for f in DECODED_FIELDS if f in record}}
    return {"value_bytes": size, "decoded": decoded}


def letter_document(letter: Letter, codec: Codec) -> dict[str, Any]:
    """A dead letter as a JSON-ready dict: when and where it is in the dead-letter
    topic, why (:func:`reason_of`), where it came from, every header as text (those
    that are not UTF-8 in ``headers_hex``), the key and what the value is."""
    reason, error = reason_of(letter)
    topic, partition, offset = letter.source
    headers: dict[str, str] = {}
    headers_hex: dict[str, str] = {}
    for name, raw in letter.headers:
        text, hexed = text_or_hex(raw)
        if text is not None:
            headers[name] = text
        else:
            headers_hex[name] = hexed or ""
    doc: dict[str, Any] = {
        "time": iso(letter.timestamp_ms * 1000),
        "partition": letter.partition,
        "offset": letter.offset,
        "reason": reason,
        "error": error,
        "source_topic": topic,
        "source_partition": partition,
        "source_offset": offset,
        "headers": headers,
    }
    if headers_hex:
        doc["headers_hex"] = headers_hex
    key_text, key_hex = text_or_hex(letter.key) if letter.key is not None else (None, None)
    doc["key"] = key_text
    if key_hex is not None:
        doc["key_hex"] = key_hex
    doc.update(describe_value(codec, letter.value))
    return doc


@dataclass(frozen=True, slots=True)
class LetterFilter:
    """``reasons``: tokens of :func:`reason_of` or raw ``reason`` headers; ``sources``:
    the source topic or its end (``ledger.events`` matches any prefix). Empty: all."""

    reasons: frozenset[str] = frozenset()
    sources: tuple[str, ...] = ()

    def __call__(self, letter: Letter) -> bool:
        if self.reasons:
            token = reason_of(letter)[0]
            if token not in self.reasons and letter.header("reason") not in self.reasons:
                return False
        return not self.sources or letter.source[0].endswith(self.sources)


@dataclass(slots=True)
class Group:
    """The letters of one (source topic, reason)."""

    count: int = 0
    first_ms: int | None = None
    last_ms: int | None = None
    sources: set[tuple[int | None, int | None]] = field(default_factory=set)


@dataclass(slots=True)
class Summary:
    """Counts per (source topic, reason), and how many distinct source messages they
    are: every node's projector dead-letters the same bad event once."""

    groups: dict[tuple[str, str], Group] = field(default_factory=dict)

    def add(self, letter: Letter) -> None:
        topic, partition, offset = letter.source
        group = self.groups.setdefault((topic, reason_of(letter)[0]), Group())
        group.count += 1
        ts = letter.timestamp_ms
        group.first_ms = ts if group.first_ms is None else min(group.first_ms, ts)
        group.last_ms = ts if group.last_ms is None else max(group.last_ms, ts)
        group.sources.add((partition, offset))

    @property
    def letters(self) -> int:
        return sum(g.count for g in self.groups.values())

    @property
    def distinct(self) -> int:
        return sum(len(g.sources) for g in self.groups.values())


def render_summary(summary: Summary) -> str:
    """A table: one row per (source topic, reason) with letters, distinct source
    messages, first and last time; then a total line that says when a message was
    dead-lettered more than once (by several nodes, or by a node that ran again)."""
    if not summary.groups:
        return "no dead letters"
    head = ("SOURCE TOPIC", "REASON", "LETTERS", "MESSAGES", "FIRST", "LAST")
    rows = [head]
    for (topic, reason), g in sorted(summary.groups.items()):
        first = iso((g.first_ms or 0) * 1000)[:19] + "Z"
        last = iso((g.last_ms or 0) * 1000)[:19] + "Z"
        rows.append((topic or "-", reason, str(g.count), str(len(g.sources)), first, last))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    letters, distinct = summary.letters, summary.distinct
    total = f"{letters} dead letters of {distinct} distinct source messages"
    if letters > distinct:
        total += (
            f"; {letters - distinct} are the same message dead-lettered again (each node's "
            "projector dead-letters what it cannot apply)"
        )
    return "\n".join([*lines, total])
