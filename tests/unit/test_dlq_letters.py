"""How ``runledger dlq`` reads a dead letter (runledger/dlq_letters.py), without a broker:
both writers' headers, keys and headers that are not UTF-8, values that decode as an
event, as a command or not at all, the filters and the summary table."""

from __future__ import annotations

import json

from runledger.dlq_letters import (
    Letter,
    LetterFilter,
    Summary,
    letter_document,
    reason_of,
    render_summary,
)
from schemas import default_codec
from streams import serde
from streams.domain import commands as c
from tests.unit.test_dlq_skew_fold import caserun_events, encoded

CODEC = default_codec()
TS = 1_767_225_600_123  # 2026-01-01T00:00:00.123Z


def projector_letter(
    offset: int, value: bytes | None, *, reason: str = "undecodable", source_offset: int = 7
) -> Letter:
    """A letter as projections/dead_letters.py writes it."""
    headers = (
        ("reason", reason.encode()),
        ("error", b"not Avro single-object encoding: missing the C3 01 marker"),
        ("source_topic", b"t.ledger.events"),
        ("source_partition", b"1"),
        ("source_offset", str(source_offset).encode()),
    )
    return Letter(0, offset, TS + offset, b"process:p-9", value, headers)


def decider_letter(offset: int, value: bytes, error_class: str = "UnusableBody") -> Letter:
    """A letter as streams/decider_output.py writes it: the sentence is the reason."""
    headers = (
        ("reason", b"command bad-range: progress must be between 0 and 100"),
        ("error", error_class.encode()),
        ("source_topic", b"t.ledger.commands"),
        ("source_partition", b"0"),
        ("source_offset", str(offset).encode()),
    )
    return Letter(1, offset, TS, b"process:p1", value, headers)


def test_a_projector_letter_prints_every_header_the_key_and_why_it_did_not_decode() -> None:
    doc = letter_document(projector_letter(3, b"\x00junk"), CODEC)
    assert doc["time"] == "2026-01-01T00:00:00.126000Z"
    assert (doc["partition"], doc["offset"]) == (0, 3)
    assert (doc["reason"], doc["error"]) == (
        "undecodable",
        "not Avro single-object encoding: missing the C3 01 marker",
    )
    assert (doc["source_topic"], doc["source_partition"], doc["source_offset"]) == (
        "t.ledger.events",
        1,
        7,
    )
    assert doc["headers"]["source_offset"] == "7" and len(doc["headers"]) == 5
    assert doc["key"] == "process:p-9" and "key_hex" not in doc
    assert doc["value_bytes"] == 5 and "C3 01" in doc["decode_error"]
    assert "decoded" not in doc
    json.dumps(doc)  # a JSON line


def test_a_value_the_codec_reads_shows_its_schema_type_and_aggregate() -> None:
    key, value = encoded(caserun_events("cr-1"))[1]
    doc = letter_document(projector_letter(0, value, reason="sequence_gap"), CODEC)
    assert doc["decoded"] == {
        "schema": "caserun.step_started",
        "type": "caserun.step_started",
        "aggregate_type": "caserun",
        "aggregate_id": "cr-1",
        "seq": 2,
        "command_id": "cmd-cr-1-2",
    }
    assert doc["value_bytes"] == len(value) and "decode_error" not in doc


def test_a_decider_letter_gets_its_class_as_reason_and_its_command_decoded() -> None:
    cmd = c.Command(
        "bad-range", "process", "p1", TS * 1000, "acme", "x", "r", "r", c.StartProcess()
    )
    letter = decider_letter(4, serde.encode_command(CODEC, cmd))
    assert reason_of(letter) == (
        "UnusableBody",
        "command bad-range: progress must be between 0 and 100",
    )
    doc = letter_document(letter, CODEC)
    assert doc["reason"] == "UnusableBody"
    assert doc["headers"]["reason"].startswith("command bad-range")  # raw, as written
    assert doc["decoded"]["schema"] == "command" and doc["decoded"]["command_id"] == "bad-range"
    assert doc["decoded"]["name"] == "process.start"


def test_bytes_that_are_not_utf8_are_shown_in_hex_and_an_empty_value_says_so() -> None:
    letter = Letter(2, 9, TS, b"\xff\x00k", b"", (("reason", b"undecodable"), ("odd", b"\xfe\x01")))
    doc = letter_document(letter, CODEC)
    assert doc["key"] is None and doc["key_hex"] == "ff006b"
    assert doc["headers"] == {"reason": "undecodable"} and doc["headers_hex"] == {"odd": "fe01"}
    assert doc["value_bytes"] == 0 and doc["decode_error"] == "the value is empty"
    assert (doc["source_topic"], doc["source_partition"], doc["source_offset"]) == ("", None, None)
    assert reason_of(Letter(0, 0, TS, None, None)) == ("unknown", "")
    assert letter_document(Letter(0, 0, TS, None, None), CODEC)["key"] is None


def test_filters_match_the_reason_token_the_raw_header_and_the_source_topic_end() -> None:
    ours = projector_letter(0, b"x", reason="sequence_gap")
    theirs = decider_letter(1, b"y", "DecodeError")
    assert LetterFilter()(ours) and LetterFilter()(theirs)
    assert LetterFilter(frozenset({"sequence_gap", "DecodeError"}))(ours)
    assert LetterFilter(frozenset({"sequence_gap", "DecodeError"}))(theirs)
    assert not LetterFilter(frozenset({"undecodable"}))(ours)
    assert LetterFilter(frozenset({theirs.header("reason") or ""}))(theirs)
    assert not LetterFilter(frozenset({"not_a_reason_yet"}))(ours)  # allowed: matches none
    assert LetterFilter(sources=("ledger.events",))(ours)
    assert not LetterFilter(sources=("ledger.events",))(theirs)
    assert LetterFilter(sources=("ledger.events", "t.ledger.commands"))(theirs)


def test_the_summary_counts_letters_and_distinct_source_messages() -> None:
    summary = Summary()
    # The same bad event dead-lettered by two nodes, and another one by one node.
    for offset, source in ((0, 7), (1, 7), (2, 8)):
        summary.add(projector_letter(offset, b"x", source_offset=source))
    summary.add(decider_letter(5, b"y"))
    assert (summary.letters, summary.distinct) == (4, 3)
    lines = render_summary(summary).splitlines()
    assert lines[0].split() == ["SOURCE", "TOPIC", "REASON", "LETTERS", "MESSAGES", "FIRST", "LAST"]
    assert lines[1].split() == [
        "t.ledger.commands",
        "UnusableBody",
        "1",
        "1",
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00Z",
    ]
    assert lines[2].split()[:4] == ["t.ledger.events", "undecodable", "3", "2"]
    assert lines[3] == (
        "4 dead letters of 3 distinct source messages; 1 are the same message "
        "dead-lettered again (each node's projector dead-letters what it cannot apply)"
    )
    assert render_summary(Summary()) == "no dead letters"
