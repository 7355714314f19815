"""The projector's counters, as an immutable value the node's metrics endpoint reads."""

from __future__ import annotations

from dataclasses import dataclass

from projections.fold import Batch


@dataclass(frozen=True, slots=True)
class ProjectorStats:
    """Counters since the projector was made; ``last_batch_at`` is wall-clock seconds
    (None: no batch yet), ``last_batch_seconds`` from fetch to commit;
    ``dead_letters_by_reason`` splits ``dead_lettered`` by reason, sorted by it."""

    events_applied: int = 0
    duplicates_dropped: int = 0
    dead_lettered: int = 0
    batches: int = 0
    last_batch_events: int = 0
    last_batch_seconds: float = 0.0
    last_batch_at: float | None = None
    dead_letters_by_reason: tuple[tuple[str, int], ...] = ()

    def counted(self, batch: Batch, seconds: float, at: float) -> ProjectorStats:
        """These counters after ``batch`` was committed."""
        by_reason = dict(self.dead_letters_by_reason)
        for letter in batch.dead_letters:
            by_reason[letter.reason] = by_reason.get(letter.reason, 0) + 1
        return ProjectorStats(
            events_applied=self.events_applied + len(batch.events),
            duplicates_dropped=self.duplicates_dropped + batch.duplicates,
            dead_lettered=self.dead_lettered + len(batch.dead_letters),
            batches=self.batches + 1,
            last_batch_events=len(batch.events),
            last_batch_seconds=seconds,
            last_batch_at=at,
            dead_letters_by_reason=tuple(sorted(by_reason.items())),
        )
