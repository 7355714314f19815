"""The deciders word a dead-lettered command's headers as the projector words its own:
a token in ``reason``, the sentence in ``error`` (before, the sentence was the reason
and ``runledger dlq --reason`` could not group them)."""

from __future__ import annotations

import pytest

from schemas import default_codec
from streams import serde
from streams.dead_letter_headers import command_letter_headers

CODEC = default_codec()


def _failure(value: bytes) -> Exception:
    with pytest.raises(Exception) as caught:
        serde.decode_command(CODEC, value)
    assert isinstance(caught.value, Exception)
    return caught.value


def _unusable_body() -> bytes:
    record = {
        "command_id": "c-1",
        "aggregate_type": "process",
        "aggregate_id": "p-1",
        "name": "process.progress",
        "issued_at": 0,
        "account": "acme",
        "actor": "x",
        "correlation_id": "c",
        "causation_id": "c",
        "payload_json": '{"progress": 140}',
        "reply_to": None,
    }
    return CODEC.encode("command", record)


@pytest.mark.parametrize(
    ("value", "reason", "exception"),
    [
        (b"", "undecodable", "DecodeError"),
        (b"\xc3\x01" + b"\x00" * 8 + b"body", "unknown_fingerprint", "UnknownSchemaError"),
        (CODEC.registry.latest("command").header + b"\xff" * 30, "undecodable", None),
        (_unusable_body(), "unusable_body", "UnusableBody"),
    ],
)
def test_a_command_that_does_not_decode_gets_a_reason_token(
    value: bytes, reason: str, exception: str | None
) -> None:
    exc = _failure(value)
    headers = dict(command_letter_headers(exc, "p.ledger.commands", 2, 41))
    assert headers["reason"] == reason.encode()
    assert headers["error"] == str(exc).encode() and b" " in headers["error"]  # the sentence
    assert headers["exception"] == type(exc).__name__.encode()
    if exception is not None:
        assert type(exc).__name__ == exception
    assert (headers["source_topic"], headers["source_partition"], headers["source_offset"]) == (
        b"p.ledger.commands",
        b"2",
        b"41",
    )


def test_a_command_whose_deciding_raised_is_a_decide_failure_not_a_decode_one() -> None:
    headers = dict(command_letter_headers(ZeroDivisionError(), "t", 0, 0))
    assert headers["reason"] == b"decide_failed"
    assert headers["error"] == b"ZeroDivisionError"  # no sentence: the class says it
