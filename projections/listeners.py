"""Who a projector tells about what it committed, and telling them.

Listeners run on the event loop right after each commit (the node's cache and its SSE
broadcaster are two), so one that raises is logged and skipped: a broken listener must
not stop the projection. The log lines keep the ``projections.projector`` logger they
always had, so operators' filters stay valid.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from projections.fold import Batch
from streams.domain.events import Event

log = logging.getLogger("projections.projector")

Listener = Callable[[list[Event]], None]
# Told every committed batch (events with their positions and the states after them).
BatchListener = Callable[[Batch], None]


def notify(listeners: list[Listener], events: list[Event]) -> None:
    """Tell each of ``listeners`` the committed ``events``; a failure is logged only."""
    for listener in list(listeners):
        try:
            listener(events)
        except Exception:  # one broken listener must not stop the projection
            log.exception("projector: listener %r failed", listener)


def notify_batch(listeners: list[BatchListener], batch: Batch) -> None:
    """Tell each of ``listeners`` the committed ``batch``; a failure is logged only."""
    for listener in list(listeners):
        try:
            listener(batch)
        except Exception:  # one broken listener must not stop the projection
            log.exception("projector: batch listener %r failed", listener)
