"""The envelope of new events: one place that stamps seq, ids, time and provenance."""

from __future__ import annotations

from streams.domain import commands as c
from streams.domain import events as e


def event(aggregate: str, seq: int, cmd: c.Command, payload: e.Payload) -> e.Event:
    """Event ``seq`` of the aggregate named by ``cmd``, at the command's time.

    Its id is derived from the aggregate and seq, so deciding the same command on the
    same state again yields the identical event.
    """
    return e.Event(
        event_id=e.event_id_for(aggregate, cmd.aggregate_id, seq),
        aggregate_type=aggregate,
        aggregate_id=cmd.aggregate_id,
        seq=seq,
        type=payload.TYPE,
        occurred_at=cmd.issued_at,
        account=cmd.account,
        actor=cmd.actor,
        command_id=cmd.command_id,
        correlation_id=cmd.correlation_id,
        causation_id=cmd.causation_id,
        data=payload,
    )


def events(aggregate: str, prior_seq: int, cmd: c.Command, *payloads: e.Payload) -> list[e.Event]:
    """``payloads`` as consecutive events after ``prior_seq`` (0 for a new aggregate)."""
    return [event(aggregate, prior_seq + i, cmd, p) for i, p in enumerate(payloads, start=1)]
