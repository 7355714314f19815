"""The orchestrator's counters, the lines that report its start-up, its stop and the
jobs it dispatched, and the metric families its ``--metrics-port`` serves.

Apart from :mod:`streams.orchestrator` so its loop reads as the pipeline. The lines are
logged as ``streams.orchestrator``, the logger operators (and tests) filter on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from streams.exposition import Family, counter, gauge
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
    last_batch_at: float | None = None  # unix seconds of the last committed batch

    def batch_committed(self, at_micros: int) -> None:
        """Count a batch whose transaction committed at ``at_micros`` (the orchestrator's
        clock)."""
        self.batches += 1
        self.last_batch_at = at_micros / 1_000_000


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


def orchestrator_families(stats: OrchestratorStats, runs: int, in_flight: int) -> list[Family]:
    """What an orchestrator's ``/metrics`` shows: its counters since the process started,
    and the FlowRuns it holds (``runs``) and of them those not ended (``in_flight``)."""
    families = [
        counter(
            "runledger_orchestrator_events_total",
            "Events of the events topic the orchestrator folded since the process started.",
            stats.events,
        ),
        counter(
            "runledger_orchestrator_undecodable_total",
            "Events that could not be decoded and were skipped since start.",
            stats.undecodable,
        ),
        counter(
            "runledger_orchestrator_commands_total",
            "Commands sent (FlowRun steps, CaseRun cancels) since start.",
            stats.commands,
        ),
        counter(
            "runledger_orchestrator_jobs_total",
            "Jobs handed to runners on the jobs topic since start.",
            stats.jobs,
        ),
        counter(
            "runledger_orchestrator_batches_total",
            "Batches of events committed in one transaction each since start.",
            stats.batches,
        ),
        gauge("runledger_orchestrator_runs", "FlowRuns the orchestrator holds in memory.", runs),
        gauge(
            "runledger_orchestrator_runs_in_flight",
            "FlowRuns held that have neither ended nor been deleted.",
            in_flight,
        ),
    ]
    if stats.last_batch_at is not None:  # unknown until the first batch
        families.append(
            gauge(
                "runledger_orchestrator_last_batch_timestamp_seconds",
                "When the last batch was committed, unix seconds.",
                stats.last_batch_at,
            )
        )
    return families
