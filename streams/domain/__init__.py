"""The pure domain: commands, events, and ``decide``/``evolve`` per aggregate.

Nothing here does I/O or reads a clock: time and ids come from the command or the
event, so the same function serves the decider, the projector, replay and as-of.
"""

from streams.domain import caserun, events, flowrun
from streams.domain.commands import Command, InvalidCommand, parse_body
from streams.domain.events import Event
from streams.domain.rejection import Rejected

# The run aggregates define their payloads beside decide/evolve and build on ``events``,
# so they are registered here, before any other module can decode or encode an event.
events.register(*flowrun.PAYLOADS, *caserun.PAYLOADS)

__all__ = ["Command", "Event", "InvalidCommand", "Rejected", "parse_body"]
