"""The node's metric families: its projector's counters and lag, and its identity.

Built from plain values the node hands over at scrape time (the projector's stats, the
end offsets its consumer last heard of, its applied positions), so nothing here talks
to Kafka: a scrape costs no broker round trip.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from api.metrics import Family, Sample, counter, gauge, labelled
from projections.fold import REJECTED, SEQUENCE_GAP, UNDECODABLE, UNKNOWN_FINGERPRINT
from projections.metrics import ProjectorStats

# Listed even at 0, so that ``increase(...[10m]) > 0`` alerts from the first letter on.
DEAD_LETTER_REASONS = (UNDECODABLE, UNKNOWN_FINGERPRINT, SEQUENCE_GAP, REJECTED)


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """What ``runledger_node_info`` says of the node, and when its process started."""

    version: str
    topic_prefix: str
    started_at: float  # unix seconds


def projector_families(
    stats: ProjectorStats, ends: Mapping[int, int], applied: Mapping[int, int], held_s: float
) -> list[Family]:
    """The projector's families. ``ends``: per partition, the end offset its consumer
    last heard of (a partition not fetched yet is absent and gets no lag sample);
    ``applied``: the next offset to apply per partition; ``held_s``: how long a batch
    has waited for room on the disk (0: none waits)."""
    reasons = {reason: 0 for reason in DEAD_LETTER_REASONS}
    reasons.update(dict(stats.dead_letters_by_reason))
    families = [
        counter(
            "runledger_projector_events_applied_total",
            "Events the projector applied to the read model since the node started.",
            stats.events_applied,
        ),
        counter(
            "runledger_projector_duplicates_dropped_total",
            "Events dropped as already applied (same aggregate and seq) since start.",
            stats.duplicates_dropped,
        ),
        labelled(
            "runledger_projector_dead_letters_total",
            "counter",
            "Messages of the events topic sent to the dead-letter topic since start, by "
            "reason (undecodable, unknown_fingerprint, sequence_gap, rejected).",
            "reason",
            reasons,
        ),
        counter(
            "runledger_projector_batches_total",
            "Batches the projector committed to the read model since start.",
            stats.batches,
        ),
        gauge(
            "runledger_projector_last_batch_events",
            "Events in the last committed batch.",
            stats.last_batch_events,
        ),
        gauge(
            "runledger_projector_last_batch_duration_seconds",
            "Time of the last batch from fetch to commit.",
            stats.last_batch_seconds,
        ),
        gauge(
            "runledger_projector_write_held_seconds",
            "How long the projector has held a batch the read model had no room for (a "
            "full disk); 0 when it writes. The lag does not show such a hold.",
            held_s,
        ),
    ]
    if stats.last_batch_at is not None:  # unknown until the first batch
        families.append(
            gauge(
                "runledger_projector_last_batch_timestamp_seconds",
                "When the last batch was committed, unix seconds.",
                stats.last_batch_at,
            )
        )
    positions = {str(p): applied.get(p, 0) for p in sorted(ends)}
    families += [
        labelled(
            "runledger_projector_end_offset",
            "gauge",
            "The end of each partition of the events topic as the projector's consumer "
            "last heard it (last stable offset, read_committed).",
            "partition",
            {str(p): end for p, end in ends.items()},
        ),
        labelled(
            "runledger_projector_applied_offset",
            "gauge",
            "The next offset the projector applies, per partition (everything before it "
            "is in the read model).",
            "partition",
            {str(p): o for p, o in applied.items()},
        ),
        labelled(
            "runledger_projector_lag_offsets",
            "gauge",
            "Offsets of the events topic not yet in the read model, per partition: end "
            "offset minus applied offset.",
            "partition",
            {p: max(0, ends[int(p)] - o) for p, o in positions.items()},
        ),
    ]
    return families


def identity_families(identity: NodeIdentity) -> list[Family]:
    """``runledger_node_info`` (always 1, the facts in labels) and the start time."""
    info = {"version": identity.version, "topic_prefix": identity.topic_prefix}
    return [
        gauge("runledger_node_info", "The node's version and topic prefix.", 1, info),
        Family(
            "runledger_process_start_time_seconds",
            "gauge",
            "When the node's process started, unix seconds.",
            (Sample(identity.started_at),),
        ),
    ]
