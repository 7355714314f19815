"""The decider's counters, the start-up and stop lines that report them, and the metric
families a decider's ``--metrics-port`` serves from them.

Apart from :mod:`streams.decider` so its loop reads as the pipeline and nothing else;
the faust decider (:mod:`streams.faust_decider`) counts in the same :class:`DeciderStats`.
The lines are logged as ``streams.decider``, the logger operators filter on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from streams.dead_letter_headers import (
    DECIDE_FAILED,
    UNDECODABLE,
    UNKNOWN_FINGERPRINT,
    UNUSABLE_BODY,
    command_reason,
)
from streams.exposition import Family, counter, gauge, labelled
from streams.topics import Topics, describe_positions

log = logging.getLogger("streams.decider")


@dataclass
class DeciderStats:
    commands: int = 0
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    events: int = 0
    batches: int = 0
    rebuilt_events: int = 0
    # ``dead_lettered`` by the ``reason`` token of the letter (streams.dead_letter_headers)
    dead_letters_by_reason: dict[str, int] = field(default_factory=dict)
    last_batch_at: float | None = None  # unix seconds of the last committed batch

    def dead_letter(self, exc: Exception) -> None:
        """Count a command dead-lettered for ``exc``, under the reason its letter gets."""
        reason = command_reason(exc)
        self.dead_lettered += 1
        self.dead_letters_by_reason[reason] = self.dead_letters_by_reason.get(reason, 0) + 1

    def batch_committed(self, at_micros: int) -> None:
        """Count a batch whose transaction committed at ``at_micros`` (the decider's clock)."""
        self.batches += 1
        self.last_batch_at = at_micros / 1_000_000


# Listed even at 0, so that ``increase(...[10m]) > 0`` alerts from the first letter on.
DEAD_LETTER_REASONS = (UNDECODABLE, UNKNOWN_FINGERPRINT, UNUSABLE_BODY, DECIDE_FAILED)


def decider_families(stats: DeciderStats, aggregates: int) -> list[Family]:
    """What a decider's ``/metrics`` shows: its counters since the process started, and
    the ``aggregates`` it holds in memory now."""
    reasons = dict.fromkeys(DEAD_LETTER_REASONS, 0)
    reasons.update(stats.dead_letters_by_reason)
    families = [
        counter(
            "runledger_decider_commands_total",
            "Commands decided (accepted, rejected or duplicate) since the process started.",
            stats.commands,
        ),
        counter(
            "runledger_decider_accepted_total",
            "Commands accepted (their events appended) since start.",
            stats.accepted,
        ),
        counter(
            "runledger_decider_rejected_total",
            "Commands rejected by the domain (a rejected outcome, no events) since start.",
            stats.rejected,
        ),
        counter(
            "runledger_decider_duplicates_total",
            "Commands already accepted before (answered with their first events) since start.",
            stats.duplicates,
        ),
        counter(
            "runledger_decider_events_total",
            "Events appended to the events topic since start.",
            stats.events,
        ),
        labelled(
            "runledger_decider_dead_letters_total",
            "counter",
            "Records of the commands topic sent to the dead-letter topic since start, by "
            "reason (undecodable, unknown_fingerprint, unusable_body, decide_failed).",
            "reason",
            reasons,
        ),
        counter(
            "runledger_decider_batches_total",
            "Batches of commands committed in one transaction each since start.",
            stats.batches,
        ),
        gauge(
            "runledger_decider_aggregates",
            "Aggregates whose state the decider holds in memory.",
            aggregates,
        ),
    ]
    if stats.last_batch_at is not None:  # unknown until the first batch
        families.append(
            gauge(
                "runledger_decider_last_batch_timestamp_seconds",
                "When the last batch was committed, unix seconds.",
                stats.last_batch_at,
            )
        )
    return families


def log_ready(
    bootstrap: str,
    aggregates: int,
    stats: DeciderStats,
    topics: Topics,
    committed: dict[int, int],
    group_id: str,
) -> None:
    """Log that the decider rebuilt ``aggregates`` aggregates and reads from ``committed``."""
    log.info(
        "decider ready on %s: %d aggregates rebuilt from %d events of %s; "
        "reading %s from %s (group %s)",
        bootstrap,
        aggregates,
        stats.rebuilt_events,
        topics.events,
        topics.commands,
        describe_positions(committed),
        group_id,
    )


def log_stopped(stats: DeciderStats, topics: Topics, committed: dict[int, int]) -> None:
    """Log what the decider decided and how far it committed, once it has stopped."""
    st = stats
    log.info(
        "decider stopped: %d commands decided (%d accepted, %d rejected, %d duplicates, "
        "%d dead-lettered); %s committed up to %s",
        st.commands,
        st.accepted,
        st.rejected,
        st.duplicates,
        st.dead_lettered,
        topics.commands,
        describe_positions(committed),
    )
