"""The pure domain: commands, events, and ``decide``/``evolve`` per aggregate.

Nothing here does I/O or reads a clock: time and ids come from the command or the
event, so the same function serves the decider, the projector, replay and as-of.
"""

from streams.domain.commands import Command, InvalidCommand, parse_body
from streams.domain.events import Event
from streams.domain.rejection import Rejected

__all__ = ["Command", "Event", "InvalidCommand", "Rejected", "parse_body"]
