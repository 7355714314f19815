"""What a runner's ``/metrics`` shows: jobs started and finished by kind and outcome, jobs
running now, their durations, the browser's open pages, and the targets the guard
refused (``runners.guard.RefusalCount``, read at scrape time).

:class:`JobTally` is told of each job where the runner runs it (``Runner.execute``,
the one place that sees both its start and how it ended); the families are built from
it and the browser's page count at scrape time. Call from the event loop's thread only.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping

from streams.exposition import Family, Sample, gauge, labelled

# How a job ended. ``error``: it raised (its reports could not be published, or the
# browser is gone): the loop runs it again. ``cancelled``: cut short by a cancel of its
# run, a rebalance or the runner's stop (the latter two run it again elsewhere).
PASSED = "passed"
FAILED = "failed"
CANCELLED = "cancelled"
ERROR = "error"
OUTCOMES = (PASSED, FAILED, CANCELLED, ERROR)

# Upper bounds in seconds: a webhook or a wait ends in under a second, a scan or a case
# in seconds to minutes, a generate or a long crawl may take most of an hour.
BUCKETS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


class JobTally:
    """Jobs of each kind counted as they start and finish, and their durations.
    ``kinds`` are listed from the start, at 0, so alerts work from the first job on."""

    def __init__(self, kinds: Iterable[str], buckets: tuple[float, ...] = BUCKETS) -> None:
        self.buckets = buckets
        self.started: dict[str, int] = {}
        self.finished: dict[tuple[str, str], int] = {}
        # per kind: count per bucket (not cumulative; the last one is +Inf), and the sum
        self._counts: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}
        for kind in kinds:
            self._know(kind)

    def _know(self, kind: str) -> None:
        if kind not in self.started:
            self.started[kind] = 0
            self.finished.update({(kind, outcome): 0 for outcome in OUTCOMES})
            self._counts[kind] = [0] * (len(self.buckets) + 1)
            self._sums[kind] = 0.0

    def start(self, kind: str) -> None:
        self._know(kind)
        self.started[kind] += 1

    def finish(self, kind: str, outcome: str, seconds: float) -> None:
        """Count a job of ``kind`` that ended with ``outcome`` (one of ``OUTCOMES``)
        after ``seconds``."""
        self._know(kind)
        self.finished[(kind, outcome)] += 1
        # bisect_left: a duration equal to a bound belongs in that bound's bucket (le).
        self._counts[kind][bisect_left(self.buckets, seconds)] += 1
        self._sums[kind] += seconds

    def running(self, kind: str) -> int:
        """Jobs of ``kind`` started and not finished yet."""
        ended = sum(n for (k, _), n in self.finished.items() if k == kind)
        return self.started.get(kind, 0) - ended

    def families(
        self, pages_open: int, max_pages: int, refused: Mapping[str, int] | None = None
    ) -> list[Family]:
        """The runner's families; ``pages_open``: browser pages open now, of at most
        ``max_pages``; ``refused``: targets the guard refused so far, by use."""
        kinds = sorted(self.started)
        return [
            Family(
                "runledger_runner_jobs_started_total",
                "counter",
                "Jobs started (each attempt, a run again after an error too) since the "
                "process started, by kind.",
                tuple(Sample(self.started[k], (("kind", k),)) for k in kinds),
            ),
            Family(
                "runledger_runner_jobs_finished_total",
                "counter",
                "Jobs ended since start, by kind and outcome (passed, failed, cancelled: "
                "cut short by a cancel, a rebalance or a stop; error: raised, run again).",
                tuple(
                    Sample(n, (("kind", k), ("outcome", o)))
                    for (k, o), n in sorted(self.finished.items())
                ),
            ),
            Family(
                "runledger_runner_jobs_running",
                "gauge",
                "Jobs running now, by kind.",
                tuple(Sample(self.running(k), (("kind", k),)) for k in kinds),
            ),
            Family(
                "runledger_runner_job_duration_seconds",
                "histogram",
                "Time from a job's start to its end, whatever the outcome, by kind.",
                tuple(self._duration_samples(kinds)),
            ),
            gauge("runledger_runner_pages_open", "Browser pages open now.", pages_open),
            gauge(
                "runledger_runner_pages_max",
                "Browser pages the runner opens at most at a time (RUNLEDGER_RUNNER_MAX_PAGES).",
                max_pages,
            ),
            labelled(
                "runledger_runner_targets_refused_total",
                "counter",
                "Targets the guard refused (loopback, private, link-local, ...) since the "
                "process started, by what they were for: page, subresource, webhook, smtp.",
                "what",
                dict(refused or {}),
            ),
        ]

    def _duration_samples(self, kinds: list[str]) -> Iterable[Sample]:
        bounds = [*(repr(b) for b in self.buckets), "+Inf"]
        for kind in kinds:
            label = ("kind", kind)
            total = 0
            for bound, count in zip(bounds, self._counts[kind], strict=True):
                total += count
                yield Sample(total, (label, ("le", bound)), "_bucket")
            yield Sample(self._sums[kind], (label,), "_sum")
            yield Sample(total, (label,), "_count")
