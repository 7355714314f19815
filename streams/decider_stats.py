"""The decider's counters, and the start-up and stop lines that report them.

Apart from :mod:`streams.decider` so its loop reads as the pipeline and nothing else;
the faust decider (:mod:`streams.faust_decider`) counts in the same :class:`DeciderStats`.
The lines are logged as ``streams.decider``, the logger operators filter on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

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
