"""The headers of a command the deciders dead-letter, worded as the projector words its
own (projections/dead_letters.py): a short token in ``reason`` to group and filter by,
the sentence in ``error``, and where the message came from. Both deciders (the aiokafka
one and the faust one) write them through :func:`command_letter_headers`, so
``runledger dlq --reason`` and the node's metrics mean the same whoever wrote a letter.

Letters written before this wording put the sentence in ``reason`` and the exception's
class in ``error``; ``runledger dlq`` still reads those (runledger/dlq_letters.py).
"""

from __future__ import annotations

from schemas import DecodeError, UnknownSchemaError
from streams.serde import UnusableBody

# The ``reason`` tokens of a dead-lettered command.
UNKNOWN_FINGERPRINT = "unknown_fingerprint"  # framed right; a schema this decider lacks
UNUSABLE_BODY = "unusable_body"  # the envelope decodes, the body does not (also rejected)
UNDECODABLE = "undecodable"  # not a command record at all
DECIDE_FAILED = "decide_failed"  # decoded, but deciding it raised (a bug, not a verdict)


def command_reason(exc: Exception) -> str:
    """The ``reason`` token for a command that failed with ``exc``."""
    if isinstance(exc, UnknownSchemaError):
        return UNKNOWN_FINGERPRINT
    if isinstance(exc, UnusableBody):
        return UNUSABLE_BODY
    if isinstance(exc, DecodeError):
        return UNDECODABLE
    return DECIDE_FAILED


def command_letter_headers(
    exc: Exception, topic: str, partition: int, offset: int
) -> list[tuple[str, bytes]]:
    """The headers of the dead letter of the command at ``topic``/``partition``/``offset``."""
    return [
        ("reason", command_reason(exc).encode()),
        ("error", (str(exc) or type(exc).__name__).encode("utf-8", "replace")),
        ("exception", type(exc).__name__.encode()),
        ("source_topic", topic.encode()),
        ("source_partition", str(partition).encode()),
        ("source_offset", str(offset).encode()),
    ]
