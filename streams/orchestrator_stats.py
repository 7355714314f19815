"""The orchestrator's counters, and the lines that report its start-up, its stop and the
jobs it dispatched.

Apart from :mod:`streams.orchestrator` so its loop reads as the pipeline. The lines are
logged as ``streams.orchestrator``, the logger operators (and tests) filter on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from streams.orchestration import Job
from streams.topics import Topics, describe_positions

log = logging.getLogger("streams.orchestrator")


@dataclass
class OrchestratorStats:
    events: int = 0
    undecodable: int = 0
    commands: int = 0
    jobs: int = 0
    batches: int = 0
    rebuilt_events: int = 0


def log_ready(
    bootstrap: str,
    states: int,
    stats: OrchestratorStats,
    topics: Topics,
    committed: dict[int, int],
    group_id: str,
) -> None:
    """Log that the orchestrator rebuilt ``states`` states and reads from ``committed``."""
    log.info(
        "orchestrator ready on %s: %d states rebuilt from %d events; reading %s from %s (group %s)",
        bootstrap,
        states,
        stats.rebuilt_events,
        topics.events,
        describe_positions(committed),
        group_id,
    )


def log_stopped(stats: OrchestratorStats, topics: Topics, committed: dict[int, int]) -> None:
    """Log what the orchestrator read and sent and how far it committed, once stopped."""
    log.info(
        "orchestrator stopped: %d events read, %d commands and %d jobs sent; %s committed up to %s",
        stats.events,
        stats.commands,
        stats.jobs,
        topics.events,
        describe_positions(committed),
    )


def log_dispatched(jobs: list[Job]) -> None:
    """Log each of ``jobs``: call it only once their transaction has committed, since a
    job in an aborted transaction was never sent."""
    for job in jobs:
        log.info(
            "dispatched %s job %s: run %s node %s attempt %d",
            job.kind,
            job.job_id,
            job.run_id,
            job.node_id,
            job.attempt,
        )
